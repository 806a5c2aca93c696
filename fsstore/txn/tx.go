package txn

import (
	"fmt"

	"github.com/hanfs/hanfs/fsstore/block"
	"github.com/hanfs/hanfs/fsstore/journal"
	"github.com/hanfs/hanfs/shareddisk"
)

// Tx is one update's (or view's) access to the metadata. It implements the
// btree.Pager interface. A Tx is valid only inside the function given to
// Update or View.
type Tx struct {
	m        *Manager
	g        *group
	readOnly bool
	undo     []undoRec
	touched  map[uint64]struct{}
	allocs   []run // runs allocated by this tx (undo: clear in-memory bits)
	frees    []run // runs freed by this tx (released after the commit)
	sums     []journal.DataSum
	data     []dataImg // file data journaled by this tx (JournalData)
	await    bool      // the caller writes data after Update (AwaitData)

	r      *retry              // the state of the Update or View call across attempts
	id     uint64              // numbers this attempt for cbuf.stamp (0 until the first access)
	missed bool                // a block was not cached: the attempt is void and runs again
	seen   []*cbuf             // the blocks this attempt used, pinned if it misses
	hints  [maxPrefetch]uint64 // the latest Prefetch hints (a ring)
	nhints int
	seen0  [8]*cbuf
}

type run struct{ start, n uint64 }

type undoRec struct {
	c        *cbuf
	prev     []byte // nil for a block this tx allocated
	wasDirty bool
}

// ErrReadOnly is returned by changes attempted inside View.
var ErrReadOnly = fmt.Errorf("metadata change inside a read-only view")

// Commit is what an Update waits on to be durable.
type Commit struct {
	m       *Manager
	g       *group
	await   bool // the group's flush waits for DataDone
	counted bool // counted in Manager.open until Wait returns
}

// DataDone reports that the data announced with Tx.AwaitData has been
// written (or that writing it failed, which WriteSettled has already made
// fatal for the manager). Call it exactly once for an Update whose
// transaction called AwaitData; it does nothing otherwise.
func (c *Commit) DataDone() {
	if c != nil && c.await {
		c.await = false
		c.g.pending.Done()
	}
}

// Wait blocks until the update's group is durable on the disk, or failed.
// For an update that changed something, it commits the group itself if no
// commit is under way (see lead); an update that changed nothing waits for
// the group it may have seen, which newestGroupLocked asked to commit.
func (c *Commit) Wait() error {
	if c == nil || c.g == nil {
		return nil
	}
	if c.counted {
		defer c.m.open.Add(-1)
	}
	if faultEarlyReply {
		return nil
	}
	if c.counted && !isDone(c.g) {
		c.m.lead(c.g)
	}
	<-c.g.done
	return c.g.err
}

// Update runs fn under the exclusive metadata lock. If fn fails, every change
// it made is undone and its error returned. Otherwise the changes join the
// running group; the returned Commit says when they are durable.
//
// If fn needs a metadata block that is not cached, its attempt is undone, the
// lock released while the block is read, and fn run again: fn must have no
// effect outside the transaction that it cannot repeat.
func (m *Manager) Update(fn func(tx *Tx) error) (*Commit, error) {
	r := &retry{}
	defer m.unpin(r)
	for {
		c, again, err := m.tryUpdate(fn, r)
		if !again {
			return c, err
		}
		m.fetch(r)
	}
}

