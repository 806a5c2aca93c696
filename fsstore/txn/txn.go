// Package txn gives the file system atomic, durable transactions over cached
// metadata blocks: a bounded block cache, a metadata lock, group commit into the
// journal, checkpointing, and block allocation.
//
// An Update runs a function under the exclusive metadata lock; every block it
// changes joins the running group, and if the function fails, its changes are
// rolled back. Update returns a Commit to wait on after the lock is released,
// so concurrent updates share one journal write and one flush (group commit).
// The committer goroutine commits groups; an update that is the only one in
// flight is committed by its own Commit.Wait instead (lead), which spares two
// goroutine handoffs when requests come one at a time. Either way the
// committer of the moment holds cmt, so transactions reach the log one at a
// time.
// No disk I/O happens under the metadata lock: an Update or View that needs
// an uncached metadata block gives up the lock (Update rolling back what it
// changed), reads the block into the cache, pinned, and runs its function
// again (see fetch.go). The function must therefore have no effect outside
// the transaction that it cannot repeat. File data I/O and journal flushes
// are never done under the lock either.
//
// Safety rules kept here:
//   - a block freed by a transaction is not reused before that transaction is
//     durable, and not while the live journal still holds an image of it (so
//     replay can never overwrite a reused block: no revoke records needed);
//   - file data that a transaction makes visible (newly allocated blocks,
//     bytes past the old end of a file) is written before the transaction,
//     and its checksum goes into the transaction, so data and journal share
//     one flush; replay drops the newest transaction if its data is missing
//     (see package journal). Hence: the committer appends a transaction only
//     after the previous one's flush returned, and no data is written in
//     place over blocks whose checksum is in a transaction that could still
//     be the newest one on the disk (WriteData waits, see Settle);
//   - after any failed disk write the manager stops: every later call fails.
package txn

import (
	"container/list"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/hanfs/hanfs/fsstore/block"
	"github.com/hanfs/hanfs/fsstore/journal"
	"github.com/hanfs/hanfs/shareddisk"
)

// ErrTooLarge is returned when one update changes more blocks than the journal
// can commit at once.
var ErrTooLarge = errors.New("transaction too large for the journal")

// ErrClosed is returned after Close.
var ErrClosed = errors.New("store closed")

// Options tune a Manager.
type Options struct {
	CacheBlocks int          // metadata blocks kept in memory (default 16384: 64 MiB)
	Logger      *slog.Logger // default slog.Default()
	// WriteGate, when set, is called before every disk write and flush; an
	// error stops the manager (used for fencing: no lease, no writes).
	WriteGate func() error
	// DataCacheBytes bounds the cache of file data read ahead (datacache.go);
	// 0 disables it. Only the holder of the write lease may open a Manager
	// with one.
	DataCacheBytes int64
	// DataCacheCounters, when set, receive the data cache's counts.
	DataCacheCounters *DataCacheCounters
}

type cbuf struct {
	blk   uint64
	data  []byte
	elem  *list.Element
	dirty bool   // part of the running group; written under mu and cmu
	pins  int    // retrying calls that need the block: not evicted; guarded by cmu
	stamp uint64 // the last Tx that recorded it in Tx.seen; guarded by cmu
}

type ckptEntry struct {
	img   []byte
	txid  uint64 // 0 until the commit is durable
	freed bool   // freed by a durable transaction since: do not write it home
	data  bool   // journaled file data (JournalData), not a metadata block
}

type group struct {
	dirty map[uint64]*cbuf
	freed []run
	sums  []journal.DataSum // data the group makes visible (see Settle)
	// data holds the file data blocks journaled in the group (JournalData),
	// by disk block; nil until the first.
	data map[uint64][]byte
	// sumBlocks is the data the sums cover, in blocks: replay reads it back
	// if the group is the last in the log, so a group is closed to new
	// updates once it reaches maxGroupSumBlocks.
	sumBlocks uint64
	// pending counts data writes of the group's transactions still in
	// flight (Tx.AwaitData); the flush waits for them.
	pending sync.WaitGroup
	done    chan struct{}
	err     error
}

// empty reports whether g holds no change.
func (g *group) empty() bool { return len(g.dirty) == 0 && len(g.freed) == 0 && len(g.data) == 0 }

func newGroup() *group {
	return &group{dirty: make(map[uint64]*cbuf), done: make(chan struct{})}
}

// maxGroupSumBlocks bounds the data one group's checksums cover (64 MiB; one
// update may go over it alone): replay reads that much at most to check the
// last transaction, whatever the size of the file system (invariant 9).
const maxGroupSumBlocks = 16384

