package btree

import (
	"errors"
	"fmt"
	"testing"

	"github.com/hanfs/hanfs/fsstore/block"
)

// errInjected is the error memPager returns when told to fail.
var errInjected = errors.New("injected pager error")

// memPager is an in-memory Pager for tests. It counts live blocks, records
// misuse (use of freed or unknown blocks, double frees) in errs and, with
// cow set, behaves like a copy-on-write transaction layer: the first Modify
// of a block in an operation moves the block to a new buffer and poisons the
// old one, so that code that keeps a Read buffer across Modify reads garbage.
type memPager struct {
	blocks map[uint64][]byte
	freed  map[uint64]bool
	dirty  map[uint64]bool
	next   uint64
	cow    bool
	errs   []string

	// failAt > 0 makes the failAt-th pager call from now on fail.
	failAt int
	calls  int

	// fallback, if set, supplies blocks that were never allocated.
	fallback func(blk uint64) []byte
}

func newPager(cow bool) *memPager {
	return &memPager{
		blocks: make(map[uint64][]byte),
		freed:  make(map[uint64]bool),
		dirty:  make(map[uint64]bool),
		next:   1,
		cow:    cow,
	}
}

func (m *memPager) fail() bool {
	if m.failAt <= 0 {
		return false
	}
	m.calls++
	return m.calls == m.failAt
}

func (m *memPager) get(op string, blk uint64) ([]byte, error) {
	if m.freed[blk] {
		m.errs = append(m.errs, fmt.Sprintf("%s of freed block %d", op, blk))
		return nil, fmt.Errorf("%s of freed block %d", op, blk)
	}
	b, ok := m.blocks[blk]
	if !ok && m.fallback != nil {
		if b = m.fallback(blk); b != nil {
			m.blocks[blk] = b
			ok = true
		}
	}
	if !ok {
		return nil, fmt.Errorf("no block %d", blk)
	}
	return b, nil
}

func (m *memPager) Read(blk uint64) ([]byte, error) {
	if m.fail() {
		return nil, errInjected
	}
	return m.get("read", blk)
}

func (m *memPager) Modify(blk uint64) ([]byte, error) {
	if m.fail() {
		return nil, errInjected
	}
	b, err := m.get("modify", blk)
	if err != nil || !m.cow || m.dirty[blk] {
		return b, err
	}
	nb := make([]byte, block.Size)
	copy(nb, b)
	fill(b, 0xEE)
	m.blocks[blk] = nb
	m.dirty[blk] = true
	return nb, nil
}

func (m *memPager) Alloc() (uint64, []byte, error) {
	if m.fail() {
		return 0, nil, errInjected
	}
	blk := m.next
	m.next++
	b := make([]byte, block.Size)
	fill(b, 0xAA) // contents are undefined
	m.blocks[blk] = b
	m.dirty[blk] = true
	return blk, b, nil
}

func (m *memPager) Free(blk uint64) error {
	if m.fail() {
		return errInjected
	}
	if m.freed[blk] {
		m.errs = append(m.errs, fmt.Sprintf("double free of block %d", blk))
		return fmt.Errorf("double free of block %d", blk)
	}
	if _, ok := m.blocks[blk]; !ok {
		m.errs = append(m.errs, fmt.Sprintf("free of unknown block %d", blk))
		return fmt.Errorf("free of unknown block %d", blk)
	}
	delete(m.blocks, blk)
	delete(m.dirty, blk)
	m.freed[blk] = true
	return nil
}

// endOp ends the current operation (transaction).
func (m *memPager) endOp(t testing.TB) {
	t.Helper()
	clear(m.dirty)
	if len(m.errs) > 0 {
		t.Fatalf("pager misuse: %v", m.errs)
	}
}

// live returns the number of allocated, not freed blocks.
func (m *memPager) live() int { return len(m.blocks) }

// fill sets every byte of b to c.
func fill(b []byte, c byte) {
	if len(b) == 0 {
		return
	}
	b[0] = c
	for n := 1; n < len(b); n *= 2 {
		copy(b[n:], b[:n])
	}
}
