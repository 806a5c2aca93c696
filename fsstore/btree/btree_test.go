package btree

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/hanfs/hanfs/fsstore/block"
)

var longTests = flag.Bool("long", false, "run the long randomized tests")

// tree bundles a pager and a root for tests.
type tree struct {
	t    testing.TB
	p    *memPager
	root uint64
}

func newTree(t testing.TB, cow bool) *tree {
	t.Helper()
	p := newPager(cow)
	root, err := Create(p)
	if err != nil {
		t.Fatal(err)
	}
	p.endOp(t)
	return &tree{t: t, p: p, root: root}
}

func (tr *tree) put(k Key, v []byte) {
	tr.t.Helper()
	root, err := Put(tr.p, tr.root, k, v)
	if err != nil {
		tr.t.Fatalf("Put %v (%d bytes): %v", k, len(v), err)
	}
	tr.root = root
	tr.p.endOp(tr.t)
}

func (tr *tree) del(k Key) bool {
	tr.t.Helper()
	root, found, err := Delete(tr.p, tr.root, k)
	if err != nil {
		tr.t.Fatalf("Delete %v: %v", k, err)
	}
	tr.root = root
	tr.p.endOp(tr.t)
	return found
}

func (tr *tree) get(k Key) ([]byte, bool) {
	tr.t.Helper()
	v, ok, err := Get(tr.p, tr.root, k)
	if err != nil {
		tr.t.Fatalf("Get %v: %v", k, err)
	}
	tr.p.endOp(tr.t)
	return v, ok
}

// check runs Check and verifies that it visits exactly the live blocks.
func (tr *tree) check() {
	tr.t.Helper()
	visited := 0
	err := Check(tr.p, tr.root, func(blk uint64, level int) { visited++ })
	if err != nil {
		tr.t.Fatalf("Check: %v", err)
	}
	if visited != tr.p.live() {
		tr.t.Fatalf("Check visited %d nodes, %d blocks are live", visited, tr.p.live())
	}
	tr.p.endOp(tr.t)
}

type item struct {
	k Key
	v []byte
}

func (tr *tree) scan(from Key, limit int) []item {
	tr.t.Helper()
	var out []item
	err := Scan(tr.p, tr.root, from, func(k Key, v []byte) (bool, error) {
		out = append(out, item{k, bytes.Clone(v)})
		return len(out) < limit, nil
	})
	if err != nil {
		tr.t.Fatalf("Scan from %v: %v", from, err)
	}
	tr.p.endOp(tr.t)
	return out
}

func (tr *tree) scanBack(from Key, limit int) []item {
	tr.t.Helper()
	var out []item
	err := ScanBack(tr.p, tr.root, from, func(k Key, v []byte) (bool, error) {
		out = append(out, item{k, bytes.Clone(v)})
		return len(out) < limit, nil
	})
	if err != nil {
		tr.t.Fatalf("ScanBack from %v: %v", from, err)
	}
	tr.p.endOp(tr.t)
	return out
}

func (tr *tree) depth() int {
	tr.t.Helper()
	d, err := Depth(tr.p, tr.root)
	if err != nil {
		tr.t.Fatal(err)
	}
	return d
}

// model is the reference the tree is compared with: a map and the sorted
// list of its keys.
type model struct {
	m    map[Key][]byte
	keys []Key // sorted
}

func newModel() *model { return &model{m: make(map[Key][]byte)} }

func (m *model) put(k Key, v []byte) {
	if _, ok := m.m[k]; !ok {
		i, _ := slices.BinarySearchFunc(m.keys, k, Key.Compare)
		m.keys = slices.Insert(m.keys, i, k)
	}
	m.m[k] = v
}

func (m *model) del(k Key) bool {
	if _, ok := m.m[k]; !ok {
		return false
	}
	i, _ := slices.BinarySearchFunc(m.keys, k, Key.Compare)
	m.keys = slices.Delete(m.keys, i, i+1)
	delete(m.m, k)
	return true
}

func (m *model) sorted() []Key { return m.keys }

func randKey(r *rand.Rand, objs uint64) Key {
	return Key{Obj: r.Uint64N(objs), Type: uint8(r.IntN(4)), Off: r.Uint64N(1 << 20)}
}

