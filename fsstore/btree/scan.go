package btree

// Scan calls fn for the items with key >= from in ascending key order, until
// fn returns false or an error (which Scan returns as is). fn must not modify
// the tree or call Modify, Alloc or Free on the pager; v is only valid during
// the call.
func Scan(p Pager, root uint64, from Key, fn func(k Key, v []byte) (bool, error)) error {
	var path treePath
	blk, b, err := scanDescend(p, root, from, &path, false)
	if err != nil {
		return err
	}
	i, _ := leafSearch(b, nodeCount(b), from)
	for {
		for n := nodeCount(b); i < n; i++ {
			v, err := leafValue(b, blk, i)
			if err != nil {
				return err
			}
			if more, err := fn(keyAt(b, leafItem(i)), v); err != nil || !more {
				return err
			}
		}
		if blk, b, err = stepLeaf(p, &path, false); err != nil || b == nil {
			return err
		}
		i = 0
	}
}

// ScanBack calls fn for the items with key <= from in descending key order,
// until fn returns false or an error (which ScanBack returns as is). fn must
// not modify the tree or call Modify, Alloc or Free on the pager; v is only
// valid during the call.
func ScanBack(p Pager, root uint64, from Key, fn func(k Key, v []byte) (bool, error)) error {
	var path treePath
	blk, b, err := scanDescend(p, root, from, &path, true)
	if err != nil {
		return err
	}
	i, found := leafSearch(b, nodeCount(b), from)
	if !found {
		i--
	}
	for {
		for ; i >= 0; i-- {
			v, err := leafValue(b, blk, i)
			if err != nil {
				return err
			}
			if more, err := fn(keyAt(b, leafItem(i)), v); err != nil || !more {
				return err
			}
		}
		if blk, b, err = stepLeaf(p, &path, true); err != nil || b == nil {
			return err
		}
		i = nodeCount(b) - 1
	}
}

// Prefetcher is an optional interface of a Pager: Prefetch hints that block
// blk will probably be read soon, so that a pager that reads blocks on demand
// can read it together with the block it needs.
type Prefetcher interface {
	Prefetch(blk uint64)
}

// scanAhead is how many leaves past the current one a scan hints.
const scanAhead = 16

// hintLeaves hints the children after child i (before it, if back) of the
// level-1 node b, which a scan will read next.
func hintLeaves(p Pager, b []byte, i int, back bool) {
	pf, ok := p.(Prefetcher)
	if !ok {
		return
	}
	n := nodeCount(b)
	for k := 1; k <= scanAhead; k++ {
		j := i + k
		if back {
			j = i - k
		}
		if j < 0 || j >= n {
			return
		}
		pf.Prefetch(branchChild(b, j))
	}
}

// scanDescend walks from root to the leaf that may hold k, recording the
// internal nodes in path, and returns the leaf. It hints the leaves a scan
// in the direction back says will read next.
func scanDescend(p Pager, root uint64, k Key, path *treePath, back bool) (uint64, []byte, error) {
	path.n = 0
	blk, want := root, -1
	for {
		b, err := readNode(p, blk, want, false)
		if err != nil {
			return 0, nil, err
		}
		lvl, n := nodeLevel(b), nodeCount(b)
		if lvl == 0 {
			return blk, b, nil
		}
		i := branchSearch(b, n, k)
		path.push(blk, lvl, i)
		if lvl == 1 {
			hintLeaves(p, b, i, back)
		}
		blk, want = branchChild(b, i), lvl-1
	}
}

// stepLeaf moves path to the next leaf (the previous one if back is set) and
// returns it, or a nil buffer when there is none.
func stepLeaf(p Pager, path *treePath, back bool) (uint64, []byte, error) {
	// Pop the nodes whose children are exhausted in the direction of travel.
	var b []byte
	for {
		if path.n == 0 {
			return 0, nil, nil
		}
		pe := &path.e[path.n-1]
		var err error
		if b, err = readNode(p, pe.blk, pe.lvl, false); err != nil {
			return 0, nil, err
		}
		n := nodeCount(b)
		if back && pe.idx > 0 && pe.idx <= n {
			pe.idx--
			break
		}
		if !back && pe.idx+1 < n {
			pe.idx++
			break
		}
		path.n--
	}
	// Go down the leftmost (rightmost) edge of the next subtree.
	pe := path.e[path.n-1]
	blk, lvl := branchChild(b, pe.idx), pe.lvl-1
	if pe.lvl == 1 {
		hintLeaves(p, b, pe.idx, back)
	}
	for {
		b, err := readNode(p, blk, lvl, false)
		if err != nil {
			return 0, nil, err
		}
		if lvl == 0 {
			return blk, b, nil
		}
		i := 0
		if back {
			i = nodeCount(b) - 1
		}
		path.push(blk, lvl, i)
		if lvl == 1 {
			hintLeaves(p, b, i, back)
		}
		blk, lvl = branchChild(b, i), lvl-1
	}
}
