package txn

import (
	"errors"
	"fmt"
	"sync"

	"github.com/hanfs/hanfs/fsstore/block"
	"github.com/hanfs/hanfs/shareddisk"
)

// Cache misses inside Update and View are never served from the disk while
// the metadata lock is held. A Tx that needs a block that is neither cached
// nor in the checkpoint map records the miss and fails every later access
// with errMiss; Update rolls the attempt back, both release the lock, the
// missing blocks (and the blocks the attempt had used, if they were evicted
// meanwhile) are read into the cache without the lock and pinned there, and
// the function runs again. Pins last until the Update or View returns, so
// a retry finds every block fetched or used before it, and misses only
// blocks that no earlier attempt of the call reached (unless other updates
// changed the tree meanwhile): the call makes progress however small the
// cache and however many calls miss at once.

// errMiss is what Tx.Read, Tx.Modify and the allocation calls return once
// the transaction has missed the cache; Update and View retry the function
// whatever it returns.
var errMiss = errors.New("metadata block not cached: the transaction runs again once it is read")

// maxPrefetch is how many of its latest read-ahead hints a Tx keeps, and so
// bounds the blocks read for one retry besides the missed and used ones.
const maxPrefetch = 16

// fetchState is the inflight read of one block, so concurrent misses of a
// block read it once.
type fetchState struct {
	done  chan struct{}
	stale bool // the block was inserted or dropped meanwhile: the read is not current
}

// retry is what one Update or View call carries from attempt to attempt.
type retry struct {
	want   []uint64         // blocks to read before the next attempt
	queued map[uint64]bool  // dedups want
	pinned []*cbuf          // unpinned when the call returns
	pinSet map[*cbuf]bool   // the blocks in pinned: a used block is pinned once per call
	errs   map[uint64]error // blocks that could not be read: the next attempt sees the error
}

// addWant queues blk for reading before the next attempt.
func (r *retry) addWant(blk uint64) {
	if r.queued == nil {
		r.queued = make(map[uint64]bool)
	}
	if !r.queued[blk] {
		r.queued[blk] = true
		r.want = append(r.want, blk)
	}
}

// noteMiss records that tx needs blk, which is not cached.
func (tx *Tx) noteMiss(blk uint64) {
	tx.missed = true
	tx.r.addWant(blk)
}

// Prefetch hints that blk will probably be read soon in this transaction. If
// the transaction misses the cache, uncached hinted blocks are read with the
// missed ones, so that the retry does not miss them one at a time. It
// implements btree.Prefetcher.
func (tx *Tx) Prefetch(blk uint64) {
	tx.hints[tx.nhints%maxPrefetch] = blk
	tx.nhints++
}

// prepareRetryLocked runs after an attempt missed, with mu still held: it
// pins the blocks the attempt used that are still cached, and queues for
// reading those that were evicted and the hinted ones that are not cached.
func (tx *Tx) prepareRetryLocked() {
	m, r := tx.m, tx.r
	if r.pinSet == nil {
		r.pinSet = make(map[*cbuf]bool)
	}
	m.cmu.Lock()
	defer m.cmu.Unlock()
	m.stats.Retries++
	for _, c := range tx.seen {
		if m.cache[c.blk] != c {
			r.addWant(c.blk)
		} else if !r.pinSet[c] {
			r.pinSet[c] = true
			c.pins++
			r.pinned = append(r.pinned, c)
		}
	}
	for _, blk := range tx.hints[:min(tx.nhints, maxPrefetch)] {
		if blk < m.lay.FSInfo || blk >= m.lay.TotalBlocks {
			continue
		}
		if _, ok := m.cache[blk]; !ok {
			r.addWant(blk)
		}
	}
}

// fetchParallel bounds the concurrent reads of one fetch.
const fetchParallel = 16

// fetch reads the blocks r wants into the cache, pinned, without the
// metadata lock. A block that cannot be read is remembered with its error.
func (m *Manager) fetch(r *retry) {
	want := r.want
	r.want, r.queued = nil, nil
	if len(want) == 1 {
		m.fetchOne(r, want[0], nil)
		return
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, fetchParallel)
	for _, blk := range want {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			m.fetchOne(r, blk, &mu)
		}()
	}
	wg.Wait()
}

func (m *Manager) fetchOne(r *retry, blk uint64, mu *sync.Mutex) {
	c, err := m.load(blk)
	if mu != nil {
		mu.Lock()
		defer mu.Unlock()
	}
	if err != nil {
		if r.errs == nil {
			r.errs = make(map[uint64]error)
		}
		r.errs[blk] = err
		return
	}
	if r.pinSet == nil {
		r.pinSet = make(map[*cbuf]bool)
	}
	r.pinSet[c] = true
	r.pinned = append(r.pinned, c)
}

// unpin releases the pins of a finished Update or View.
func (m *Manager) unpin(r *retry) {
	if len(r.pinned) == 0 {
		return
	}
	m.cmu.Lock()
	for _, c := range r.pinned {
		c.pins--
	}
	m.evictLocked()
	m.cmu.Unlock()
	r.pinned = nil
}

// load returns blk's cache buffer, pinned, reading the block from the disk if
// it is neither cached nor in the checkpoint map. The caller must not hold
// mu: this is the only place metadata is read from the disk after Open.
func (m *Manager) load(blk uint64) (*cbuf, error) {
	for {
		m.cmu.Lock()
		if c, ok := m.cache[blk]; ok {
			c.pins++
			m.lru.MoveToFront(c.elem)
			m.cmu.Unlock()
			return c, nil
		}
		if f, ok := m.inflight[blk]; ok {
			m.cmu.Unlock()
			<-f.done
			continue
		}
		if data := m.ckptCopyLocked(blk); data != nil {
			c := m.insertLocked(blk, data)
			c.pins++
			m.cmu.Unlock()
			return c, nil
		}
		// Not cached and not in the checkpoint map: the disk copy is current,
		// and stays so until the block enters the cache, which only this
		// read or an allocation (marking f stale) can do.
		f := &fetchState{done: make(chan struct{})}
		m.inflight[blk] = f
		m.stats.MetaReads++
		m.cmu.Unlock()

		data, err := m.readMeta(blk)

		m.cmu.Lock()
		delete(m.inflight, blk)
		close(f.done)
		if err != nil {
			m.cmu.Unlock()
			return nil, err
		}
		if f.stale {
			m.cmu.Unlock()
			continue
		}
		c := m.insertLocked(blk, data)
		c.pins++
		m.cmu.Unlock()
		return c, nil
	}
}

// readMeta reads and verifies metadata block blk from the disk.
func (m *Manager) readMeta(blk uint64) ([]byte, error) {
	data := shareddisk.AlignedBuf(block.Size)
	if _, err := m.d.ReadAt(data, int64(blk)*block.Size); err != nil {
		return nil, fmt.Errorf("read metadata block %d: %w", blk, err)
	}
	if err := block.Verify(data, blk, block.TypeFree); err != nil {
		return nil, fmt.Errorf("%s: metadata: %w", m.d.Name(), err)
	}
	return data, nil
}

// ckptCopyLocked returns a copy of blk's image in the checkpoint map, or nil.
// The caller holds cmu.
func (m *Manager) ckptCopyLocked(blk uint64) []byte {
	e, ok := m.ckpt[blk]
	if !ok || e.freed || e.data {
		return nil
	}
	data := shareddisk.AlignedBuf(block.Size)
	copy(data, e.img)
	return data
}