func randValue(r *rand.Rand) []byte {
	var n int
	switch x := r.IntN(10); {
	case x < 5:
		n = r.IntN(33)
	case x < 8:
		n = r.IntN(257)
	case x < 9:
		n = r.IntN(MaxValueSize + 1)
	default:
		n = MaxValueSize - r.IntN(8)
	}
	v := make([]byte, n)
	for i := range v {
		v[i] = byte(r.Uint32())
	}
	return v
}

func compareItems(t testing.TB, what string, got []item, wantKeys []Key, m *model) {
	t.Helper()
	if len(got) != len(wantKeys) {
		t.Fatalf("%s: got %d items, want %d", what, len(got), len(wantKeys))
	}
	for i, it := range got {
		if it.k != wantKeys[i] {
			t.Fatalf("%s: item %d: key %v, want %v", what, i, it.k, wantKeys[i])
		}
		if !bytes.Equal(it.v, m.m[it.k]) {
			t.Fatalf("%s: item %d (%v): wrong value", what, i, it.k)
		}
	}
}

func TestKeyEncodingOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		a, b := randKey(r, 3), randKey(r, 3)
		if r.IntN(4) == 0 {
			b = a
			b.Off += uint64(r.IntN(3)) - 1
		}
		var ea, eb [keySize]byte
		encodeKey(ea[:], a)
		encodeKey(eb[:], b)
		if got, want := bytes.Compare(ea[:], eb[:]), a.Compare(b); got != want {
			t.Fatalf("%v vs %v: bytes %d, Compare %d", a, b, got, want)
		}
		if got, want := cmpKeyAt(ea[:], 0, b), a.Compare(b); got != want {
			t.Fatalf("%v vs %v: cmpKeyAt %d, Compare %d", a, b, got, want)
		}
		if keyAt(ea[:], 0) != a {
			t.Fatalf("keyAt(encode(%v)) = %v", a, keyAt(ea[:], 0))
		}
	}
}

func TestEmptyTree(t *testing.T) {
	tr := newTree(t, true)
	if _, ok := tr.get(Key{1, 2, 3}); ok {
		t.Fatal("Get on empty tree found an item")
	}
	if tr.del(Key{1, 2, 3}) {
		t.Fatal("Delete on empty tree found an item")
	}
	if got := tr.scan(Key{}, 10); len(got) != 0 {
		t.Fatalf("Scan on empty tree: %v", got)
	}
	if got := tr.scanBack(Key{^uint64(0), 255, ^uint64(0)}, 10); len(got) != 0 {
		t.Fatalf("ScanBack on empty tree: %v", got)
	}
	if d := tr.depth(); d != 1 {
		t.Fatalf("Depth = %d, want 1", d)
	}
	tr.check()
	// An empty value is a value.
	tr.put(Key{1, 1, 1}, nil)
	if v, ok := tr.get(Key{1, 1, 1}); !ok || len(v) != 0 {
		t.Fatalf("Get of empty value = %v, %v", v, ok)
	}
}

func TestValueTooLarge(t *testing.T) {
	tr := newTree(t, false)
	_, err := Put(tr.p, tr.root, Key{1, 1, 1}, make([]byte, MaxValueSize+1))
	if !errors.Is(err, ErrValueTooLarge) {
		t.Fatalf("Put of %d bytes: %v, want ErrValueTooLarge", MaxValueSize+1, err)
	}
	tr.put(Key{1, 1, 1}, make([]byte, MaxValueSize))
}

