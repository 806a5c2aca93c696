package fsstore

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
)

// The crash test's model of one worker's subtree: what the store must hold
// after every operation the worker has seen succeed.

// crashMaxFile caps a file's size in the model, to keep cases small.
const crashMaxFile = 40 << 10

type mnode struct {
	kind   uint32 // ModeRegular, ModeDir or ModeSymlink
	perm   uint32
	ino    Ino    // 0: not known (created by the operation in flight at the cut)
	gen    uint64 // generation, with ino
	data   []byte
	alloc  []bool // regular files: file block i is allocated (not a hole)
	target string
	names  int            // non-directories: the names (hard links) naming it
	kids   map[string]int // directories: name -> node id
	parent int            // directories: parent node id (-1 for the top)
}

type model struct {
	nodes map[int]*mnode
	next  int
}

// The top directory of a worker is node 0.
const topNode = 0

func newModel(top Ino, gen uint64) *model {
	return &model{
		nodes: map[int]*mnode{topNode: {kind: ModeDir, perm: 0o755, ino: top, gen: gen, kids: map[string]int{}, parent: -1}},
		next:  1,
	}
}

func (m *model) clone() *model {
	c := &model{nodes: make(map[int]*mnode, len(m.nodes)), next: m.next}
	for id, n := range m.nodes {
		nn := *n
		nn.data = slices.Clone(n.data)
		nn.alloc = slices.Clone(n.alloc)
		if n.kids != nil {
			nn.kids = make(map[string]int, len(n.kids))
			for k, v := range n.kids {
				nn.kids[k] = v
			}
		}
		c.nodes[id] = &nn
	}
	return c
}

func (n *mnode) nlink(m *model) uint32 {
	if n.kind != ModeDir {
		return uint32(n.names)
	}
	l := uint32(2)
	for _, k := range n.kids {
		if m.nodes[k].kind == ModeDir {
			l++
		}
	}
	return l
}

func (n *mnode) blocks() uint64 {
	var b uint64
	for _, a := range n.alloc {
		if a {
			b++
		}
	}
	return b
}

type opKind int

const (
	opCreate opKind = iota
	opMkdir
	opSymlink
	opWrite
	opTruncate
	opChmod
	opLink
	opUnlink
	opRmdir
	opRename
	numOpKinds
)

var opNames = [...]string{"create", "mkdir", "symlink", "write", "truncate", "chmod", "link", "unlink", "rmdir", "rename"}

// crashOp is one operation of a worker, by model node ids.
type crashOp struct {
	kind   opKind
	dir    int // the directory of name
	name   string
	dir2   int // rename: target directory
	name2  string
	node   int // write, truncate, chmod, link: the object
	off    int64
	data   []byte
	size   uint64
	perm   uint32
	target string
}

func (o *crashOp) String() string {
	switch o.kind {
	case opCreate, opMkdir:
		return fmt.Sprintf("%s(dir#%d, %q, %o)", opNames[o.kind], o.dir, o.name, o.perm)
	case opSymlink:
		return fmt.Sprintf("symlink(dir#%d, %q -> %d bytes)", o.dir, o.name, len(o.target))
	case opWrite:
		return fmt.Sprintf("write(#%d, off %d, len %d)", o.node, o.off, len(o.data))
	case opTruncate:
		return fmt.Sprintf("truncate(#%d, %d)", o.node, o.size)
	case opChmod:
		return fmt.Sprintf("chmod(#%d, %o)", o.node, o.perm)
	case opLink:
		return fmt.Sprintf("link(#%d, dir#%d, %q)", o.node, o.dir, o.name)
	case opUnlink, opRmdir:
		return fmt.Sprintf("%s(dir#%d, %q)", opNames[o.kind], o.dir, o.name)
	case opRename:
		return fmt.Sprintf("rename(dir#%d, %q -> dir#%d, %q)", o.dir, o.name, o.dir2, o.name2)
	}
	return "?"
}

