package btree

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/hanfs/hanfs/fsstore/block"
)

// fuzzNode makes a b-tree node block whose bytes past the block header are
// data (zero padded, truncated at the block end).
func fuzzNode(data []byte) []byte {
	b := make([]byte, block.Size)
	block.Init(b, block.TypeBTree)
	copy(b[block.HeaderSize:], data)
	return b
}

// fuzzLeaf is the node that memPager's fallback hands out for any block the
// fuzzed node points to: a valid leaf with a few items.
func fuzzLeaf(blk uint64) []byte {
	b := make([]byte, block.Size)
	block.Init(b, block.TypeBTree)
	initNode(b, 0)
	for i := range 3 {
		k := Key{Obj: blk, Type: uint8(i), Off: blk * 3}
		if err := leafInsert(b, blk, i, i, k, []byte{byte(i), byte(blk)}); err != nil {
			panic(err) // a bug in the test, not in the input
		}
	}
	return b
}

func FuzzVerifyNode(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		VerifyNode(data) // any length, any contents
		b := fuzzNode(data)
		if err := VerifyNode(b); err != nil {
			if _, err2 := checkHeader(b, 1, -1, false); err2 == nil && nodeLevel(b) == 0 {
				// A leaf that passes the quick header check but not
				// VerifyNode: reading its values must still be safe.
				for i := range nodeCount(b) {
					leafValue(b, 1, i)
				}
			}
			return
		}
		// A node VerifyNode accepts passes the read-path checks.
		if _, err := checkHeader(b, 1, -1, false); err != nil {
			t.Fatalf("VerifyNode accepts a node checkHeader rejects: %v", err)
		}
		if nodeLevel(b) == 0 {
			if err := checkLeafValues(b, 1, nodeCount(b)); err != nil {
				t.Fatalf("VerifyNode accepts a leaf with a bad value: %v", err)
			}
		}
	})
}