// tryUpdate is one attempt of Update; again reports a cache miss.
func (m *Manager) tryUpdate(fn func(tx *Tx) error, r *retry) (c *Commit, again bool, err error) {
	for {
		m.mu.Lock()
		if m.running == nil {
			m.mu.Unlock()
			return nil, false, ErrClosed
		}
		if len(m.running.dirty)+len(m.running.data) < m.softMax && m.running.sumBlocks < maxGroupSumBlocks {
			break
		}
		g := m.running
		m.mu.Unlock()
		m.kickNow()
		<-g.done
	}
	defer m.mu.Unlock()
	if err := m.Err(); err != nil {
		return nil, false, err
	}
	tx := m.newTx(r, m.running, false)
	err = fn(tx)
	if tx.missed {
		tx.rollback()
		tx.prepareRetryLocked()
		return nil, true, nil
	}
	if err != nil {
		tx.rollback()
		return nil, false, err
	}
	if len(tx.touched) == 0 && len(tx.frees) == 0 && len(tx.data) == 0 {
		// Nothing changed, but fn may have seen changes that are not durable
		// yet: wait for the newest group, running or committing.
		return &Commit{m: m, g: m.newestGroupLocked()}, false, nil
	}
	tx.finish()
	c = &Commit{m: m, g: tx.g, counted: true}
	m.open.Add(1)
	if tx.await {
		// The caller writes data now: the committer writes the journal
		// meanwhile. Other updates are committed by their Wait (lead).
		tx.g.pending.Add(1)
		c.await = true
		m.kickNow()
	}
	return c, false, nil
}

func (m *Manager) newTx(r *retry, g *group, readOnly bool) *Tx {
	tx := &Tx{m: m, g: g, readOnly: readOnly, r: r}
	if !readOnly {
		tx.touched = make(map[uint64]struct{})
	}
	tx.seen = tx.seen0[:0]
	return tx
}

// View runs fn under the shared metadata lock; fn may only read. Like
// Update's, fn runs again if it needs a block that is not cached.
func (m *Manager) View(fn func(tx *Tx) error) error {
	r := &retry{}
	defer m.unpin(r)
	for {
		again, err := m.tryView(fn, r)
		if !again {
			return err
		}
		m.fetch(r)
	}
}

// tryView is one attempt of View; again reports a cache miss.
func (m *Manager) tryView(fn func(tx *Tx) error, r *retry) (again bool, err error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.running == nil {
		return false, ErrClosed
	}
	tx := m.newTx(r, nil, true)
	err = fn(tx)
	if tx.missed {
		tx.prepareRetryLocked()
		return true, nil
	}
	return false, err
}

// Sync waits until every update that has returned is durable.
func (m *Manager) Sync() error {
	m.mu.Lock()
	if m.running == nil {
		m.mu.Unlock()
		return ErrClosed
	}
	g := m.newestGroupLocked()
	m.mu.Unlock()
	if g == nil {
		return m.Err()
	}
	<-g.done
	return g.err
}

func (m *Manager) kickNow() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// Read returns the contents of metadata block blk. Do not modify them.
func (tx *Tx) Read(blk uint64) ([]byte, error) {
	c, err := tx.getBuf(blk)
	if err != nil {
		return nil, err
	}
	return c.data, nil
}

// Modify returns a writable buffer of metadata block blk; the change joins
// the transaction.
func (tx *Tx) Modify(blk uint64) ([]byte, error) {
	if tx.readOnly {
		return nil, ErrReadOnly
	}
	c, err := tx.getBuf(blk)
	if err != nil {
		return nil, err
	}
	if err := tx.track(c, false); err != nil {
		return nil, err
	}
	return c.data, nil
}

func (tx *Tx) track(c *cbuf, fresh bool) error {
	if _, ok := tx.touched[c.blk]; ok {
		return nil
	}
	if !c.dirty && len(tx.g.dirty) >= tx.m.hardMax {
		return fmt.Errorf("%w (%d blocks)", ErrTooLarge, len(tx.g.dirty))
	}
	u := undoRec{c: c, wasDirty: c.dirty}
	if !fresh {
		u.prev = tx.m.undoBuf()
		copy(u.prev, c.data)
	}
	tx.undo = append(tx.undo, u)
	tx.touched[c.blk] = struct{}{}
	if !c.dirty {
		tx.m.cmu.Lock() // evictLocked reads dirty without mu
		c.dirty = true
		tx.m.cmu.Unlock()
		tx.g.dirty[c.blk] = c
	}
	return nil
}

