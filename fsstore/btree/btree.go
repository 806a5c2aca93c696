// Package btree implements the B+tree that holds all metadata of a hanfs file
// system (inodes, directory entries, back references, file extents, ...).
//
// Nodes are 4096-byte metadata blocks reached through a Pager, which the
// transaction layer implements. Leaves hold (key, value) items laid out like
// a btrfs leaf; internal nodes hold (key, child) items. All operations work
// directly on the raw node bytes: nodes are never decoded into Go structures.
// See node.go for the node format.
//
// The functions are stateless: a tree is identified by its root block
// number, and operations that may change the root return the new one. Reads
// (Get, Scan, ScanBack, Check, Depth) may run concurrently with each other
// if the Pager allows it; modifications need exclusive access.
//
// Reads check every node they reach in constant time (type, level, item
// count, and the bounds of every value they touch), so that a corrupt node
// yields an error wrapping ErrCorrupt rather than a panic. Check and VerifyNode
// verify whole nodes.
package btree

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"

	"github.com/hanfs/hanfs/fsstore/block"
)

// MaxValueSize is the largest value Put accepts.
const MaxValueSize = 1024

// ErrValueTooLarge reports a value larger than MaxValueSize.
var ErrValueTooLarge = errors.New("btree: value too large")

// ErrCorrupt reports a node that violates the node format or the tree
// invariants.
var ErrCorrupt = errors.New("corrupt b-tree node")

// Key orders items: by Obj, then Type, then Off. It is stored as 17 bytes
// (Obj 8 and Off 8 big endian, Type 1) so that bytewise order is key order.
type Key struct {
	Obj  uint64 // object (inode) number
	Type uint8  // item type
	Off  uint64 // type-specific offset, hash or sequence number
}

// Compare returns -1, 0 or +1 as k is less than, equal to or greater than o.
func (k Key) Compare(o Key) int {
	switch {
	case k.Obj != o.Obj:
		if k.Obj < o.Obj {
			return -1
		}
		return 1
	case k.Type != o.Type:
		if k.Type < o.Type {
			return -1
		}
		return 1
	case k.Off != o.Off:
		if k.Off < o.Off {
			return -1
		}
		return 1
	}
	return 0
}

// String formats k as (obj type off).
func (k Key) String() string { return fmt.Sprintf("(%d %d %d)", k.Obj, k.Type, k.Off) }

// Pager is how the tree reads and changes node blocks. The transaction layer
// implements it.
//
// A buffer returned by Read is read-only and stays valid until the current
// operation ends or a block is modified, allocated or freed, whichever comes
// first. A buffer returned by Modify or Alloc is the writable contents of its
// block and must stay valid, and be the buffer that later Read and Modify
// calls of that block return, until the current operation ends.
type Pager interface {
	// Read returns the contents of block blk.
	Read(blk uint64) ([]byte, error)
	// Modify returns a writable buffer of block blk; the change joins the
	// current transaction.
	Modify(blk uint64) ([]byte, error)
	// Alloc returns a new block and its writable block.Size-byte buffer,
	// whose contents are undefined.
	Alloc() (uint64, []byte, error)
	// Free releases block blk, which is no longer part of the tree.
	Free(blk uint64) error
}

// pathElem is one node on the way from the root to a leaf: the node's block,
// its level, and the index of the child taken (internal nodes).
type pathElem struct {
	blk uint64
	lvl int
	idx int
}

// treePath is the way from the root (e[0]) to a leaf (e[n-1]).
type treePath struct {
	n int
	e [maxLevel + 1]pathElem
}

func (t *treePath) push(blk uint64, lvl, idx int) {
	t.e[t.n] = pathElem{blk: blk, lvl: lvl, idx: idx}
	t.n++
}

// readNode reads node blk, expected at level want (-1: any), and checks its
// header.
func readNode(p Pager, blk uint64, want int, allowEmpty bool) ([]byte, error) {
	b, err := p.Read(blk)
	if err != nil {
		return nil, fmt.Errorf("btree: read node %d: %w", blk, err)
	}
	return checkHeader(b, blk, want, allowEmpty)
}

// modifyNode makes node blk, expected at level want (-1: any), writable and
// checks its header.
func modifyNode(p Pager, blk uint64, want int, allowEmpty bool) ([]byte, error) {
	b, err := p.Modify(blk)
	if err != nil {
		return nil, fmt.Errorf("btree: modify node %d: %w", blk, err)
	}
	return checkHeader(b, blk, want, allowEmpty)
}

