package btree

import (
	"fmt"

	"github.com/hanfs/hanfs/fsstore/block"
)

// Check walks the whole tree and verifies every node: its structure
// (VerifyNode), that its level is one below its parent's, that its keys lie
// in the key range its parent assigns to it, that no non-root leaf is empty
// and that no node is reached twice. It calls visit, if not nil, for every
// node block once the node has been verified, parents before children. It
// returns an error describing the first problem found.
func Check(p Pager, root uint64, visit func(blk uint64, level int)) error {
	c := checker{p: p, visit: visit, seen: make(map[uint64]bool)}
	return c.node(root, -1, nil, nil, nil)
}

// checker holds the state of one Check walk.
type checker struct {
	p     Pager
	visit func(blk uint64, level int)
	seen  map[uint64]bool
}

// node checks the subtree of node blk, expected at level want (-1: the root)
// with keys in [lo, hi) (nil: unbounded). parent is the block that points to
// it, for error messages.
func (c *checker) node(blk uint64, want int, lo, hi *Key, parent *uint64) error {
	where := "root"
	if parent != nil {
		where = fmt.Sprintf("child of node %d", *parent)
	}
	if c.seen[blk] {
		return fmt.Errorf("btree: node %d (%s) reached twice: %w", blk, where, ErrCorrupt)
	}
	c.seen[blk] = true
	b, err := c.p.Read(blk)
	if err != nil {
		return fmt.Errorf("btree: read node %d (%s): %w", blk, where, err)
	}
	if len(b) > block.Size {
		b = b[:block.Size]
	}
	if err := verifyNode(b); err != nil {
		return fmt.Errorf("btree: node %d (%s): %w", blk, where, err)
	}
	lvl, n := nodeLevel(b), nodeCount(b)
	if want >= 0 && lvl != want {
		return fmt.Errorf("btree: node %d (%s): level %d, want %d: %w", blk, where, lvl, want, ErrCorrupt)
	}
	itemSize := branchItemSize
	if lvl == 0 {
		itemSize = leafItemSize
		if n == 0 && parent != nil {
			return fmt.Errorf("btree: node %d (%s): empty leaf: %w", blk, where, ErrCorrupt)
		}
	}
	// Keys are sorted (VerifyNode), so checking the first and last suffices.
	if n > 0 {
		first, last := keyAt(b, itemsStart), keyAt(b, itemsStart+(n-1)*itemSize)
		if lo != nil && first.Compare(*lo) < 0 {
			return fmt.Errorf("btree: node %d (%s): key %v below the node's lower bound %v: %w",
				blk, where, first, *lo, ErrCorrupt)
		}
		if hi != nil && last.Compare(*hi) >= 0 {
			return fmt.Errorf("btree: node %d (%s): key %v not below the node's upper bound %v: %w",
				blk, where, last, *hi, ErrCorrupt)
		}
	}
	if c.visit != nil {
		c.visit(blk, lvl)
	}
	if lvl == 0 {
		return nil
	}
	for i := range n {
		// Re-read: visit or the pager may have invalidated b.
		if b, err = c.p.Read(blk); err != nil {
			return fmt.Errorf("btree: read node %d (%s): %w", blk, where, err)
		}
		if _, err := checkHeader(b, blk, lvl, false); err != nil || nodeCount(b) != n {
			return fmt.Errorf("btree: node %d (%s) changed during Check: %w", blk, where, ErrCorrupt)
		}
		clo, chi := lo, hi
		if i > 0 {
			k := keyAt(b, branchItem(i))
			clo = &k
		}
		if i+1 < n {
			k := keyAt(b, branchItem(i+1))
			chi = &k
		}
		if err := c.node(branchChild(b, i), lvl-1, clo, chi, &blk); err != nil {
			return err
		}
	}
	return nil
}