// runDifferential applies random operations to a tree and a model and
// compares them, then deletes everything.
func runDifferential(t *testing.T, seed uint64, ops int, objs uint64, cow bool) {
	r := rand.New(rand.NewPCG(seed, 99))
	tr := newTree(t, cow)
	m := newModel()
	batch := max(ops/20, 1)
	for i := range ops {
		switch x := r.IntN(100); {
		case x < 50: // insert or replace
			k := randKey(r, objs)
			if len(m.keys) > 0 && r.IntN(4) == 0 {
				k = m.keys[r.IntN(len(m.keys))]
			}
			v := randValue(r)
			tr.put(k, v)
			m.put(k, v)
		case x < 80: // delete
			k := randKey(r, objs)
			if len(m.keys) > 0 && r.IntN(4) != 0 {
				k = m.keys[r.IntN(len(m.keys))]
			}
			if got, want := tr.del(k), m.del(k); got != want {
				t.Fatalf("op %d: Delete %v found=%v, want %v", i, k, got, want)
			}
		case x < 95: // get
			k := randKey(r, objs)
			if len(m.keys) > 0 && r.IntN(2) == 0 {
				k = m.keys[r.IntN(len(m.keys))]
			}
			v, ok := tr.get(k)
			want, wantOK := m.m[k]
			if ok != wantOK || !bytes.Equal(v, want) {
				t.Fatalf("op %d: Get %v = %d bytes, %v; want %d bytes, %v", i, k, len(v), ok, len(want), wantOK)
			}
		default: // scan both ways from a random key
			from := randKey(r, objs)
			if len(m.keys) > 0 && r.IntN(2) == 0 {
				from = m.keys[r.IntN(len(m.keys))]
			}
			limit := 1 + r.IntN(300)
			sorted := m.sorted()
			j, _ := slices.BinarySearchFunc(sorted, from, Key.Compare)
			compareItems(t, fmt.Sprintf("op %d: Scan from %v", i, from),
				tr.scan(from, limit), sorted[j:min(len(sorted), j+limit)], m)
			j, found := slices.BinarySearchFunc(sorted, from, Key.Compare)
			if found {
				j++
			}
			var back []Key
			for q := j - 1; q >= 0 && len(back) < limit; q-- {
				back = append(back, sorted[q])
			}
			compareItems(t, fmt.Sprintf("op %d: ScanBack from %v", i, from),
				tr.scanBack(from, limit), back, m)
		}
		if i%batch == batch-1 {
			tr.check()
		}
	}
	tr.check()
	all := tr.scan(Key{}, len(m.keys)+1)
	compareItems(t, "full scan", all, m.sorted(), m)

	// Delete everything in random order: back to one empty leaf.
	keys := slices.Clone(m.keys)
	r.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	for i, k := range keys {
		if !tr.del(k) {
			t.Fatalf("final delete of %v: not found", k)
		}
		if i%max(len(keys)/10, 1) == 0 {
			tr.check()
		}
	}
	tr.check()
	if tr.p.live() != 1 {
		t.Fatalf("%d blocks live after deleting everything, want 1", tr.p.live())
	}
	b, _ := tr.p.Read(tr.root)
	if nodeLevel(b) != 0 || nodeCount(b) != 0 {
		t.Fatalf("root after deleting everything: level %d, %d items", nodeLevel(b), nodeCount(b))
	}
}

func TestRandomDifferential(t *testing.T) {
	ops := 30000
	if testing.Short() {
		ops = 5000
	}
	for _, tc := range []struct {
		seed uint64
		objs uint64
		cow  bool
	}{
		{1, 50, true},
		{2, 1 << 40, true},
		{3, 5, false},
		{4, 1000, false},
	} {
		t.Run(fmt.Sprintf("seed%d", tc.seed), func(t *testing.T) {
			t.Parallel()
			runDifferential(t, tc.seed, ops, tc.objs, tc.cow)
		})
	}
}

func TestRandomDifferentialLong(t *testing.T) {
	if !*longTests {
		t.Skip("long test; run with -long")
	}
	for seed := uint64(10); seed < 14; seed++ {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
			t.Parallel()
			runDifferential(t, seed, 200000, 1<<uint(seed), seed%2 == 0)
		})
	}
}

// TestSequential inserts in ascending and descending order, checks that the
// leaves stay full, and deletes in several orders.
func TestSequential(t *testing.T) {
	const n = 20000
	for _, order := range []string{"ascending", "descending"} {
		t.Run(order, func(t *testing.T) {
			tr := newTree(t, false)
			for i := range n {
				k := uint64(i)
				if order == "descending" {
					k = n - 1 - k
				}
				tr.put(Key{Obj: k, Type: 1}, []byte("0123456789abcdef"))
			}
			tr.check()
			leaves := 0
			if err := Check(tr.p, tr.root, func(_ uint64, lvl int) {
				if lvl == 0 {
					leaves++
				}
			}); err != nil {
				t.Fatal(err)
			}
			perLeaf := nodeCapacity / (leafItemSize + 16)
			if leaves > n/perLeaf+2 {
				t.Errorf("%d leaves for %d items, want about %d", leaves, n, n/perLeaf+1)
			}
			if got := tr.scan(Key{}, n+1); len(got) != n {
				t.Fatalf("Scan: %d items", len(got))
			}
			// Delete every other item, then the rest backwards.
			for i := 0; i < n; i += 2 {
				tr.del(Key{Obj: uint64(i), Type: 1})
			}
			tr.check()
			for i := n - 1; i >= 0; i -= 2 {
				tr.del(Key{Obj: uint64(i), Type: 1})
			}
			tr.check()
			if tr.p.live() != 1 {
				t.Fatalf("%d blocks live", tr.p.live())
			}
		})
	}
}