// Alloc allocates a metadata block near the start of the data region and
// returns its writable buffer (zeroed).
func (tx *Tx) Alloc() (uint64, []byte, error) {
	r, err := tx.AllocRun(1, 0)
	if err != nil {
		return 0, nil, err
	}
	m := tx.m
	data := shareddisk.AlignedBuf(block.Size)
	m.cmu.Lock()
	m.dropLocked(r.Start)
	c := m.insertLocked(r.Start, data)
	m.cmu.Unlock()
	if err := tx.track(c, true); err != nil {
		return 0, nil, err
	}
	return r.Start, data, nil
}

// Free releases metadata block blk at the end of the transaction.
func (tx *Tx) Free(blk uint64) error {
	return tx.FreeRun(blk, 1)
}

// Run is a range of contiguous blocks.
type Run struct{ Start, N uint64 }

// ErrNoSpace is returned when no free block is left.
var ErrNoSpace = fmt.Errorf("no free blocks left on the disk")

// AllocRun allocates up to n contiguous blocks, preferring blocks at or after
// hint (an absolute block number; 0 means the allocator's cursor). It returns
// a run of at least one block, or an error wrapping ErrNoSpace.
func (tx *Tx) AllocRun(n, hint uint64) (Run, error) {
	if tx.readOnly {
		return Run{}, ErrReadOnly
	}
	if tx.missed {
		return Run{}, errMiss
	}
	m := tx.m
	m.cmu.Lock()
	r, ok := m.alloc.find(n, hint, func(b uint64) bool { _, busy := m.ckpt[b]; return busy })
	m.cmu.Unlock()
	if !ok {
		return Run{}, fmt.Errorf("%s: allocate %d blocks: %w", m.d.Name(), n, ErrNoSpace)
	}
	m.alloc.set(r.start, r.n, true)
	tx.allocs = append(tx.allocs, r)
	if err := tx.setBitmap(r, true); err != nil {
		return Run{}, err
	}
	return Run{Start: r.start, N: r.n}, nil
}

// FreeRun frees n blocks starting at start when the transaction commits.
func (tx *Tx) FreeRun(start, n uint64) error {
	if tx.readOnly {
		return ErrReadOnly
	}
	if tx.missed {
		return errMiss
	}
	r := run{start, n}
	if err := tx.m.alloc.checkAllocated(r); err != nil {
		return err
	}
	for _, f := range tx.frees {
		if r.start < f.start+f.n && f.start < r.start+r.n {
			return fmt.Errorf("double free of blocks %d+%d in one transaction", r.start, r.n)
		}
	}
	if err := tx.setBitmap(r, false); err != nil {
		return err
	}
	tx.frees = append(tx.frees, r)
	return nil
}

// DataWritten tells the transaction that the data extent ds describes was
// written before it and that the transaction makes those bytes visible (newly
// allocated blocks, or bytes past the old end of a file). The commit records
// the checksum, so that data and journal share one flush: replay drops the
// transaction if, after a crash, the data is not on the disk.
func (tx *Tx) DataWritten(ds journal.DataSum) { tx.sums = append(tx.sums, ds) }

// AwaitData says that the caller will write, after Update returns, data
// that this transaction's checksums cover: the journal write of the group can
// then overlap the data write, and the group's flush waits until the caller
// calls Commit.DataDone. The caller writes with WriteSettled, having called
// Settle before Update for any block it overwrites in place.
func (tx *Tx) AwaitData() { tx.await = true }

// SumOf returns the checksum record of data written at disk block start.
func SumOf(start uint64, data []byte) journal.DataSum {
	return journal.DataSum{Start: start, N: uint32(len(data) / block.Size), CRC: journal.Checksum(data)}
}

// Touch adds block blk to the transaction unchanged, so that the
// transaction is journaled even if nothing else changes.
func (tx *Tx) Touch(blk uint64) error {
	_, err := tx.Modify(blk)
	return err
}