// apply performs o on the model; res holds the inode number and generation
// the store returned for a created object (zero when unknown).
func (m *model) apply(o *crashOp, res Attr) {
	newNode := func(n *mnode) {
		id := m.next
		m.next++
		n.ino, n.gen = res.Ino, res.Gen
		m.nodes[id] = n
		m.nodes[o.dir].kids[o.name] = id
	}
	switch o.kind {
	case opCreate:
		newNode(&mnode{kind: ModeRegular, perm: o.perm, names: 1})
	case opMkdir:
		perm := o.perm
		if m.nodes[o.dir].perm&0o2000 != 0 { // a setgid directory passes the bit on
			perm |= 0o2000
		}
		newNode(&mnode{kind: ModeDir, perm: perm, kids: map[string]int{}, parent: o.dir})
	case opSymlink:
		newNode(&mnode{kind: ModeSymlink, perm: 0o777, target: o.target, names: 1})
	case opWrite:
		n := m.nodes[o.node]
		end := int(o.off) + len(o.data)
		if end > len(n.data) {
			n.data = append(n.data, make([]byte, end-len(n.data))...)
		}
		copy(n.data[o.off:], o.data)
		fb1 := (end + bs - 1) / bs
		if fb1 > len(n.alloc) {
			n.alloc = append(n.alloc, make([]bool, fb1-len(n.alloc))...)
		}
		for fb := int(o.off) / bs; fb < fb1; fb++ {
			n.alloc[fb] = true
		}
	case opTruncate:
		n := m.nodes[o.node]
		sz := int(o.size)
		if sz < len(n.data) {
			n.data = n.data[:sz]
			if nb := (sz + bs - 1) / bs; nb < len(n.alloc) {
				n.alloc = n.alloc[:nb]
			}
		} else {
			n.data = append(n.data, make([]byte, sz-len(n.data))...)
		}
	case opChmod:
		m.nodes[o.node].perm = o.perm
	case opLink:
		m.nodes[o.dir].kids[o.name] = o.node
		m.nodes[o.node].names++
	case opUnlink, opRmdir:
		id := m.nodes[o.dir].kids[o.name]
		delete(m.nodes[o.dir].kids, o.name)
		m.drop(id)
	case opRename:
		src := m.nodes[o.dir].kids[o.name]
		if dst, ok := m.nodes[o.dir2].kids[o.name2]; ok {
			if dst == src {
				return // two names of one inode: POSIX says do nothing
			}
			m.drop(dst)
		}
		delete(m.nodes[o.dir].kids, o.name)
		m.nodes[o.dir2].kids[o.name2] = src
		if n := m.nodes[src]; n.kind == ModeDir {
			n.parent = o.dir2
		}
	}
}

// drop removes one name of node id.
func (m *model) drop(id int) {
	n := m.nodes[id]
	if n.kind == ModeDir {
		delete(m.nodes, id)
		return
	}
	n.names--
	if n.names == 0 {
		delete(m.nodes, id)
	}
}

// ents lists every (directory, name, node) in a deterministic order.
type ment struct {
	dir  int
	name string
	id   int
}

func (m *model) ents() []ment {
	var out []ment
	for _, d := range m.sortedIDs() {
		n := m.nodes[d]
		if n.kind != ModeDir {
			continue
		}
		names := make([]string, 0, len(n.kids))
		for k := range n.kids {
			names = append(names, k)
		}
		slices.Sort(names)
		for _, k := range names {
			out = append(out, ment{d, k, n.kids[k]})
		}
	}
	return out
}