// allocNode allocates a new empty node at the given level.
func allocNode(p Pager, level int) (uint64, []byte, error) {
	blk, b, err := p.Alloc()
	if err != nil {
		return 0, nil, fmt.Errorf("btree: alloc node: %w", err)
	}
	if len(b) < block.Size {
		return 0, nil, fmt.Errorf("btree: alloc node %d: short buffer (%d bytes)", blk, len(b))
	}
	b = b[:block.Size]
	block.Init(b, block.TypeBTree)
	initNode(b, level)
	return blk, b, nil
}

// freeNode releases node blk.
func freeNode(p Pager, blk uint64) error {
	if err := p.Free(blk); err != nil {
		return fmt.Errorf("btree: free node %d: %w", blk, err)
	}
	return nil
}

// descend walks from root to the leaf that may hold k, recording the path,
// and returns the index of the first leaf item >= k and whether it equals k.
func descend(p Pager, root uint64, k Key, path *treePath) (int, bool, error) {
	path.n = 0
	blk, want := root, -1
	for {
		b, err := readNode(p, blk, want, false)
		if err != nil {
			return 0, false, err
		}
		lvl, n := nodeLevel(b), nodeCount(b)
		if lvl == 0 {
			path.push(blk, 0, 0)
			i, found := leafSearch(b, n, k)
			return i, found, nil
		}
		i := branchSearch(b, n, k)
		path.push(blk, lvl, i)
		blk, want = branchChild(b, i), lvl-1
	}
}

// Create makes an empty tree, a single empty leaf, and returns its root.
func Create(p Pager) (root uint64, err error) {
	blk, _, err := allocNode(p, 0)
	if err != nil {
		return 0, fmt.Errorf("btree: create: %w", err)
	}
	return blk, nil
}

// Get returns a copy of the value stored under k, and whether there is one.
func Get(p Pager, root uint64, k Key) (val []byte, ok bool, err error) {
	blk, want := root, -1
	for {
		b, err := readNode(p, blk, want, false)
		if err != nil {
			return nil, false, err
		}
		lvl, n := nodeLevel(b), nodeCount(b)
		if lvl == 0 {
			i, found := leafSearch(b, n, k)
			if !found {
				return nil, false, nil
			}
			v, err := leafValue(b, blk, i)
			if err != nil {
				return nil, false, err
			}
			return bytes.Clone(v), true, nil
		}
		i := branchSearch(b, n, k)
		blk, want = branchChild(b, i), lvl-1
	}
}

// Depth returns the number of levels of the tree: 1 for a single leaf.
func Depth(p Pager, root uint64) (int, error) {
	b, err := readNode(p, root, -1, false)
	if err != nil {
		return 0, err
	}
	return nodeLevel(b) + 1, nil
}

// Put stores v under k, replacing any previous value, and returns the root of
// the tree, which changes when the root splits. v is copied.
func Put(p Pager, root uint64, k Key, v []byte) (newRoot uint64, err error) {
	if len(v) > MaxValueSize {
		return root, fmt.Errorf("btree: put %v: %d bytes: %w", k, len(v), ErrValueTooLarge)
	}
	var path treePath
	if _, _, err := descend(p, root, k, &path); err != nil {
		return root, err
	}
	leaf := path.e[path.n-1].blk
	b, err := modifyNode(p, leaf, 0, false)
	if err != nil {
		return root, err
	}
	n := nodeCount(b)
	idx, found := leafSearch(b, n, k)
	shrunk := false
	if found {
		off, l, err := leafValueLoc(b, leaf, idx)
		if err != nil {
			return root, err
		}
		if l == len(v) {
			copy(b[off:off+l], v)
			return root, nil
		}
		if err := leafRemove(b, leaf, n, idx); err != nil {
			return root, err
		}
		n--
		shrunk = len(v) < l
	}
	if leafFree(b, n) >= leafItemSize+len(v) {
		if err := leafInsert(b, leaf, n, idx, k, v); err != nil {
			return root, err
		}
		if shrunk {
			return rebalance(p, root, &path)
		}
		return root, nil
	}
	sep, right, err := splitLeaf(p, leaf, b, idx, k, v)
	if err != nil {
		return root, err
	}
	return insertUp(p, root, &path, path.n-2, sep, right)
}