// FreeBlocks returns the number of free blocks.
func (tx *Tx) FreeBlocks() uint64 { return tx.m.alloc.free }

// setBitmap sets or clears the on-disk bitmap bits of r.
func (tx *Tx) setBitmap(r run, v bool) error {
	lay := tx.m.lay
	for b := r.start; b < r.start+r.n; {
		rel := b - lay.DataStart
		bi := rel / shareddisk.BitsPerBitmapBlock
		buf, err := tx.Modify(lay.BitmapStart + bi)
		if err != nil {
			return fmt.Errorf("bitmap block %d: %w", bi, err)
		}
		if block.TypeOf(buf) != block.TypeBitmap {
			return fmt.Errorf("bitmap block %d: %w", lay.BitmapStart+bi, block.ErrType)
		}
		end := min(r.start+r.n, lay.DataStart+(bi+1)*shareddisk.BitsPerBitmapBlock)
		for ; b < end; b++ {
			bit := (b - lay.DataStart) % shareddisk.BitsPerBitmapBlock
			byteAt := block.HeaderSize + bit/8
			mask := byte(1) << (bit % 8)
			if v {
				buf[byteAt] |= mask
			} else {
				buf[byteAt] &^= mask
			}
		}
	}
	return nil
}

// rollback undoes the changes of a failed attempt: block contents, the dirty
// state of the blocks in the running group, blocks allocated (Alloc,
// AllocRun) in memory and in the cache. Bitmap changes (AllocRun, FreeRun,
// Claim) are block contents; frees only reach the allocator at finish.
func (tx *Tx) rollback() {
	m := tx.m
	for i := len(tx.undo) - 1; i >= 0; i-- {
		u := tx.undo[i]
		if u.prev != nil {
			copy(u.c.data, u.prev)
		}
		m.cmu.Lock()
		if u.prev == nil {
			m.dropLocked(u.c.blk)
		}
		if !u.wasDirty {
			u.c.dirty = false
			delete(tx.g.dirty, u.c.blk)
		}
		m.cmu.Unlock()
	}
	for _, r := range tx.allocs {
		m.alloc.set(r.start, r.n, false)
	}
	tx.dropUndo()
}

// dropUndo gives the undo copies back for reuse, once the transaction can
// no longer be rolled back.
func (tx *Tx) dropUndo() {
	for i := range tx.undo {
		if p := tx.undo[i].prev; p != nil {
			tx.m.undoBufs.Put(&p)
		}
	}
	tx.undo = nil
}

// undoBuf returns a block-sized buffer for an undo copy.
func (m *Manager) undoBuf() []byte {
	if p, ok := m.undoBufs.Get().(*[]byte); ok {
		return *p
	}
	return make([]byte, block.Size)
}

// finish hands the transaction's frees to the group: freed metadata blocks
// leave the cache and the group, and none is reused before the commit.
func (tx *Tx) finish() {
	m := tx.m
	m.cmu.Lock()
	for _, r := range tx.frees {
		for b := r.start; b < r.start+r.n; b++ {
			if c, ok := m.cache[b]; ok {
				if c.dirty {
					c.dirty = false
					delete(tx.g.dirty, b)
				}
				m.dropLocked(b)
			}
			// The checkpoint map's image stays live until the free is
			// durable (commitOnce marks it freed then): a checkpoint before
			// must still write it home.
			tx.forgetDataLocked(b)
		}
	}
	tx.finishDataLocked()
	m.cmu.Unlock()
	for _, d := range tx.data {
		m.dc.invalidate(int64(d.blk*block.Size), block.Size)
	}
	tx.g.freed = append(tx.g.freed, tx.frees...)
	tx.g.sums = append(tx.g.sums, tx.sums...)
	for _, ds := range tx.sums {
		tx.g.sumBlocks += uint64(ds.N)
	}
	tx.dropUndo()
}
