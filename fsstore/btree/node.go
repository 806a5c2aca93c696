package btree

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/hanfs/hanfs/fsstore/block"
)

// Node format.
//
// A node is one block of block.Size (4096) bytes. Bytes [0:32) are the common
// metadata block header of package block (type block.TypeBTree); the tree owns
// bytes [32:4096). Integers are little endian, except keys, which are big
// endian so that comparing the raw 17 bytes orders keys like Key.Compare.
//
// Node header:
//
//	offset size  field
//	32     1     level: 0 for a leaf; l > 0 for an internal node whose children are at level l-1
//	33     1     reserved, zero
//	34     2     nitems: number of items
//	36     2     dataStart: leaf: offset of the lowest value byte (4096 if none); internal: zero
//	38     2     reserved, zero
//	40     ...   nitems item headers, sorted by strictly increasing key
//
// Leaf (level 0), in the style of a btrfs leaf: fixed-size item headers grow
// from the front, variable-size values are packed from the back.
//
//	+--------+------+--------+-----+----------+------------+---------+-----+-------+
//	| block  | node | item 0 | ... | item n-1 | free space | val n-1 | ... | val 0 |
//	| header | hdr  |        |     |          |            |         |     |       |
//	+--------+------+--------+-----+----------+------------+---------+-----+-------+
//	0        32     40                        40+21n       dataStart             4096
//
// Leaf item header, 21 bytes:
//
//	offset size  field
//	0      17    key: Obj (8, big endian), Type (1), Off (8, big endian)
//	17     2     value offset in the block
//	19     2     value length, at most MaxValueSize
//
// Values lie back to back in item order: value 0 ends at 4096, value i ends
// where value i-1 begins, and value n-1 begins at dataStart. A leaf is
// therefore always compact; its free space is [40+21*nitems, dataStart).
//
// Internal item, 25 bytes:
//
//	offset size  field
//	0      17    key (as in a leaf)
//	17     8     child block number
//
// Every key in the subtree of child i (i >= 1) is >= key i and < key i+1;
// child 0 holds the keys below key 1 (within the node's own range). Key 0 is
// not used by searches: it is only kept at least the node's lower bound and
// below key 1, so that the keys of every node are strictly increasing.
const (
	offLevel     = block.HeaderSize     // uint8
	offReserved1 = block.HeaderSize + 1 // uint8, zero
	offCount     = block.HeaderSize + 2 // uint16
	offDataStart = block.HeaderSize + 4 // uint16
	offReserved2 = block.HeaderSize + 6 // uint16, zero
	itemsStart   = block.HeaderSize + 8 // first item header

	keySize        = 17
	leafItemSize   = keySize + 4
	branchItemSize = keySize + 8

	// nodeCapacity is the number of bytes a node has for items and values.
	nodeCapacity = block.Size - itemsStart
	// maxBranchItems is the number of children an internal node can hold.
	maxBranchItems = nodeCapacity / branchItemSize
	// maxLevel is the highest level a node may have; it bounds descents.
	maxLevel = 31

	// A non-root leaf whose items and values take fewer bytes than
	// leafMinUsed, or an internal node with fewer than branchMinItems
	// children, is merged with or rebalanced against a sibling.
	leafMinUsed    = nodeCapacity / 4
	branchMinItems = maxBranchItems / 4
)

func get16(b []byte, off int) int    { return int(binary.LittleEndian.Uint16(b[off:])) }
func put16(b []byte, off int, v int) { binary.LittleEndian.PutUint16(b[off:], uint16(v)) }
func nodeLevel(b []byte) int         { return int(b[offLevel]) }
func nodeCount(b []byte) int         { return get16(b, offCount) }
func setCount(b []byte, n int)       { put16(b, offCount, n) }
func dataStart(b []byte) int         { return get16(b, offDataStart) }
func setDataStart(b []byte, ds int)  { put16(b, offDataStart, ds) }
func leafItem(i int) int             { return itemsStart + i*leafItemSize }
func branchItem(i int) int           { return itemsStart + i*branchItemSize }
func branchChild(b []byte, i int) uint64 {
	return binary.LittleEndian.Uint64(b[branchItem(i)+keySize:])
}