// TestLargeValues fills the tree with maximal values, three to a leaf.
func TestLargeValues(t *testing.T) {
	tr := newTree(t, true)
	r := rand.New(rand.NewPCG(5, 5))
	m := newModel()
	for range 3000 {
		k := randKey(r, 100)
		v := make([]byte, MaxValueSize-r.IntN(3))
		v[0] = byte(r.Uint32())
		tr.put(k, v)
		m.put(k, v)
	}
	tr.check()
	for _, k := range slices.Clone(m.keys[:len(m.keys)/2]) {
		tr.del(k)
		m.del(k)
	}
	tr.check()
	compareItems(t, "scan", tr.scan(Key{}, 1<<30), m.sorted(), m)
}

// TestDepthMillion inserts 1,000,000 small items in random order and checks
// the depth of the tree.
func TestDepthMillion(t *testing.T) {
	n := 1000000
	if testing.Short() || raceEnabled {
		n = 200000
	}
	p := newPager(false)
	root, err := Create(p)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(7, 7))
	v := make([]byte, 8)
	for i := range n {
		k := Key{Obj: r.Uint64(), Type: 1, Off: uint64(i)}
		if root, err = Put(p, root, k, v); err != nil {
			t.Fatal(err)
		}
	}
	d, err := Depth(p, root)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d items: depth %d, %d blocks", n, d, p.live())
	if d > 5 {
		t.Fatalf("depth %d for %d items", d, n)
	}
	if err := Check(p, root, nil); err != nil {
		t.Fatal(err)
	}
}

// TestPagerErrors makes each pager call of an operation fail in turn: the
// operation must return the error, wrapped, and never panic.
func TestPagerErrors(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 8))
	tr := newTree(t, true)
	m := newModel()
	for range 3000 {
		k := randKey(r, 20)
		v := randValue(r)
		tr.put(k, v)
		m.put(k, v)
	}
	ops := []func(p Pager, root uint64) error{
		func(p Pager, root uint64) error { _, err := Put(p, root, randKey(r, 20), randValue(r)); return err },
		func(p Pager, root uint64) error {
			_, _, err := Delete(p, root, m.keys[r.IntN(len(m.keys))])
			return err
		},
		func(p Pager, root uint64) error { _, _, err := Get(p, root, m.keys[r.IntN(len(m.keys))]); return err },
		func(p Pager, root uint64) error {
			return Scan(p, root, randKey(r, 20), func(Key, []byte) (bool, error) { return true, nil })
		},
		func(p Pager, root uint64) error {
			return ScanBack(p, root, randKey(r, 20), func(Key, []byte) (bool, error) { return true, nil })
		},
		func(p Pager, root uint64) error { return Check(p, root, nil) },
	}
	for i, op := range ops {
		for failAt := 1; failAt < 40; failAt++ {
			// Work on a copy so that every attempt starts from the same tree.
			p := newPager(true)
			for blk, b := range tr.p.blocks {
				p.blocks[blk] = bytes.Clone(b)
			}
			p.next = tr.p.next
			p.failAt = failAt
			err := op(p, tr.root)
			if p.calls >= failAt && !errors.Is(err, errInjected) {
				t.Fatalf("op %d, failing call %d: error %v does not wrap the pager error", i, failAt, err)
			}
		}
	}
}