// Stats counts what the manager did, for metrics and benchmarks.
type Stats struct {
	Commits, CommittedBlocks, Flushes, Checkpoints, CacheHits, CacheMisses uint64
	// DataSums counts data checksums committed; Settles counts in-place
	// data writes that had to wait for a later commit first.
	DataSums, Settles uint64
	// MetaReads counts metadata blocks read from the disk, Retries the
	// attempts of Update and View that missed the cache and ran again.
	MetaReads, Retries uint64
	// JournaledBlocks counts file data blocks committed in the journal
	// (JournalData); Unjournals the checkpoints taken so that journaled
	// blocks could be overwritten in place.
	JournaledBlocks, Unjournals uint64
	// Led counts the commits made by a waiting caller itself (lead).
	Led uint64
	// CheckpointBlocks counts the blocks checkpoints wrote home;
	// CheckpointNanos the time checkpoints took (commits wait meanwhile).
	CheckpointBlocks, CheckpointNanos uint64
}

// Add adds the counters of o to s.
func (s *Stats) Add(o Stats) {
	s.Commits += o.Commits
	s.CommittedBlocks += o.CommittedBlocks
	s.Flushes += o.Flushes
	s.Checkpoints += o.Checkpoints
	s.CacheHits += o.CacheHits
	s.CacheMisses += o.CacheMisses
	s.DataSums += o.DataSums
	s.Settles += o.Settles
	s.MetaReads += o.MetaReads
	s.Retries += o.Retries
	s.JournaledBlocks += o.JournaledBlocks
	s.Unjournals += o.Unjournals
	s.Led += o.Led
	s.CheckpointBlocks += o.CheckpointBlocks
	s.CheckpointNanos += o.CheckpointNanos
}

// Manager owns the metadata of one open store.
type Manager struct {
	d    shareddisk.Disk
	lay  shareddisk.Layout
	log  *journal.Log
	opt  Options
	logr *slog.Logger

	mu      sync.RWMutex // metadata lock
	running *group       // guarded by mu
	// committing is the group the committer took last (done or not);
	// guarded by mu.
	committing *group
	// exposed is the newest durable group if it carried data checksums: it
	// may be the last transaction in the log, so its data blocks must not
	// be overwritten in place until a later transaction is durable (or a
	// checkpoint empties the log). Guarded by mu.
	exposed *group
	alloc   *allocator // guarded by mu

	cmu   sync.Mutex // guards cache, lru, ckpt, dimg, inflight, stats, txSeq
	cache map[uint64]*cbuf
	lru   list.List
	ckpt  map[uint64]*ckptEntry
	// dimg holds the newest journaled image of each file data block whose
	// home is not yet written (see journaled.go).
	dimg     map[uint64][]byte
	inflight map[uint64]*fetchState // blocks being read from the disk
	stats    Stats
	txSeq    uint64 // numbers Tx attempts, for cbuf.stamp

	fmu    sync.Mutex
	failed error

	dc *dataCache // file data read ahead; nil when disabled

	undoBufs sync.Pool // block-sized buffers for Tx undo copies

	// cmt is held by whoever commits or checkpoints: the committer
	// goroutine, or a caller of Commit.Wait leading its own group (lead).
	cmt sync.Mutex
	// open counts updates whose Commit.Wait has not returned (lead).
	open      atomic.Int64
	closeOnce sync.Once
	kick      chan struct{}
	ckptReq   chan chan error // unjournal asks the committer for a checkpoint
	quit      chan struct{}
	stopped   chan struct{}
	hardMax   int
	softMax   int
}