// leafUsed returns the bytes taken by the items and values of a leaf.
func leafUsed(b []byte, n int) int { return leafItemSize*n + block.Size - dataStart(b) }

// leafFree returns the free bytes of a leaf with n items.
func leafFree(b []byte, n int) int { return dataStart(b) - leafItem(n) }

// initNode turns b, whose block header is already set, into an empty node of
// the given level.
func initNode(b []byte, level int) {
	clear(b[block.HeaderSize:block.Size])
	b[offLevel] = uint8(level)
	if level == 0 {
		setDataStart(b, block.Size)
	}
}

// encodeKey writes k's 17-byte encoding to b.
func encodeKey(b []byte, k Key) {
	binary.BigEndian.PutUint64(b[0:8], k.Obj)
	b[8] = k.Type
	binary.BigEndian.PutUint64(b[9:17], k.Off)
}

// keyAt decodes the key stored at offset off of b.
func keyAt(b []byte, off int) Key {
	b = b[off : off+keySize]
	return Key{
		Obj:  binary.BigEndian.Uint64(b[0:8]),
		Type: b[8],
		Off:  binary.BigEndian.Uint64(b[9:17]),
	}
}

// cmpKeyAt compares the key stored at offset off of b with k.
func cmpKeyAt(b []byte, off int, k Key) int {
	b = b[off : off+keySize]
	if o := binary.BigEndian.Uint64(b[0:8]); o != k.Obj {
		if o < k.Obj {
			return -1
		}
		return 1
	}
	if t := b[8]; t != k.Type {
		if t < k.Type {
			return -1
		}
		return 1
	}
	if o := binary.BigEndian.Uint64(b[9:17]); o != k.Off {
		if o < k.Off {
			return -1
		}
		return 1
	}
	return 0
}

// leafSearch returns the index of the first item of the leaf whose key is >= k
// and whether that key equals k.
func leafSearch(b []byte, n int, k Key) (int, bool) {
	lo, hi := 0, n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if cmpKeyAt(b, leafItem(m), k) < 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < n && cmpKeyAt(b, leafItem(lo), k) == 0
}

