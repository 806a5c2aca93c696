package fsstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/hanfs/hanfs/fsstore/block"
	"github.com/hanfs/hanfs/fsstore/btree"
	"github.com/hanfs/hanfs/fsstore/journal"
	"github.com/hanfs/hanfs/shareddisk"
)

// FsckReport is the result of a consistency check.
type FsckReport struct {
	Disk        string   `json:"disk"`
	Problems    []string `json:"problems"`
	Truncated   bool     `json:"truncated,omitempty"` // more problems than listed
	Inodes      uint64   `json:"inodes"`
	Dirs        uint64   `json:"dirs"`
	Files       uint64   `json:"files"`
	TreeNodes   uint64   `json:"tree_nodes"`
	TreeDepth   int      `json:"tree_depth"`
	DataBlocks  uint64   `json:"data_blocks"`
	FreeBlocks  uint64   `json:"free_blocks"`
	JournalTxs  int      `json:"journal_pending_transactions"`
	SuperCopies string   `json:"superblock"`
}

// maxProblems caps the report.
const maxProblems = 1000

// OK reports whether no problem was found.
func (r *FsckReport) OK() bool { return len(r.Problems) == 0 }

// String formats the report for people.
func (r *FsckReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "fsck %s: ", r.Disk)
	if r.OK() {
		b.WriteString("clean\n")
	} else {
		fmt.Fprintf(&b, "%d problem(s)\n", len(r.Problems))
	}
	fmt.Fprintf(&b, "  superblock: %s\n", r.SuperCopies)
	fmt.Fprintf(&b, "  journal: %d committed transaction(s) not yet checkpointed (checked as replayed)\n", r.JournalTxs)
	fmt.Fprintf(&b, "  inodes: %d (%d directories, %d files)\n", r.Inodes, r.Dirs, r.Files)
	fmt.Fprintf(&b, "  metadata tree: %d nodes, depth %d\n", r.TreeNodes, r.TreeDepth)
	fmt.Fprintf(&b, "  blocks: %d in use for file data, %d free\n", r.DataBlocks, r.FreeBlocks)
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "  PROBLEM: %s\n", p)
	}
	if r.Truncated {
		fmt.Fprintf(&b, "  (more problems not listed)\n")
	}
	return b.String()
}

// JSON returns the report as JSON.
func (r *FsckReport) JSON() []byte {
	b, _ := json.MarshalIndent(r, "", "  ")
	return b
}

func (r *FsckReport) add(format string, args ...any) {
	if len(r.Problems) >= maxProblems {
		r.Truncated = true
		return
	}
	r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
}

// roPager reads metadata blocks from the disk, through the images of the
// journal's committed transactions (replay without writing).
type roPager struct {
	d       shareddisk.Disk
	overlay map[uint64][]byte
	lay     shareddisk.Layout
}

func (p *roPager) Read(blk uint64) ([]byte, error) {
	if img, ok := p.overlay[blk]; ok {
		return img, nil
	}
	if blk < p.lay.FSInfo || blk >= p.lay.TotalBlocks {
		return nil, fmt.Errorf("metadata block %d outside the disk", blk)
	}
	b := shareddisk.AlignedBuf(block.Size)
	if _, err := p.d.ReadAt(b, int64(blk)*block.Size); err != nil {
		return nil, fmt.Errorf("read block %d: %w", blk, err)
	}
	if err := block.Verify(b, blk, block.TypeFree); err != nil {
		return nil, err
	}
	return b, nil
}

var errReadOnlyPager = errors.New("fsck is read-only")

func (p *roPager) Modify(uint64) ([]byte, error)  { return nil, errReadOnlyPager }
func (p *roPager) Alloc() (uint64, []byte, error) { return 0, nil, errReadOnlyPager }
func (p *roPager) Free(uint64) error              { return errReadOnlyPager }

type fsckInode struct {
	in       *inode
	links    uint32 // directory entries naming it
	subdirs  uint32
	entries  uint64
	blocks   uint64
	lastFB   uint64 // end of the last extent, in file blocks
	parentOf Ino    // for directories: the directory holding its entry
	orphan   bool
	symlink  bool
}