// TestCorruptNodes flips random bytes past the block header of random nodes:
// operations may fail but must not panic, and Check must report every node
// that VerifyNode rejects.
func TestCorruptNodes(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	tr := newTree(t, false)
	for range 5000 {
		v := randValue(r)
		tr.put(randKey(r, 30), v[:min(len(v), r.IntN(64))])
	}
	tr.check()
	blks := slices.Collect(func(yield func(uint64) bool) {
		for blk := range tr.p.blocks {
			if !yield(blk) {
				return
			}
		}
	})
	slices.Sort(blks)
	trials := 1000
	if testing.Short() {
		trials = 500
	}
	detected := 0
	for trial := range trials {
		blk := blks[r.IntN(len(blks))]
		orig := tr.p.blocks[blk]
		bad := bytes.Clone(orig)
		for range 1 + r.IntN(4) {
			var off int
			if r.IntN(2) == 0 {
				off = block.HeaderSize + r.IntN(itemsStart-block.HeaderSize+30*leafItemSize)
			} else {
				off = block.HeaderSize + r.IntN(block.Size-block.HeaderSize)
			}
			bad[off] ^= byte(1 + r.IntN(255))
		}
		verr := VerifyNode(bad)
		// Operate on a copy of the whole tree.
		p := newPager(trial%2 == 0)
		for b, buf := range tr.p.blocks {
			p.blocks[b] = bytes.Clone(buf)
		}
		p.blocks[blk] = bad
		p.next = tr.p.next
		root := tr.root
		cerr := Check(p, root, nil)
		if verr != nil {
			detected++
			if cerr == nil {
				t.Fatalf("trial %d: VerifyNode rejects node %d (%v) but Check passes", trial, blk, verr)
			}
			if !errors.Is(cerr, ErrCorrupt) {
				t.Fatalf("trial %d: Check error %v does not wrap ErrCorrupt", trial, cerr)
			}
		}
		for j := range 20 {
			k := randKey(r, 30)
			limit := 50
			if j == 0 {
				limit = 1 << 30 // one full scan each way
			}
			visit := func(Key, []byte) (bool, error) { limit--; return limit > 0, nil }
			Get(p, root, k)
			Scan(p, root, k, visit)
			ScanBack(p, root, k, visit)
		}
		for range 20 {
			var err error
			k := randKey(r, 30)
			if r.IntN(2) == 0 {
				root, err = Put(p, root, k, randValue(r))
			} else {
				root, _, err = Delete(p, root, k)
			}
			if err != nil {
				break
			}
			clear(p.dirty)
		}
		Check(p, root, nil)
	}
	t.Logf("%d of %d corruptions rejected by VerifyNode", detected, trials)
}

// TestCheckDetects builds broken trees by hand and checks that Check
// rejects them.
func TestCheckDetects(t *testing.T) {
	build := func() *tree {
		tr := newTree(t, false)
		for i := range 2000 {
			tr.put(Key{Obj: uint64(i), Type: 1}, make([]byte, 40))
		}
		tr.check()
		if tr.depth() < 2 {
			t.Fatal("tree too shallow")
		}
		return tr
	}
	cases := map[string]func(tr *tree, rootBuf []byte){
		"child reached twice": func(tr *tree, b []byte) {
			copy(b[branchItem(1)+keySize:branchItem(1)+keySize+8], b[branchItem(0)+keySize:])
		},
		"key out of parent range": func(tr *tree, b []byte) {
			// Move the separator of child 2 below the keys of child 1.
			k := keyAt(b, branchItem(1))
			k.Obj++
			setBranchKey(b, 2, k)
		},
		"level mismatch": func(tr *tree, b []byte) {
			b[offLevel]++
		},
		"unsorted keys": func(tr *tree, b []byte) {
			k := keyAt(b, branchItem(2))
			setBranchKey(b, 1, k)
		},
		"missing child": func(tr *tree, b []byte) {
			copy(b[branchItem(1)+keySize:], []byte{0xff, 0xff, 0xff, 0, 0, 0, 0, 0})
		},
	}
	for name, corrupt := range cases {
		t.Run(name, func(t *testing.T) {
			tr := build()
			corrupt(tr, tr.p.blocks[tr.root])
			if err := Check(tr.p, tr.root, nil); err == nil {
				t.Fatal("Check passed")
			} else {
				t.Log(err)
			}
		})
	}
	t.Run("empty leaf", func(t *testing.T) {
		tr := build()
		rb := tr.p.blocks[tr.root]
		leaf := tr.p.blocks[branchChild(rb, 1)]
		initNode(leaf, 0)
		if err := Check(tr.p, tr.root, nil); err == nil {
			t.Fatal("Check passed")
		}
	})
}