// FuzzNodeOps runs every operation on a tree whose root is an arbitrary node:
// nothing may panic, and a leaf root that VerifyNode accepts must behave like
// a correct tree.
func FuzzNodeOps(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		root := fuzzNode(data)
		verr := VerifyNode(root)
		p := newPager(len(data)%2 == 0)
		p.blocks[1] = root
		p.next = 1 << 62
		p.fallback = fuzzLeaf

		// Keys to try: those of the node, their neighbours, and a few fixed.
		keys := []Key{{}, {Obj: ^uint64(0), Type: 255, Off: ^uint64(0)}, {Obj: 1, Type: 1, Off: 1}}
		n := min(nodeCount(root), 200)
		itemSize := leafItemSize
		if nodeLevel(root) > 0 {
			itemSize = branchItemSize
		}
		for i := range n {
			off := itemsStart + i*itemSize
			if off+keySize > block.Size {
				break
			}
			k := keyAt(root, off)
			keys = append(keys, k, Key{k.Obj, k.Type, k.Off + 1}, Key{k.Obj, k.Type, k.Off - 1})
		}

		validLeaf := verr == nil && nodeLevel(root) == 0
		var want []item
		if validLeaf {
			for i := range nodeCount(root) {
				v, err := leafValue(root, 1, i)
				if err != nil {
					t.Fatalf("VerifyNode accepted a leaf with a bad value: %v", err)
				}
				want = append(want, item{keyAt(root, leafItem(i)), bytes.Clone(v)})
			}
		}

		var got []item
		collect := func(k Key, v []byte) (bool, error) {
			got = append(got, item{k, bytes.Clone(v)})
			return len(got) < 1000, nil
		}
		for _, k := range keys[:min(len(keys), 30)] {
			v, ok, err := Get(p, 1, k)
			got = got[:0]
			serr := Scan(p, 1, k, collect)
			got = got[:0]
			berr := ScanBack(p, 1, k, collect)
			if validLeaf {
				if err != nil || serr != nil || berr != nil {
					t.Fatalf("valid leaf: Get/Scan/ScanBack %v: %v / %v / %v", k, err, serr, berr)
				}
				i, found := 0, false
				for i < len(want) && want[i].k.Compare(k) < 0 {
					i++
				}
				found = i < len(want) && want[i].k == k
				if ok != found || (found && !bytes.Equal(v, want[i].v)) {
					t.Fatalf("valid leaf: Get %v = %x, %v; want found=%v", k, v, ok, found)
				}
			}
		}
		if validLeaf {
			got = got[:0]
			if err := Scan(p, 1, Key{}, collect); err != nil || len(got) != len(want) {
				t.Fatalf("valid leaf: Scan: %v, %d items, want %d", err, len(got), len(want))
			}
			for i := range got {
				if got[i].k != want[i].k || !bytes.Equal(got[i].v, want[i].v) {
					t.Fatalf("valid leaf: Scan item %d: %v, want %v", i, got[i].k, want[i].k)
				}
			}
		}
		cerr := Check(p, 1, nil)
		if validLeaf && cerr != nil {
			t.Fatalf("valid leaf: Check: %v", cerr)
		}
		if verr != nil && cerr == nil {
			t.Fatalf("Check accepts a node VerifyNode rejects (%v)", verr)
		}

		// Modify the tree. On a valid leaf root the result must be a valid
		// tree holding the expected items.
		r := uint64(1)
		m := newModel()
		for _, it := range want {
			m.put(it.k, it.v)
		}
		for i, k := range keys[:min(len(keys), 40)] {
			var err error
			if i%3 == 2 {
				var found bool
				r, found, err = Delete(p, r, k)
				if validLeaf && err == nil && found != m.del(k) {
					t.Fatalf("valid leaf: Delete %v found=%v", k, found)
				}
			} else {
				v := make([]byte, (k.Off+uint64(i)*97)%(MaxValueSize+1))
				if len(v) >= 8 {
					binary.LittleEndian.PutUint64(v, k.Obj)
				}
				r, err = Put(p, r, k, v)
				if err == nil {
					m.put(k, v)
				}
			}
			if err != nil {
				if validLeaf {
					t.Fatalf("valid leaf: op %d on %v: %v", i, k, err)
				}
				return
			}
			clear(p.dirty)
		}
		if !validLeaf {
			Check(p, r, nil)
			return
		}
		if len(p.errs) > 0 {
			t.Fatalf("pager misuse: %v", p.errs)
		}
		if err := Check(p, r, nil); err != nil {
			t.Fatalf("valid leaf: Check after changes: %v", err)
		}
		got = got[:0]
		err := Scan(p, r, Key{}, func(k Key, v []byte) (bool, error) {
			got = append(got, item{k, bytes.Clone(v)})
			return true, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		compareItems(t, "scan after changes", got, m.sorted(), m)
	})
}

// seedNodes returns real nodes, without their block header and trailing
// zeros, as fuzzing seeds: an empty leaf, leaves with small and large values,
// and an internal node.
func seedNodes(tb testing.TB) [][]byte {
	tb.Helper()
	var seeds [][]byte
	add := func(b []byte) {
		b = bytes.TrimRight(b[block.HeaderSize:], "\x00")
		seeds = append(seeds, bytes.Clone(b))
	}
	tr := newTree(tb, false)
	add(tr.p.blocks[tr.root])
	for i := range 5 {
		tr.put(Key{Obj: 7, Type: uint8(i), Off: uint64(i) * 4096}, bytes.Repeat([]byte{byte('a' + i)}, i*3))
	}
	add(tr.p.blocks[tr.root])
	tr.put(Key{Obj: 8, Type: 1}, bytes.Repeat([]byte{'z'}, MaxValueSize))
	tr.put(Key{Obj: 9, Type: 1}, bytes.Repeat([]byte{'y'}, MaxValueSize))
	add(tr.p.blocks[tr.root])
	for i := range 400 {
		tr.put(Key{Obj: uint64(i), Type: 2, Off: 1}, []byte("value"))
	}
	if tr.depth() != 2 {
		tb.Fatalf("seed tree has depth %d, want 2", tr.depth())
	}
	add(tr.p.blocks[tr.root])
	return seeds
}

func addSeeds(f *testing.F) {
	for _, s := range seedNodes(f) {
		f.Add(s)
	}
}