// insertUp inserts the separator sep and the new node right into the node at
// path.e[d], just after the child the path went through, splitting nodes up
// to the root as needed. It returns the new root.
func insertUp(p Pager, root uint64, path *treePath, d int, sep Key, right uint64) (uint64, error) {
	for ; d >= 0; d-- {
		pe := path.e[d]
		b, err := modifyNode(p, pe.blk, pe.lvl, false)
		if err != nil {
			return root, err
		}
		n, at := nodeCount(b), pe.idx+1
		if at > n {
			return root, corruptf(pe.blk, "child %d of %d", pe.idx, n)
		}
		if n < maxBranchItems {
			branchInsert(b, n, at, sep, right)
			return root, nil
		}
		if sep, right, err = splitBranch(p, pe.blk, b, at, sep, right); err != nil {
			return root, err
		}
	}
	lvl := path.e[0].lvl + 1
	if lvl > maxLevel {
		return root, fmt.Errorf("btree: tree deeper than %d levels: %w", maxLevel+1, ErrCorrupt)
	}
	nr, b, err := allocNode(p, lvl)
	if err != nil {
		return root, err
	}
	branchInsert(b, 0, 0, Key{}, root)
	branchInsert(b, 1, 1, sep, right)
	return nr, nil
}

// Delete removes the item with key k and returns the root of the tree, which
// changes when the tree shrinks, and whether there was such an item.
func Delete(p Pager, root uint64, k Key) (newRoot uint64, found bool, err error) {
	var path treePath
	if _, found, err := descend(p, root, k, &path); err != nil || !found {
		return root, false, err
	}
	leaf := path.e[path.n-1].blk
	b, err := modifyNode(p, leaf, 0, false)
	if err != nil {
		return root, false, err
	}
	n := nodeCount(b)
	idx, found := leafSearch(b, n, k)
	if !found {
		return root, false, nil
	}
	if err := leafRemove(b, leaf, n, idx); err != nil {
		return root, false, err
	}
	root, err = rebalance(p, root, &path)
	return root, true, err
}

// underfull reports whether a non-root node with n items should be merged
// with or rebalanced against a sibling.
func underfull(b []byte, lvl, n int) bool {
	if lvl == 0 {
		return leafUsed(b, n) < leafMinUsed
	}
	return n < branchMinItems
}

// rebalance restores the fill invariants after the leaf at the end of path
// shrank: empty nodes are removed, underfull nodes merged with or rebalanced
// against a sibling, up the path as far as needed, and a root left with a
// single child is replaced by that child. It returns the new root.
func rebalance(p Pager, root uint64, path *treePath) (uint64, error) {
	rootChanged := false
	for d := path.n - 1; d > 0; d-- {
		pe, pp := path.e[d], path.e[d-1]
		b, err := modifyNode(p, pe.blk, pe.lvl, true)
		if err != nil {
			return root, err
		}
		n := nodeCount(b)
		if !underfull(b, pe.lvl, n) {
			break
		}
		pb, err := modifyNode(p, pp.blk, pp.lvl, false)
		if err != nil {
			return root, err
		}
		pn, i := nodeCount(pb), pp.idx
		if i >= pn || branchChild(pb, i) != pe.blk {
			return root, corruptf(pp.blk, "child %d of %d is not node %d", i, pn, pe.blk)
		}
		rootChanged = d-1 == 0
		if n == 0 {
			branchRemove(pb, pn, i)
			if err := freeNode(p, pe.blk); err != nil {
				return root, err
			}
			continue
		}
		if pn == 1 {
			continue // no sibling; the parent is underfull too
		}
		li := i
		if li+1 == pn {
			li--
		}
		if err := fixPair(p, pp.blk, pb, pn, li, pe.lvl); err != nil {
			return root, err
		}
	}
	if !rootChanged {
		return root, nil
	}
	// Shrink the tree while the root is an internal node with one child.
	want := -1
	for {
		b, err := readNode(p, root, want, true)
		if err != nil {
			return root, err
		}
		lvl, n := nodeLevel(b), nodeCount(b)
		if lvl == 0 || n >= 2 {
			return root, nil
		}
		if n == 0 {
			// Every child was removed: the root becomes an empty leaf.
			if b, err = modifyNode(p, root, lvl, true); err != nil {
				return root, err
			}
			initNode(b, 0)
			return root, nil
		}
		child := branchChild(b, 0)
		if err := freeNode(p, root); err != nil {
			return root, err
		}
		root, want = child, lvl-1
	}
}