// Fsck checks every invariant of the file system on d without changing the
// disk: superblock, journal, bitmap, the metadata tree, every item, link
// counts, parent pointers, reachability and block accounting. A journal with
// committed transactions is checked as if replayed. The error is non-nil only
// when the check could not run at all; problems go in the report.
func Fsck(d shareddisk.Disk) (*FsckReport, error) {
	r := &FsckReport{Disk: d.Name()}
	sb, err := shareddisk.ReadSuperblock(d)
	if err != nil {
		return nil, err
	}
	r.SuperCopies = fmt.Sprintf("uuid %s, read from copy %v", sb.UUIDString(), sb.ReadFrom)
	if sb.OtherCopyErr != nil {
		r.add("superblock: other copy: %v", sb.OtherCopyErr)
	}
	lay := sb.Layout
	p := &roPager{d: d, overlay: make(map[uint64][]byte), lay: lay}
	lg, err := journal.Open(d, lay.JournalStart, lay.JournalBlocks)
	if err != nil {
		r.add("journal: %v", err)
	} else {
		n, err := lg.Replay(func(home uint64, img []byte, raw bool) error {
			if raw { // file data: not read as metadata
				delete(p.overlay, home)
				return nil
			}
			p.overlay[home] = append([]byte(nil), img...)
			return nil
		})
		r.JournalTxs = n
		if err != nil {
			r.add("journal: %v", err)
		}
	}
	// Bitmap.
	bits := make([]bool, lay.DataBlocks)
	var bitmapOK = true
	for i := uint64(0); i < lay.BitmapBlocks; i++ {
		b, err := p.Read(lay.BitmapStart + i)
		if err == nil && block.TypeOf(b) != block.TypeBitmap {
			err = fmt.Errorf("block %d: %w", lay.BitmapStart+i, block.ErrType)
		}
		if err != nil {
			r.add("bitmap: %v", err)
			bitmapOK = false
			continue
		}
		for bit := uint64(0); bit < shareddisk.BitsPerBitmapBlock; bit++ {
			rel := i*shareddisk.BitsPerBitmapBlock + bit
			set := b[block.HeaderSize+bit/8]&(1<<(bit%8)) != 0
			if rel < lay.DataBlocks {
				bits[rel] = set
			} else if !set {
				r.add("bitmap: bit %d past the end of the disk is clear", rel)
			}
		}
	}
	// FSInfo and the tree.
	ib, err := p.Read(lay.FSInfo)
	if err == nil && block.TypeOf(ib) != block.TypeFSInfo {
		err = fmt.Errorf("block %d: %w", lay.FSInfo, block.ErrType)
	}
	if err != nil {
		r.add("fsinfo: %v", err)
		return r, nil
	}
	info := decodeInfo(ib)
	used := make([]bool, lay.DataBlocks)
	mark := func(blk uint64, what string) {
		if blk < lay.DataStart || blk >= lay.TotalBlocks {
			r.add("%s: block %d outside the data region", what, blk)
			return
		}
		rel := blk - lay.DataStart
		if used[rel] {
			r.add("%s: block %d used twice", what, blk)
		}
		used[rel] = true
	}
	treeOK := true
	if err := btree.Check(p, info.root, func(blk uint64, level int) {
		r.TreeNodes++
		mark(blk, "metadata tree node")
	}); err != nil {
		r.add("metadata tree: %v", err)
		treeOK = false
	}
	if depth, err := btree.Depth(p, info.root); err == nil {
		r.TreeDepth = depth
	}
	if !treeOK {
		return r, nil
	}
	inodes := make(map[Ino]*fsckInode)
	get := func(ino Ino) *fsckInode {
		fi := inodes[ino]
		if fi == nil {
			fi = &fsckInode{}
			inodes[ino] = fi
		}
		return fi
	}
	type ref struct {
		parent Ino
		name   string
	}
	dirents := make(map[Ino][]ref) // target -> names
	backrefs := make(map[Ino]map[ref]bool)
	var maxIno, maxGen uint64
	err = btree.Scan(p, info.root, btree.Key{}, func(k btree.Key, v []byte) (bool, error) {
		switch k.Type {
		case itemInode:
			in, err := decodeInode(Ino(k.Obj), v)
			if err != nil {
				r.add("%v", err)
				return true, nil
			}
			get(Ino(k.Obj)).in = in
			maxIno, maxGen = max(maxIno, k.Obj), max(maxGen, in.gen)
		case itemDirent:
			es, err := decodeBucket(v)
			if err != nil {
				r.add("directory %d: %v", k.Obj, err)
				return true, nil
			}
			for _, e := range es {
				if checkName(e.name) != nil || hash56(e.name) != k.Off {
					r.add("directory %d: entry %q in the wrong bucket or invalid", k.Obj, e.name)
				}
				dirents[Ino(e.ino)] = append(dirents[Ino(e.ino)], ref{Ino(k.Obj), e.name})
				d := get(Ino(k.Obj))
				d.entries++
				if uint32(e.typ)<<12 == ModeDir {
					d.subdirs++
					get(Ino(e.ino)).parentOf = Ino(k.Obj)
				}
				get(Ino(e.ino)).links++
			}
		case itemBackref:
			es, err := decodeBucket(v)
			if err != nil {
				r.add("inode %d backrefs: %v", k.Obj, err)
				return true, nil
			}
			m := backrefs[Ino(k.Obj)]
			if m == nil {
				m = make(map[ref]bool)
				backrefs[Ino(k.Obj)] = m
			}
			for _, e := range es {
				if backrefHash(Ino(e.ino), e.name) != k.Off {
					r.add("inode %d: backref %d/%q in the wrong bucket", k.Obj, e.ino, e.name)
				}
				m[ref{Ino(e.ino), e.name}] = true
			}
		case itemExtent:
			e, err := decodeExtent(v)
			if err != nil {
				r.add("inode %d extent at %d: %v", k.Obj, k.Off, err)
				return true, nil
			}
			fi := get(Ino(k.Obj))
			if k.Off < fi.lastFB {
				r.add("inode %d: extent at file block %d overlaps the previous one", k.Obj, k.Off)
			}
			fi.lastFB = k.Off + e.n
			fi.blocks += e.n
			r.DataBlocks += e.n
			for b := e.disk; b < e.disk+e.n; b++ {
				mark(b, fmt.Sprintf("inode %d extent at file block %d", k.Obj, k.Off))
			}
		case itemSymlink:
			get(Ino(k.Obj)).symlink = true
		case itemOrphan:
			if k.Obj != 0 {
				r.add("orphan item with object %d", k.Obj)
			}
			get(Ino(k.Off)).orphan = true
		case itemRecord:
			if k.Obj != recObj || len(v) < 24 {
				r.add("malformed request record %v", k)
			}
		default:
			r.add("unknown item type %d at %v", k.Type, k)
		}
		return true, nil
	})
	if err != nil {
		r.add("scan metadata: %v", err)
		return r, nil
	}
	// Per-inode checks.
	for ino, fi := range inodes {
		in := fi.in
		if in == nil {
			if fi.links > 0 {
				r.add("directory entries %v name inode %d, which does not exist", dirents[ino], ino)
			} else {
				r.add("items exist for inode %d, which does not exist", ino)
			}
			continue
		}
		r.Inodes++
		typ := in.mode & ModeType
		switch {
		case typ == ModeDir:
			r.Dirs++
			if fi.orphan {
				r.add("directory %d is an orphan", ino)
			}
			want := 2 + fi.subdirs
			if in.nlink != want {
				r.add("directory %d: link count %d, want %d", ino, in.nlink, want)
			}
			if in.size != fi.entries {
				r.add("directory %d: size %d, has %d entries", ino, in.size, fi.entries)
			}
			if ino == RootIno {
				if fi.links != 0 || in.parent != uint64(RootIno) {
					r.add("root directory has %d names and parent %d", fi.links, in.parent)
				}
			} else if fi.links != 1 {
				r.add("directory %d has %d names, want 1", ino, fi.links)
			} else if Ino(in.parent) != fi.parentOf {
				r.add("directory %d: parent pointer %d, but its entry is in %d", ino, in.parent, fi.parentOf)
			}
		default:
			if typ == ModeRegular {
				r.Files++
			}
			if fi.orphan {
				if in.nlink != 0 || fi.links != 0 {
					r.add("orphan inode %d still has %d links (%d entries)", ino, in.nlink, fi.links)
				}
			} else if in.nlink != fi.links || in.nlink == 0 {
				r.add("inode %d: link count %d, but %d directory entries name it", ino, in.nlink, fi.links)
			}
		}
		if fi.entries > 0 && typ != ModeDir {
			r.add("inode %d is not a directory but has entries", ino)
		}
		if fi.blocks > 0 && typ != ModeRegular {
			r.add("inode %d is not a regular file but has extents", ino)
		}
		if in.blocks != fi.blocks {
			r.add("inode %d: block count %d, extents hold %d", ino, in.blocks, fi.blocks)
		}
		if typ == ModeRegular && fi.lastFB > (in.size+bs-1)/bs {
			r.add("inode %d: extents reach file block %d past its size %d", ino, fi.lastFB, in.size)
		}
		if (typ == ModeSymlink) != fi.symlink {
			r.add("inode %d: symlink target item does not match its type", ino)
		}
		// Dirents and backrefs must match one to one.
		brs := backrefs[ino]
		for _, d := range dirents[ino] {
			if !brs[ref(d)] {
				r.add("inode %d: entry %d/%q has no back reference", ino, d.parent, d.name)
			}
		}
		if len(brs) != len(dirents[ino]) {
			r.add("inode %d: %d back references for %d directory entries", ino, len(brs), len(dirents[ino]))
		}
		if in.gen >= info.nextGen {
			r.add("inode %d: generation %d not below the next generation %d", ino, in.gen, info.nextGen)
		}
	}
	for ino := range dirents {
		if inodes[ino] == nil {
			r.add("directory entries name missing inode %d", ino)
		}
	}
	if inodes[RootIno] == nil || inodes[RootIno].in == nil || inodes[RootIno].in.mode&ModeType != ModeDir {
		r.add("root directory missing")
	}
	// Reachability from the root, through directory entries.
	reach := map[Ino]bool{RootIno: true}
	children := make(map[Ino][]Ino)
	for target, rs := range dirents {
		for _, rf := range rs {
			children[rf.parent] = append(children[rf.parent], target)
		}
	}
	queue := []Ino{RootIno}
	for len(queue) > 0 {
		d := queue[0]
		queue = queue[1:]
		for _, c := range children[d] {
			if !reach[c] {
				reach[c] = true
				queue = append(queue, c)
			}
		}
	}
	for ino, fi := range inodes {
		if fi.in != nil && !reach[ino] && !fi.orphan {
			r.add("inode %d is not reachable from the root", ino)
		}
	}
	if info.inodes != r.Inodes {
		r.add("fsinfo: %d inodes recorded, %d found", info.inodes, r.Inodes)
	}
	if maxIno >= info.nextIno {
		r.add("fsinfo: next inode %d not above the largest %d", info.nextIno, maxIno)
	}
	// Block accounting.
	if bitmapOK {
		leaked, missing := 0, 0
		for i := range bits {
			switch {
			case bits[i] && !used[i]:
				if leaked < 5 {
					r.add("block %d is marked in use but nothing uses it", lay.DataStart+uint64(i))
				}
				leaked++
			case !bits[i] && used[i]:
				if missing < 5 {
					r.add("block %d is in use but marked free", lay.DataStart+uint64(i))
				}
				missing++
			}
			if !bits[i] {
				r.FreeBlocks++
			}
		}
		if leaked > 5 || missing > 5 {
			r.add("%d blocks leaked and %d in use but free in total", leaked, missing)
		}
	}
	return r, nil
}