// TestScanCallback checks early stop and error propagation of scans.
func TestScanCallback(t *testing.T) {
	tr := newTree(t, false)
	for i := range 1000 {
		tr.put(Key{Obj: 1, Type: 2, Off: uint64(i) * 10}, []byte{byte(i)})
	}
	stop := errors.New("stop")
	n := 0
	err := Scan(tr.p, tr.root, Key{Obj: 1, Type: 2, Off: 55}, func(k Key, v []byte) (bool, error) {
		n++
		if n == 1 && k.Off != 60 {
			t.Fatalf("first key %v", k)
		}
		if n == 5 {
			return false, stop
		}
		return true, nil
	})
	if err != stop || n != 5 {
		t.Fatalf("Scan: err %v after %d items", err, n)
	}
	// The extent covering offset 4321 is the one at 4320.
	got := tr.scanBack(Key{Obj: 1, Type: 2, Off: 4321}, 1)
	if len(got) != 1 || got[0].k.Off != 4320 {
		t.Fatalf("ScanBack: %v", got)
	}
	// The last entry of object 1 type 2.
	got = tr.scanBack(Key{Obj: 1, Type: 2, Off: ^uint64(0)}, 1)
	if len(got) != 1 || got[0].k.Off != 9990 {
		t.Fatalf("ScanBack: %v", got)
	}
	if got := tr.scanBack(Key{Obj: 1, Type: 1}, 10); len(got) != 0 {
		t.Fatalf("ScanBack below everything: %v", got)
	}
	if got := tr.scan(Key{Obj: 2}, 10); len(got) != 0 {
		t.Fatalf("Scan above everything: %v", got)
	}
}

func BenchmarkPutGet(b *testing.B) {
	const n = 1000000
	p := newPager(false)
	root, err := Create(p)
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 1))
	keys := make([]Key, n)
	v := make([]byte, 32)
	for i := range keys {
		keys[i] = Key{Obj: r.Uint64N(n), Type: 1, Off: r.Uint64()}
		if root, err = Put(p, root, keys[i], v); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("Get", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if _, ok, err := Get(p, root, keys[i%n]); !ok || err != nil {
				b.Fatal("missing key", err)
			}
			i += 7919
		}
	})
	b.Run("Put", func(b *testing.B) {
		i := 0
		for b.Loop() {
			k := Key{Obj: r.Uint64N(n), Type: 2, Off: r.Uint64()}
			if root, err = Put(p, root, k, v); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("Replace", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if root, err = Put(p, root, keys[i%n], v); err != nil {
				b.Fatal(err)
			}
			i += 7919
		}
	})
	b.Run("Delete", func(b *testing.B) {
		i := 0
		for b.Loop() {
			if root, _, err = Delete(p, root, keys[i%n]); err != nil {
				b.Fatal(err)
			}
			i += 7919
		}
	})
}

// TestInternalRebalance shrinks an internal node below a quarter full next to
// a sibling too full to merge with, so that children move between them.
func TestInternalRebalance(t *testing.T) {
	tr := newTree(t, false)
	m := newModel()
	const n = 100000
	for i := range n {
		k := Key{Obj: uint64(i), Type: 1}
		tr.put(k, nil)
		m.put(k, nil)
	}
	if d := tr.depth(); d != 3 {
		t.Fatalf("depth %d, want 3", d)
	}
	rb := tr.p.blocks[tr.root]
	if nodeCount(rb) < 4 {
		t.Fatalf("root has %d children", nodeCount(rb))
	}
	x0, x1, y1 := keyAt(rb, branchItem(1)).Obj, keyAt(rb, branchItem(2)).Obj, keyAt(rb, branchItem(3)).Obj
	// Grow child 2 (Y) by splitting 60 of its leaves.
	for o := x1 + 50; o < y1 && o < x1+60*193; o += 193 {
		k := Key{Obj: o, Type: 2}
		tr.put(k, nil)
		m.put(k, nil)
	}
	y := tr.p.blocks[branchChild(tr.p.blocks[tr.root], 2)]
	t.Logf("child 1 has %d children, child 2 %d", nodeCount(tr.p.blocks[branchChild(rb, 1)]), nodeCount(y))
	if nodeCount(y) <= maxBranchItems-branchMinItems {
		t.Fatalf("child 2 has only %d children", nodeCount(y))
	}
	tr.check()
	// Empty child 1 (X) from the left.
	for o := x0; o < x1; o++ {
		k := Key{Obj: o, Type: 1}
		tr.del(k)
		delete(m.m, k)
		if o%5000 == 0 {
			tr.check()
		}
	}
	m.keys = slices.DeleteFunc(m.keys, func(k Key) bool { _, ok := m.m[k]; return !ok })
	tr.check()
	compareItems(t, "scan", tr.scan(Key{}, n+1), m.sorted(), m)
	back := tr.scanBack(Key{Obj: ^uint64(0)}, n+1)
	slices.Reverse(back)
	compareItems(t, "scan back", back, m.sorted(), m)
}