// fixPair merges children li and li+1 of the internal node pb (block pblk,
// n items), both at level lvl, or, if they do not fit in one node, moves
// items between them so that both are about equally full.
func fixPair(p Pager, pblk uint64, pb []byte, n, li, lvl int) error {
	lblk, rblk := branchChild(pb, li), branchChild(pb, li+1)
	if lblk == rblk {
		return corruptf(pblk, "children %d and %d are both node %d", li, li+1, lblk)
	}
	lb, err := modifyNode(p, lblk, lvl, false)
	if err != nil {
		return err
	}
	// The right node only changes if the two do not fit in one: read it
	// first, make it writable later.
	rb, err := readNode(p, rblk, lvl, false)
	if err != nil {
		return err
	}
	ln, rn := nodeCount(lb), nodeCount(rb)
	if lvl == 0 {
		if err := checkLeafValues(lb, lblk, ln); err != nil {
			return err
		}
		if err := checkLeafValues(rb, rblk, rn); err != nil {
			return err
		}
		if leafUsed(lb, ln)+leafUsed(rb, rn) <= nodeCapacity {
			for i := range rn {
				h := leafItem(i)
				v, _ := leafValue(rb, rblk, i)
				if err := leafAppend(lb, lblk, rb[h:h+keySize], v); err != nil {
					return err
				}
			}
			branchRemove(pb, n, li+1)
			return freeNode(p, rblk)
		}
		if rb, err = modifyNode(p, rblk, lvl, false); err != nil || nodeCount(rb) != rn {
			return cmp.Or(err, corruptf(rblk, "changed when made writable"))
		}
		var lt, rt [block.Size]byte
		copy(lt[:], lb)
		copy(rt[:], rb)
		s := leafSeq{a: lt[:], na: ln, b: rt[:], nb: rn, ins: -1}
		sep, err := s.split(lblk, lb, rblk, rb, balancedLeafSplit(&s))
		if err != nil {
			return err
		}
		setBranchKey(pb, li+1, sep)
		return nil
	}
	sep := keyAt(pb, branchItem(li+1))
	if ln+rn <= maxBranchItems {
		for i := range rn {
			k := keyAt(rb, branchItem(i))
			if i == 0 {
				k = sep
			}
			branchInsert(lb, ln+i, ln+i, k, branchChild(rb, i))
		}
		branchRemove(pb, n, li+1)
		return freeNode(p, rblk)
	}
	if rb, err = modifyNode(p, rblk, lvl, false); err != nil || nodeCount(rb) != rn {
		return cmp.Or(err, corruptf(rblk, "changed when made writable"))
	}
	var lt, rt [block.Size]byte
	copy(lt[:], lb)
	copy(rt[:], rb)
	s := branchSeq{a: lt[:], na: ln, b: rt[:], nb: rn, bKey0: sep, ins: -1}
	setBranchKey(pb, li+1, s.split(lb, rb, (ln+rn)/2))
	return nil
}

// leafSeq is a sequence of leaf items taken from one or two leaves (copies
// of them) plus, optionally, one new item, used to split and rebalance.
type leafSeq struct {
	a, b   []byte // source leaves; b may be nil
	na, nb int
	ins    int // position of the new item in the sequence, or -1
	k      Key
	v      []byte
}

func (s *leafSeq) len() int {
	if s.ins >= 0 {
		return s.na + s.nb + 1
	}
	return s.na + s.nb
}

// at maps position j to a source leaf and item index; src is nil for the new
// item.
func (s *leafSeq) at(j int) (src []byte, i int) {
	if s.ins >= 0 {
		if j == s.ins {
			return nil, 0
		}
		if j > s.ins {
			j--
		}
	}
	if j < s.na {
		return s.a, j
	}
	return s.b, j - s.na
}

// size returns the bytes item j takes in a leaf. The sources' value
// locations must have been checked.
func (s *leafSeq) size(j int) int {
	src, i := s.at(j)
	if src == nil {
		return leafItemSize + len(s.v)
	}
	return leafItemSize + get16(src, leafItem(i)+keySize+2)
}

func (s *leafSeq) key(j int) Key {
	src, i := s.at(j)
	if src == nil {
		return s.k
	}
	return keyAt(src, leafItem(i))
}

// appendTo appends item j to the leaf dst (block blk).
func (s *leafSeq) appendTo(dst []byte, blk uint64, j int) error {
	src, i := s.at(j)
	if src == nil {
		var kb [keySize]byte
		encodeKey(kb[:], s.k)
		return leafAppend(dst, blk, kb[:], s.v)
	}
	v, err := leafValue(src, blk, i)
	if err != nil {
		return err
	}
	h := leafItem(i)
	return leafAppend(dst, blk, src[h:h+keySize], v)
}