// branchSearch returns the index of the child of an internal node whose
// subtree may hold k. Key 0 is not consulted.
func branchSearch(b []byte, n int, k Key) int {
	lo, hi := 1, n
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if cmpKeyAt(b, branchItem(m), k) <= 0 {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo - 1
}

// corruptf returns an ErrCorrupt error about node blk.
func corruptf(blk uint64, format string, args ...any) error {
	return fmt.Errorf("btree: node %d: %s: %w", blk, fmt.Sprintf(format, args...), ErrCorrupt)
}

// checkHeader does the constant-time checks that make every later access to
// node blk in bounds: block type, level (want is the expected level, or -1)
// and item count. An internal node with no items is accepted only if
// allowEmpty is set. It returns b cut to block.Size.
func checkHeader(b []byte, blk uint64, want int, allowEmpty bool) ([]byte, error) {
	if len(b) < block.Size {
		return nil, corruptf(blk, "short buffer (%d bytes)", len(b))
	}
	b = b[:block.Size]
	if binary.LittleEndian.Uint32(b[4:8]) != block.Magic || block.TypeOf(b) != block.TypeBTree {
		return nil, corruptf(blk, "not a b-tree node (type %v)", block.TypeOf(b))
	}
	lvl := nodeLevel(b)
	if lvl > maxLevel || (want >= 0 && lvl != want) {
		return nil, corruptf(blk, "level %d, want %d", lvl, want)
	}
	n := nodeCount(b)
	if lvl == 0 {
		if ds := dataStart(b); ds > block.Size || ds < leafItem(n) {
			return nil, corruptf(blk, "leaf with %d items has data start %d", n, ds)
		}
	} else if branchItem(n) > block.Size || (n == 0 && !allowEmpty) {
		return nil, corruptf(blk, "internal node with %d items", n)
	}
	return b, nil
}

// leafValueLoc returns the location of the value of leaf item i after checking
// that it lies in the value area of the node.
func leafValueLoc(b []byte, blk uint64, i int) (off, l int, err error) {
	h := leafItem(i) + keySize
	off, l = get16(b, h), get16(b, h+2)
	if off < dataStart(b) || off+l > block.Size || l > MaxValueSize {
		return 0, 0, corruptf(blk, "leaf item %d: value [%d,%d) outside the value area [%d,%d)",
			i, off, off+l, dataStart(b), block.Size)
	}
	return off, l, nil
}

// leafValue returns the value of leaf item i.
func leafValue(b []byte, blk uint64, i int) ([]byte, error) {
	off, l, err := leafValueLoc(b, blk, i)
	if err != nil {
		return nil, err
	}
	return b[off : off+l : off+l], nil
}

// checkLeafValues checks the value location of every item of a leaf.
func checkLeafValues(b []byte, blk uint64, n int) error {
	for i := range n {
		if _, _, err := leafValueLoc(b, blk, i); err != nil {
			return err
		}
	}
	return nil
}

// leafInsert inserts (k, v) as item idx of a leaf with n items. The caller
// has checked that it fits.
func leafInsert(b []byte, blk uint64, n, idx int, k Key, v []byte) error {
	ds := dataStart(b)
	end := block.Size // the values of items idx.. lie in [ds, end)
	if idx > 0 {
		end = get16(b, leafItem(idx-1)+keySize)
	}
	l := len(v)
	if end < ds || end > block.Size || idx > n || ds-l < leafItem(n+1) {
		return corruptf(blk, "cannot insert item %d of %d bytes (data start %d, end %d)", idx, l, ds, end)
	}
	if l > 0 {
		copy(b[ds-l:end-l], b[ds:end])
		for j := idx; j < n; j++ {
			h := leafItem(j) + keySize
			put16(b, h, get16(b, h)-l)
		}
	}
	copy(b[leafItem(idx+1):leafItem(n+1)], b[leafItem(idx):leafItem(n)])
	h := leafItem(idx)
	encodeKey(b[h:], k)
	put16(b, h+keySize, end-l)
	put16(b, h+keySize+2, l)
	copy(b[end-l:end], v)
	setCount(b, n+1)
	setDataStart(b, ds-l)
	return nil
}

// leafRemove removes item idx of a leaf with n items.
func leafRemove(b []byte, blk uint64, n, idx int) error {
	off, l, err := leafValueLoc(b, blk, idx)
	if err != nil {
		return err
	}
	ds := dataStart(b)
	if l > 0 {
		// The values of items idx+1.. lie in [ds, off).
		copy(b[ds+l:off+l], b[ds:off])
		for j := idx + 1; j < n; j++ {
			h := leafItem(j) + keySize
			put16(b, h, get16(b, h)+l)
		}
	}
	copy(b[leafItem(idx):leafItem(n-1)], b[leafItem(idx+1):leafItem(n)])
	setCount(b, n-1)
	setDataStart(b, ds+l)
	return nil
}

// leafAppend appends an item with the 17-byte encoded key kb and value v to
// the end of leaf dst.
func leafAppend(dst []byte, blk uint64, kb, v []byte) error {
	n := nodeCount(dst)
	ds := dataStart(dst)
	l := len(v)
	if ds > block.Size || ds-l < leafItem(n+1) {
		return corruptf(blk, "no room to append %d bytes", l)
	}
	h := leafItem(n)
	copy(dst[h:h+keySize], kb)
	put16(dst, h+keySize, ds-l)
	put16(dst, h+keySize+2, l)
	copy(dst[ds-l:ds], v)
	setCount(dst, n+1)
	setDataStart(dst, ds-l)
	return nil
}

// branchInsert inserts (k, child) as item idx of an internal node with n
// items. The caller has checked that it fits.
func branchInsert(b []byte, n, idx int, k Key, child uint64) {
	copy(b[branchItem(idx+1):branchItem(n+1)], b[branchItem(idx):branchItem(n)])
	h := branchItem(idx)
	encodeKey(b[h:], k)
	binary.LittleEndian.PutUint64(b[h+keySize:], child)
	setCount(b, n+1)
}

// branchRemove removes item idx of an internal node with n items. When item 0
// goes, the new item 0 inherits its key, which is the node's lower bound.
func branchRemove(b []byte, n, idx int) {
	var k0 [keySize]byte
	copy(k0[:], b[branchItem(0):])
	copy(b[branchItem(idx):branchItem(n-1)], b[branchItem(idx+1):branchItem(n)])
	clear(b[branchItem(n-1):branchItem(n)])
	if idx == 0 && n > 1 {
		copy(b[branchItem(0):], k0[:])
	}
	setCount(b, n-1)
}

// setBranchKey replaces the key of item i of an internal node.
func setBranchKey(b []byte, i int, k Key) { encodeKey(b[branchItem(i):], k) }

// VerifyNode checks the internal structure of one node: block type, level,
// item count, that leaf values are packed back to back inside the block and
// no larger than MaxValueSize, and that keys are strictly increasing. It never
// panics, whatever buf holds. Errors wrap ErrCorrupt.
func VerifyNode(buf []byte) error {
	if err := verifyNode(buf); err != nil {
		return fmt.Errorf("btree: %w", err)
	}
	return nil
}

// verifyNode is VerifyNode without the package prefix on errors.
func verifyNode(b []byte) error {
	if len(b) != block.Size {
		return fmt.Errorf("node buffer has %d bytes, want %d: %w", len(b), block.Size, ErrCorrupt)
	}
	if m := binary.LittleEndian.Uint32(b[4:8]); m != block.Magic {
		return fmt.Errorf("bad magic %08x: %w", m, ErrCorrupt)
	}
	if t := block.TypeOf(b); t != block.TypeBTree {
		return fmt.Errorf("block type %v, want %v: %w", t, block.TypeBTree, ErrCorrupt)
	}
	lvl := nodeLevel(b)
	if lvl > maxLevel {
		return fmt.Errorf("level %d above %d: %w", lvl, maxLevel, ErrCorrupt)
	}
	if b[offReserved1] != 0 || get16(b, offReserved2) != 0 {
		return fmt.Errorf("reserved header bytes not zero: %w", ErrCorrupt)
	}
	n := nodeCount(b)
	ds := dataStart(b)
	itemSize := branchItemSize
	if lvl == 0 {
		itemSize = leafItemSize
		if leafItem(n) > block.Size {
			return fmt.Errorf("leaf: %d items do not fit: %w", n, ErrCorrupt)
		}
		if ds < leafItem(n) || ds > block.Size {
			return fmt.Errorf("leaf: data start %d outside [%d,%d]: %w", ds, leafItem(n), block.Size, ErrCorrupt)
		}
		end := block.Size
		for i := range n {
			h := leafItem(i) + keySize
			off, l := get16(b, h), get16(b, h+2)
			if l > MaxValueSize {
				return fmt.Errorf("leaf item %d: value of %d bytes exceeds %d: %w", i, l, MaxValueSize, ErrCorrupt)
			}
			if off+l != end || off < ds {
				return fmt.Errorf("leaf item %d: value [%d,%d) is not packed below %d (data start %d): %w",
					i, off, off+l, end, ds, ErrCorrupt)
			}
			end = off
		}
		if end != ds {
			return fmt.Errorf("leaf: values end at %d, data start says %d: %w", end, ds, ErrCorrupt)
		}
	} else {
		if n == 0 {
			return fmt.Errorf("internal node without children: %w", ErrCorrupt)
		}
		if n > maxBranchItems {
			return fmt.Errorf("internal node: %d items exceed %d: %w", n, maxBranchItems, ErrCorrupt)
		}
		if ds != 0 {
			return fmt.Errorf("internal node: data start %d, want 0: %w", ds, ErrCorrupt)
		}
	}
	for i := 1; i < n; i++ {
		prev := itemsStart + (i-1)*itemSize
		cur := prev + itemSize
		if bytes.Compare(b[prev:prev+keySize], b[cur:cur+keySize]) >= 0 {
			return fmt.Errorf("item %d: key %v not above key %v of item %d: %w",
				i, keyAt(b, cur), keyAt(b, prev), i-1, ErrCorrupt)
		}
	}
	return nil
}