// Open replays the journal of the store on d and starts the committer.
func Open(d shareddisk.Disk, lay shareddisk.Layout, opt Options) (*Manager, error) {
	if opt.CacheBlocks <= 0 {
		opt.CacheBlocks = 16384
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	dc, err := dataCacheOption(d, opt)
	if err != nil {
		return nil, err
	}
	lg, err := journal.Open(d, lay.JournalStart, lay.JournalBlocks)
	if err != nil {
		return nil, fmt.Errorf("open journal: %w", err)
	}
	m := &Manager{
		d: d, lay: lay, log: lg, opt: opt, logr: opt.Logger,
		cache: make(map[uint64]*cbuf), ckpt: make(map[uint64]*ckptEntry), dimg: make(map[uint64][]byte),
		inflight: make(map[uint64]*fetchState),
		kick:     make(chan struct{}, 1), ckptReq: make(chan chan error), quit: make(chan struct{}), stopped: make(chan struct{}),
		dc: dc,
	}
	capBlocks := int(lg.Capacity())
	m.hardMax = capBlocks/2 - capBlocks/journal.HomesPerDesc - 2
	m.softMax = capBlocks / 4
	if err := m.replay(); err != nil {
		return nil, err
	}
	a, err := loadAllocator(d, lay)
	if err != nil {
		return nil, err
	}
	m.alloc = a
	m.running = newGroup()
	go m.committer()
	return m, nil
}

// replay applies the journal to the home blocks, flushes, and empties the log.
func (m *Manager) replay() error {
	type img struct {
		home uint64
		data []byte
	}
	var imgs []img
	n, err := m.log.Replay(func(home uint64, b []byte, raw bool) error {
		if raw && (home < m.lay.DataStart || home >= m.lay.TotalBlocks) {
			return fmt.Errorf("journaled file data for block %d outside the data region", home)
		}
		if home < m.lay.FSInfo || home >= m.lay.TotalBlocks || (home >= m.lay.JournalStart && home < m.lay.JournalStart+m.lay.JournalBlocks) {
			return fmt.Errorf("image for block %d outside the metadata regions", home)
		}
		c := shareddisk.AlignedBuf(block.Size)
		copy(c, b)
		imgs = append(imgs, img{home, c})
		return nil
	})
	if err != nil {
		return fmt.Errorf("replay journal: %w", err)
	}
	if tx := m.log.Dropped(); tx != 0 {
		m.logr.Warn("journal: newest transaction dropped: its data never reached the disk (it was not acknowledged)", "disk", m.d.Name(), "txid", tx)
	}
	if n == 0 {
		return nil
	}
	if err := m.gate(); err != nil {
		return err
	}
	for _, im := range imgs {
		if _, err := m.d.WriteAt(im.data, int64(im.home)*block.Size); err != nil {
			return fmt.Errorf("replay journal: write block %d: %w", im.home, err)
		}
	}
	if err := m.d.Flush(); err != nil {
		return fmt.Errorf("replay journal: flush: %w", err)
	}
	if err := m.log.Checkpointed(m.log.NextTxID()); err != nil {
		return fmt.Errorf("replay journal: %w", err)
	}
	m.logr.Info("journal replayed", "disk", m.d.Name(), "transactions", n, "blocks", len(imgs))
	return nil
}

func (m *Manager) gate() error {
	if m.opt.WriteGate != nil {
		if err := m.opt.WriteGate(); err != nil {
			return fmt.Errorf("write refused: %w", err)
		}
	}
	return nil
}

// Err returns the error that stopped the manager, or nil.
func (m *Manager) Err() error {
	m.fmu.Lock()
	defer m.fmu.Unlock()
	return m.failed
}

func (m *Manager) fail(err error) {
	m.fmu.Lock()
	if m.failed == nil {
		m.failed = err
		m.logr.Error("store stopped: no further writes", "disk", m.d.Name(), "err", err)
	}
	m.fmu.Unlock()
}

// newestGroupLocked returns the newest group whose changes a reader may have
// seen: the running one if it holds changes, else the one committing last.
// The caller holds mu.
func (m *Manager) newestGroupLocked() *group {
	if !m.running.empty() {
		m.kickNow()
		return m.running
	}
	return m.committing
}

// Stats returns a snapshot of the counters.
func (m *Manager) Stats() Stats {
	m.cmu.Lock()
	defer m.cmu.Unlock()
	return m.stats
}

// Layout returns the disk layout.
func (m *Manager) Layout() shareddisk.Layout { return m.lay }

// Disk returns the underlying disk.
func (m *Manager) Disk() shareddisk.Disk { return m.d }

// WriteData writes file data (block-aligned) straight to the disk, outside any
// lock. The caller must own the blocks (allocated in a transaction it runs, or
// part of a file it has locked). Before overwriting blocks whose checksum is
// in a transaction that could still be the newest in the log, it waits until
// a later transaction is durable.
func (m *Manager) WriteData(p []byte, off int64) error {
	if err := m.Settle(uint64(off)/block.Size, uint64(len(p))/block.Size); err != nil {
		return err
	}
	return m.WriteSettled(p, off)
}

// WriteSettled writes file data like WriteData, without waiting: the blocks
// are newly allocated, or the caller called Settle for them. A failure stops
// the manager, so no transaction that depends on the data commits.
func (m *Manager) WriteSettled(p []byte, off int64) error {
	defer m.dc.invalidate(off, len(p)) // after the disk write: see datacache.go
	if err := m.Err(); err != nil {
		return err
	}
	if err := m.gate(); err != nil {
		m.fail(err)
		return err
	}
	if _, err := m.d.WriteAt(p, off); err != nil {
		err = fmt.Errorf("write data at block %d: %w", off/block.Size, err)
		m.fail(err)
		return err
	}
	return nil
}

// Settle returns once no transaction whose data checksums cover blocks
// [blk, blk+n) can be the last transaction in the log: it waits for a
// pending one to commit, then for a later transaction to be durable,
// committing an empty one if nothing else does. Without this, an in-place
// write there followed by a crash could make replay see a checksum mismatch
// in an acknowledged transaction and drop it.
func (m *Manager) Settle(blk, n uint64) error {
	if err := m.SettleJournaled(blk, n); err != nil {
		return err
	}
	return m.unjournal(blk, n)
}

// SettleJournaled is Settle for blocks about to be journaled (JournalData)
// rather than written in place: it orders the journaled images after every
// transaction whose data checksums cover the blocks.
func (m *Manager) SettleJournaled(blk, n uint64) error {
	for {
		m.mu.RLock()
		if m.running == nil {
			m.mu.RUnlock()
			return ErrClosed
		}
		var pending *group
		switch {
		case covers(m.running.sums, blk, n):
			pending = m.running
		case m.committing != nil && !isDone(m.committing) && covers(m.committing.sums, blk, n):
			pending = m.committing
		case m.exposed != nil && covers(m.exposed.sums, blk, n):
		default:
			m.mu.RUnlock()
			return nil
		}
		m.mu.RUnlock()
		m.cmu.Lock()
		m.stats.Settles++
		m.cmu.Unlock()
		if pending != nil {
			m.kickNow()
			<-pending.done
			if pending.err != nil {
				return pending.err
			}
			continue
		}
		c, err := m.Update(func(tx *Tx) error { return tx.Touch(m.lay.FSInfo) })
		if err != nil {
			return fmt.Errorf("commit before overwriting data in place: %w", err)
		}
		if err := c.Wait(); err != nil {
			return fmt.Errorf("commit before overwriting data in place: %w", err)
		}
	}
}

func covers(sums []journal.DataSum, blk, n uint64) bool {
	for _, s := range sums {
		if blk < s.Start+uint64(s.N) && s.Start < blk+n {
			return true
		}
	}
	return false
}

func isDone(g *group) bool {
	select {
	case <-g.done:
		return true
	default:
		return false
	}
}

// ReadData reads file data straight from the disk, or from the data cache
// when a read ahead holds it.
func (m *Manager) ReadData(p []byte, off int64) error {
	imgs := m.imagesIn(off, len(p))
	if !m.dc.read(p, off) {
		if _, err := m.d.ReadAt(p, off); err != nil {
			return fmt.Errorf("read data at block %d: %w", off/block.Size, err)
		}
	}
	overlay(imgs, p, off)
	return nil
}

// getBuf returns the cached buffer of blk for tx, copying it from the
// checkpoint map if needed. It never reads the disk: a block that must come
// from the disk is a miss (errMiss), and so is every access after one. The
// caller holds mu in either mode.
func (tx *Tx) getBuf(blk uint64) (*cbuf, error) {
	m := tx.m
	if blk < m.lay.FSInfo || blk >= m.lay.TotalBlocks {
		return nil, fmt.Errorf("metadata block %d outside the disk's metadata area", blk)
	}
	if tx.missed {
		tx.noteMiss(blk)
		return nil, fmt.Errorf("block %d: %w", blk, errMiss)
	}
	m.cmu.Lock()
	defer m.cmu.Unlock()
	c, ok := m.cache[blk]
	if ok {
		m.lru.MoveToFront(c.elem)
		m.stats.CacheHits++
	} else {
		m.stats.CacheMisses++
		data := m.ckptCopyLocked(blk)
		if data == nil {
			if err, ok := tx.r.errs[blk]; ok {
				return nil, err
			}
			tx.noteMiss(blk)
			return nil, fmt.Errorf("block %d: %w", blk, errMiss)
		}
		c = m.insertLocked(blk, data)
	}
	if tx.id == 0 {
		m.txSeq++
		tx.id = m.txSeq
	}
	if c.stamp != tx.id {
		c.stamp = tx.id
		tx.seen = append(tx.seen, c)
	}
	return c, nil
}

// insertLocked caches data as blk's contents. A read of blk from the disk
// still in flight is no longer current. The caller holds cmu.
func (m *Manager) insertLocked(blk uint64, data []byte) *cbuf {
	if f, ok := m.inflight[blk]; ok {
		f.stale = true
	}
	c := &cbuf{blk: blk, data: data}
	c.elem = m.lru.PushFront(c)
	m.cache[blk] = c
	m.evictLocked()
	return c
}

// evictLocked drops least recently used clean, unpinned blocks over the
// cache size.
func (m *Manager) evictLocked() {
	over := len(m.cache) - m.opt.CacheBlocks
	for e := m.lru.Back(); e != nil && over > 0 && e != m.lru.Front(); {
		prev := e.Prev()
		c := e.Value.(*cbuf)
		if !c.dirty && c.pins == 0 {
			m.lru.Remove(e)
			delete(m.cache, c.blk)
			over--
		}
		e = prev
	}
}

func (m *Manager) dropLocked(blk uint64) {
	if f, ok := m.inflight[blk]; ok {
		f.stale = true
	}
	if c, ok := m.cache[blk]; ok {
		m.lru.Remove(c.elem)
		delete(m.cache, blk)
	}
}