func (m *model) sortedIDs() []int {
	ids := make([]int, 0, len(m.nodes))
	for id := range m.nodes {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// inside reports whether node id is a or lies below directory a.
func (m *model) inside(id, a int) bool {
	for id >= 0 {
		if id == a {
			return true
		}
		n := m.nodes[id]
		if n.kind != ModeDir {
			return false
		}
		id = n.parent
	}
	return false
}

var crashNamePool = []string{"a", "b", "c", "d", "e", "f", "g", "h", "file.txt", "dir", strings.Repeat("long", 60)}

func (m *model) freshName(r *rand.Rand, dir int) string {
	kids := m.nodes[dir].kids
	for range 4 {
		n := crashNamePool[r.IntN(len(crashNamePool))]
		if _, ok := kids[n]; !ok {
			return n
		}
	}
	for i := m.next; ; i++ {
		n := fmt.Sprintf("n%d", i)
		if _, ok := kids[n]; !ok {
			return n
		}
	}
}

var crashPerms = []uint32{0o644, 0o600, 0o755, 0o640, 0o700, 0o444, 0o1777, 0o2755}

// gen picks a random operation that is valid in the model's state.
func (m *model) gen(r *rand.Rand) crashOp {
	var dirs, files, nondirs, others []int
	for _, id := range m.sortedIDs() {
		switch m.nodes[id].kind {
		case ModeDir:
			dirs = append(dirs, id)
		case ModeRegular:
			files = append(files, id)
			nondirs = append(nondirs, id)
		default:
			nondirs = append(nondirs, id)
		}
		if id != topNode {
			others = append(others, id)
		}
	}
	ents := m.ents()
	pick := func(ids []int) int { return ids[r.IntN(len(ids))] }
	weights := [numOpKinds]int{opCreate: 12, opMkdir: 5, opSymlink: 5, opWrite: 26, opTruncate: 10, opChmod: 5, opLink: 6, opUnlink: 8, opRmdir: 4, opRename: 16}
	total := 0
	for _, w := range weights {
		total += w
	}
	for range 20 {
		x := r.IntN(total)
		k := opKind(0)
		for ; x >= weights[k]; k++ {
			x -= weights[k]
		}
		switch k {
		case opCreate, opMkdir:
			d := pick(dirs)
			return crashOp{kind: k, dir: d, name: m.freshName(r, d), perm: crashPerms[r.IntN(len(crashPerms))]}
		case opSymlink:
			d := pick(dirs)
			tl := 1 + r.IntN(64)
			if r.IntN(4) == 0 {
				tl = 1 + r.IntN(MaxSymlinkLen)
			}
			tgt := make([]byte, tl)
			for i := range tgt {
				tgt[i] = "abcdefghijklmnopqrstuvwxyz/._-"[r.IntN(30)]
			}
			return crashOp{kind: k, dir: d, name: m.freshName(r, d), target: string(tgt)}
		case opWrite:
			if len(files) == 0 {
				continue
			}
			f := pick(files)
			size := len(m.nodes[f].data)
			var n int
			switch r.IntN(10) {
			case 0, 1, 2:
				n = 1 + r.IntN(300)
			case 3, 4, 5:
				n = 1 + r.IntN(bs)
			case 6, 7, 8:
				n = bs + r.IntN(3*bs)
			default:
				n = 1 + r.IntN(8*bs)
			}
			var off int
			switch r.IntN(10) {
			case 0, 1, 2, 3:
				off = r.IntN(size + 1) // overwrite and extend
			case 4, 5:
				off = size // append
			case 6, 7:
				off = r.IntN(size+3*bs) / bs * bs // block aligned, maybe past EOF
			default:
				off = r.IntN(size + 3*bs) // maybe leaving a hole
			}
			if off+n > crashMaxFile {
				off = r.IntN(crashMaxFile / 2)
				n = min(n, crashMaxFile-off)
			}
			data := make([]byte, n)
			for i := range data {
				data[i] = byte(1 + r.IntN(255)) // never 0, so stale zeros show
			}
			return crashOp{kind: k, node: f, off: int64(off), data: data}
		case opTruncate:
			if len(files) == 0 {
				continue
			}
			f := pick(files)
			size := len(m.nodes[f].data)
			sz := r.IntN(size + 2*bs)
			if r.IntN(4) == 0 {
				sz = sz / bs * bs
			}
			return crashOp{kind: k, node: f, size: uint64(min(sz, crashMaxFile))}
		case opChmod:
			if len(others) == 0 {
				continue
			}
			id := pick(others)
			if m.nodes[id].kind == ModeSymlink {
				continue
			}
			return crashOp{kind: k, node: id, perm: crashPerms[r.IntN(len(crashPerms))]}
		case opLink:
			if len(nondirs) == 0 {
				continue
			}
			d := pick(dirs)
			return crashOp{kind: k, node: pick(nondirs), dir: d, name: m.freshName(r, d)}
		case opUnlink, opRmdir:
			var c []ment
			for _, e := range ents {
				n := m.nodes[e.id]
				if (k == opUnlink) == (n.kind != ModeDir) && (k == opUnlink || len(n.kids) == 0) {
					c = append(c, e)
				}
			}
			if len(c) == 0 {
				continue
			}
			e := c[r.IntN(len(c))]
			return crashOp{kind: k, dir: e.dir, name: e.name}
		case opRename:
			if len(ents) == 0 {
				continue
			}
			e := ents[r.IntN(len(ents))]
			src := m.nodes[e.id]
			var okDirs []int
			for _, d := range dirs {
				if src.kind != ModeDir || !m.inside(d, e.id) {
					okDirs = append(okDirs, d)
				}
			}
			d2 := pick(okDirs)
			// Half the time, aim at an existing name that may be replaced.
			if r.IntN(2) == 0 {
				var over []string
				for _, oe := range ents {
					if oe.dir != d2 || (oe.dir == e.dir && oe.name == e.name) {
						continue
					}
					on := m.nodes[oe.id]
					if (src.kind == ModeDir) == (on.kind == ModeDir) && (on.kind != ModeDir || len(on.kids) == 0) {
						over = append(over, oe.name)
					}
				}
				if len(over) > 0 {
					return crashOp{kind: k, dir: e.dir, name: e.name, dir2: d2, name2: over[r.IntN(len(over))]}
				}
			}
			return crashOp{kind: k, dir: e.dir, name: e.name, dir2: d2, name2: m.freshName(r, d2)}
		}
	}
	d := pick(dirs)
	return crashOp{kind: opCreate, dir: d, name: m.freshName(r, d), perm: 0o644}
}

// exec performs o on the store. It returns the new object's attributes for
// operations that create one.
func (m *model) exec(s *Store, o *crashOp) (Attr, error) {
	ino := func(id int) Ino { return m.nodes[id].ino }
	switch o.kind {
	case opCreate:
		a, err := s.Create(nil, ino(o.dir), o.name, o.perm, CreateGuarded, 0)
		return a, err
	case opMkdir:
		a, err := s.Mkdir(nil, ino(o.dir), o.name, o.perm)
		return a, err
	case opSymlink:
		a, err := s.Symlink(nil, ino(o.dir), o.name, o.target)
		return a, err
	case opWrite:
		_, err := s.Write(nil, ino(o.node), o.data, o.off)
		return Attr{}, err
	case opTruncate:
		sz := o.size
		_, err := s.Setattr(nil, ino(o.node), SetAttr{Size: &sz})
		return Attr{}, err
	case opChmod:
		p := o.perm
		_, err := s.Setattr(nil, ino(o.node), SetAttr{Mode: &p})
		return Attr{}, err
	case opLink:
		_, err := s.Link(nil, ino(o.node), ino(o.dir), o.name)
		return Attr{}, err
	case opUnlink:
		return Attr{}, s.Unlink(nil, ino(o.dir), o.name)
	case opRmdir:
		return Attr{}, s.Rmdir(nil, ino(o.dir), o.name)
	case opRename:
		return Attr{}, s.Rename(nil, ino(o.dir), o.name, ino(o.dir2), o.name2)
	}
	return Attr{}, fmt.Errorf("unknown op %d", o.kind)
}