// split empties the leaves l and r and fills l with items [0,t) and r with
// items [t,len) of the sequence. It returns the key of item t, the
// separator of r.
func (s *leafSeq) split(lblk uint64, l []byte, rblk uint64, r []byte, t int) (Key, error) {
	total, left := 0, 0
	for j := range s.len() {
		if j == t {
			left = total
		}
		total += s.size(j)
	}
	if t < 1 || t >= s.len() || left > nodeCapacity || total-left > nodeCapacity {
		return Key{}, corruptf(lblk, "cannot split %d items (%d bytes) at %d", s.len(), total, t)
	}
	initNode(l, 0)
	initNode(r, 0)
	for j := range s.len() {
		dst, blk := l, lblk
		if j >= t {
			dst, blk = r, rblk
		}
		if err := s.appendTo(dst, blk, j); err != nil {
			return Key{}, err
		}
	}
	return s.key(t), nil
}

// balancedLeafSplit returns the split point t in [1, len-1] that divides the
// bytes of the sequence most evenly.
func balancedLeafSplit(s *leafSeq) int {
	n := s.len()
	total := 0
	for j := range n {
		total += s.size(j)
	}
	acc := 0
	for t := 1; t < n; t++ {
		sz := s.size(t - 1)
		acc += sz
		if 2*acc >= total {
			if t > 1 && total-(acc-sz) < acc {
				return t - 1
			}
			return t
		}
	}
	return max(n-1, 1)
}

// splitLeaf inserts (k, v) as item idx of the leaf b (block blk), which has
// no room for it, by moving part of its items to a new leaf. It returns the
// separator and block of the new leaf, which goes right of blk.
func splitLeaf(p Pager, blk uint64, b []byte, idx int, k Key, v []byte) (Key, uint64, error) {
	n := nodeCount(b)
	if n == 0 {
		return Key{}, 0, corruptf(blk, "empty leaf without room for %d bytes", len(v))
	}
	if err := checkLeafValues(b, blk, n); err != nil {
		return Key{}, 0, err
	}
	var tmp [block.Size]byte
	copy(tmp[:], b)
	s := leafSeq{a: tmp[:], na: n, ins: idx, k: k, v: v}
	// Appending at the end (or the front) of a leaf, typical of sequential
	// inserts, leaves the old items together so that such leaves stay full.
	var t int
	switch idx {
	case n:
		t = n
	case 0:
		t = 1
	default:
		t = balancedLeafSplit(&s)
	}
	rblk, rb, err := allocNode(p, 0)
	if err != nil {
		return Key{}, 0, err
	}
	sep, err := s.split(blk, b, rblk, rb, t)
	if err != nil {
		return Key{}, 0, err
	}
	return sep, rblk, nil
}

// branchSeq is a sequence of internal items taken from one or two internal
// nodes (copies of them) plus, optionally, one new item.
type branchSeq struct {
	a, b   []byte // source nodes; b may be nil
	na, nb int
	bKey0  Key // replaces key 0 of b: the separator of b in the parent
	ins    int // position of the new item in the sequence, or -1
	k      Key
	child  uint64
}

func (s *branchSeq) len() int {
	if s.ins >= 0 {
		return s.na + s.nb + 1
	}
	return s.na + s.nb
}

func (s *branchSeq) item(j int) (Key, uint64) {
	if s.ins >= 0 {
		if j == s.ins {
			return s.k, s.child
		}
		if j > s.ins {
			j--
		}
	}
	if j < s.na {
		return keyAt(s.a, branchItem(j)), branchChild(s.a, j)
	}
	j -= s.na
	if j == 0 {
		return s.bKey0, branchChild(s.b, 0)
	}
	return keyAt(s.b, branchItem(j)), branchChild(s.b, j)
}

// split fills l with items [0,t) and r with items [t,len) of the sequence,
// which the caller guarantees fit, and returns the key of item t.
func (s *branchSeq) split(l, r []byte, t int) Key {
	lvl := nodeLevel(l)
	initNode(l, lvl)
	initNode(r, lvl)
	for j := range s.len() {
		k, c := s.item(j)
		if j < t {
			branchInsert(l, j, j, k, c)
		} else {
			branchInsert(r, j-t, j-t, k, c)
		}
	}
	k, _ := s.item(t)
	return k
}

// splitBranch inserts (k, child) as item idx of the full internal node b
// (block blk) by moving half of its items to a new node. It returns the
// separator and block of the new node, which goes right of blk.
func splitBranch(p Pager, blk uint64, b []byte, idx int, k Key, child uint64) (Key, uint64, error) {
	n := nodeCount(b)
	var tmp [block.Size]byte
	copy(tmp[:], b)
	rblk, rb, err := allocNode(p, nodeLevel(b))
	if err != nil {
		return Key{}, 0, err
	}
	s := branchSeq{a: tmp[:], na: n, ins: idx, k: k, child: child}
	return s.split(b, rb, (n+1)/2), rblk, nil
}
