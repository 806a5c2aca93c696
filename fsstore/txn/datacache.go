package txn

import (
	"container/list"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/hanfs/hanfs/fsstore/block"
	"github.com/hanfs/hanfs/shareddisk"
)

// The data cache holds file data blocks read ahead for sequential readers
// (Prefetch), keyed by disk block number, so that ReadData can serve them
// without waiting for the disk.
//
// Why it is coherent (docs/architecture.md, "The read-ahead cache"): the
// cache lives in the Manager, which only the node holding the write lease
// opens, so this process is the only writer of the disk while the cache
// exists; a takeover or restart opens a new Manager with an empty cache. Every
// file data write goes through WriteData, which invalidates the blocks it
// wrote after the disk write returns, including blocks of fills still reading
// from the disk (so a fill that read the old bytes never serves them).
// Metadata is never cached here: a block freed and reused as metadata is
// written through the journal, not WriteData, but it is read as file data
// again only after a later reuse as file data, whose WriteData invalidates it.

// fillBlocks is the largest fill: one pooled buffer of 1 MiB.
const fillBlocks = 256

// maxLoads bounds the disk reads of fills under way in the background, so
// that reading ahead adds little to the disk's queue: the lease's I/O shares
// the disk and has a deadline (an unbounded read-ahead made a loaded test
// machine miss a renewal). Fills beyond it wait their turn, pending; a
// reader that needs a fill still waiting reads it itself (hold).
const maxLoads = 2

// DataCacheCounters count what data caches did. One value may be shared by
// the successive Managers of a process, so that the counts outlive a store
// (metrics); the fields are updated atomically.
type DataCacheCounters struct {
	// Hits counts ReadData calls served entirely from the cache.
	Hits atomic.Uint64
	// Misses counts ReadData calls, with the cache on, that read the disk.
	Misses atomic.Uint64
	// PrefetchedBlocks counts blocks read ahead into the cache.
	PrefetchedBlocks atomic.Uint64
	// InvalidatedBlocks counts cached blocks dropped because they were written.
	InvalidatedBlocks atomic.Uint64
}

// fill is one disk read ahead: n blocks from disk block start, in buf.
type fill struct {
	start, n uint64
	buf      []byte
	done     chan struct{} // closed when the disk read ended
	pending  bool          // the disk read has not ended
	started  bool          // its disk read was started (by load or a reader)
	live     int           // blocks of it still in dataCache.blocks
	refs     int           // readers copying from buf outside the lock
	dropped  bool          // out of the cache: buf is pooled again once refs is 0
	elem     *list.Element // in dataCache.lru once ready
}

// dataCache is a Manager's cache of file data blocks; nil when disabled.
type dataCache struct {
	d   shareddisk.Disk
	max int64
	cnt *DataCacheCounters

	mu     sync.Mutex
	blocks map[uint64]*fill // disk block -> the fill holding it (pending or ready)
	lru    list.List        // ready fills, most recently used first
	used   int64            // bytes of the fills not dropped
	closed bool
	wg     sync.WaitGroup // disk reads of pending fills
	bufs   sync.Pool      // fillBlocks-block aligned buffers
	loads  chan struct{}  // a slot per disk read under way (maxLoads)
}

func newDataCache(d shareddisk.Disk, maxBytes int64, cnt *DataCacheCounters) *dataCache {
	if maxBytes < fillBlocks*block.Size {
		return nil
	}
	if cnt == nil {
		cnt = new(DataCacheCounters)
	}
	return &dataCache{d: d, max: maxBytes, cnt: cnt, blocks: make(map[uint64]*fill), loads: make(chan struct{}, maxLoads)}
}

// piece is a part of a read served by one fill.
type piece struct {
	f      *fill
	b0, b1 uint64 // disk blocks [b0, b1)
}

// read copies the blocks at byte offset off into p if all of them are
// cached, waiting for fills still reading them, and says whether it did.
func (c *dataCache) read(p []byte, off int64) bool {
	if c == nil {
		return false
	}
	pieces, b0, ok := c.hold(off, len(p))
	if !ok {
		return false
	}
	for _, pc := range pieces {
		copy(p[(pc.b0-b0)*block.Size:(pc.b1-b0)*block.Size], pc.f.buf[(pc.b0-pc.f.start)*block.Size:])
	}
	c.unhold(pieces)
	return true
}

// refs returns the n bytes at byte offset off as slices of the cache's
// buffers if all of them are cached, waiting for fills still reading them.
// The buffers stay out of the pool until release is called.
func (c *dataCache) refs(off int64, n int) (bufs [][]byte, release func(), ok bool) {
	if c == nil {
		return nil, nil, false
	}
	pieces, _, ok := c.hold(off, n)
	if !ok {
		return nil, nil, false
	}
	for _, pc := range pieces {
		bufs = append(bufs, pc.f.buf[(pc.b0-pc.f.start)*block.Size:(pc.b1-pc.f.start)*block.Size])
	}
	var once sync.Once
	return bufs, func() { once.Do(func() { c.unhold(pieces) }) }, true
}

// hold finds the fills holding all the blocks of the n bytes at byte offset
// off, waiting for those still reading, and takes a reference on each; it
// returns the pieces and the first block, or false (a miss).
func (c *dataCache) hold(off int64, n int) ([]piece, uint64, bool) {
	if off%block.Size != 0 || n%block.Size != 0 || n == 0 {
		c.cnt.Misses.Add(1)
		return nil, 0, false
	}
	b0, b1 := uint64(off)/block.Size, uint64(off)/block.Size+uint64(n)/block.Size
	var pieces []piece
	for attempt := 0; attempt < 3; attempt++ {
		pieces = pieces[:0]
		var wait, steal *fill
		c.mu.Lock()
		if c.closed || len(c.blocks) == 0 {
			c.mu.Unlock()
			break
		}
		for b := b0; b < b1; {
			f := c.blocks[b]
			if f == nil {
				break
			}
			if f.pending {
				if f.started {
					wait = f
				} else {
					f.started, steal = true, f
				}
				break
			}
			e := b + 1
			for e < b1 && e < f.start+f.n && c.blocks[e] == f {
				e++
			}
			pieces = append(pieces, piece{f, b, e})
			b = e
		}
		if steal != nil { // still queued: read it now rather than wait
			c.mu.Unlock()
			c.finish(steal)
			continue
		}
		if wait != nil {
			c.mu.Unlock()
			<-wait.done
			continue
		}
		if len(pieces) == 0 || pieces[len(pieces)-1].b1 != b1 {
			c.mu.Unlock()
			break
		}
		for _, pc := range pieces {
			pc.f.refs++
			c.lru.MoveToFront(pc.f.elem)
		}
		c.mu.Unlock()
		c.cnt.Hits.Add(1)
		return pieces, b0, true
	}
	c.cnt.Misses.Add(1)
	return nil, 0, false
}

// unhold drops the references hold took.
func (c *dataCache) unhold(pieces []piece) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, pc := range pieces {
		pc.f.refs--
		c.releaseLocked(pc.f)
	}
}

// prefetch starts reading n disk blocks from start into the cache, unless
// they are cached already or there is no room. It does not wait.
func (c *dataCache) prefetch(start, n uint64) {
	for n > 0 {
		k := min(n, fillBlocks)
		c.prefetchFill(start, k)
		start, n = start+k, n-k
	}
}

func (c *dataCache) prefetchFill(start, n uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	for n > 0 && c.blocks[start] != nil { // cached already: skip ahead
		start, n = start+1, n-1
	}
	k := uint64(0)
	for k < n && c.blocks[start+k] == nil {
		k++
	}
	if n = k; n == 0 {
		return
	}
	need := int64(n * block.Size)
	for c.used+need > c.max {
		e := c.lru.Back()
		if e == nil {
			return // the room is taken by fills still reading
		}
		c.dropLocked(e.Value.(*fill))
	}
	bp, ok := c.bufs.Get().(*[]byte)
	if !ok {
		b := shareddisk.AlignedBuf(fillBlocks * block.Size)
		bp = &b
	}
	f := &fill{start: start, n: n, buf: (*bp)[:n*block.Size], done: make(chan struct{}), pending: true, live: int(n)}
	for b := start; b < start+n; b++ {
		c.blocks[b] = f
	}
	c.used += need
	c.wg.Add(1)
	go c.load(f)
}

// load waits for a background read slot, then reads the pending fill f,
// unless a reader took it over meanwhile.
func (c *dataCache) load(f *fill) {
	defer c.wg.Done()
	c.loads <- struct{}{}
	defer func() { <-c.loads }()
	c.mu.Lock()
	if f.started { // a reader took it over
		c.mu.Unlock()
		return
	}
	f.started = true
	c.mu.Unlock()
	c.finish(f)
}

// finish reads a started fill from the disk and makes it ready; only the
// one that started it calls it.
func (c *dataCache) finish(f *fill) {
	c.mu.Lock()
	skip := c.closed || f.live == 0 // nothing to read it for any more
	c.mu.Unlock()
	var err error
	if !skip {
		_, err = c.d.ReadAt(f.buf, int64(f.start*block.Size))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	f.pending = false
	close(f.done)
	if skip || err != nil || c.closed || f.live == 0 {
		c.dropLocked(f)
		return
	}
	c.cnt.PrefetchedBlocks.Add(f.n)
	f.elem = c.lru.PushFront(f)
}

// invalidate drops the cached blocks in the byte range [off, off+n), ready
// or still reading. WriteData calls it after writing them.
func (c *dataCache) invalidate(off int64, n int) {
	if c == nil {
		return
	}
	b0 := uint64(off) / block.Size
	b1 := (uint64(off) + uint64(n) + block.Size - 1) / block.Size
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.blocks) == 0 {
		return
	}
	var dropped uint64
	for b := b0; b < b1; b++ {
		f := c.blocks[b]
		if f == nil {
			continue
		}
		delete(c.blocks, b)
		dropped++
		if f.live--; f.live == 0 && !f.pending {
			c.dropLocked(f)
		}
	}
	c.cnt.InvalidatedBlocks.Add(dropped)
}

// dropLocked takes f out of the cache. The caller holds mu.
func (c *dataCache) dropLocked(f *fill) {
	if f.dropped {
		return
	}
	for b := f.start; b < f.start+f.n; b++ {
		if c.blocks[b] == f {
			delete(c.blocks, b)
		}
	}
	if f.elem != nil {
		c.lru.Remove(f.elem)
		f.elem = nil
	}
	f.live = 0
	f.dropped = true
	c.used -= int64(f.n * block.Size)
	c.releaseLocked(f)
}

// releaseLocked pools the buffer of a dropped fill nobody reads from.
func (c *dataCache) releaseLocked(f *fill) {
	if f.dropped && f.refs == 0 && !f.pending && f.buf != nil {
		b := f.buf[:fillBlocks*block.Size]
		f.buf = nil
		c.bufs.Put(&b)
	}
}

// close empties the cache for good and waits for the disk reads under way.
func (c *dataCache) close() {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.closed = true
	for e := c.lru.Front(); e != nil; e = c.lru.Front() {
		c.dropLocked(e.Value.(*fill))
	}
	c.mu.Unlock()
	c.wg.Wait()
}

// ReadDataRefs returns the n bytes of file data at byte offset off as
// slices of the data cache's buffers if the cache holds all of them (waiting
// for reads ahead under way), sparing the copy of ReadData. The slices must
// not be written, nor used after release, which must be called once.
func (m *Manager) ReadDataRefs(off int64, n int) (bufs [][]byte, release func(), ok bool) {
	if len(m.imagesIn(off, n)) > 0 {
		return nil, nil, false // the cache holds home bytes: ReadData overlays
	}
	return m.dc.refs(off, n)
}

// DataCacheEnabled says whether Prefetch does anything.
func (m *Manager) DataCacheEnabled() bool { return m.dc != nil }

// Prefetch starts reading n file data blocks from disk block start into the
// data cache, for a reader expected to ask for them soon; it does not wait.
// It does nothing when the cache is off, full of reads under way, or holds
// the blocks already.
func (m *Manager) Prefetch(start, n uint64) {
	if m.dc == nil || n == 0 || m.Err() != nil {
		return
	}
	if start < m.lay.DataStart || start+n > m.lay.TotalBlocks {
		return // not file data: never cached
	}
	m.dc.prefetch(start, n)
}

// CloseDataCache empties the data cache for good and waits for its disk
// reads; Store.Close and Store.Kill call it, so that no cache outlives the
// open store.
func (m *Manager) CloseDataCache() { m.dc.close() }

// DataCacheBytes returns the bytes the data cache holds or is reading.
func (m *Manager) DataCacheBytes() int64 {
	if m.dc == nil {
		return 0
	}
	m.dc.mu.Lock()
	defer m.dc.mu.Unlock()
	return m.dc.used
}

// dataCacheOption builds the Manager's cache from opt; nil when disabled.
func dataCacheOption(d shareddisk.Disk, opt Options) (*dataCache, error) {
	if opt.DataCacheBytes < 0 {
		return nil, fmt.Errorf("data cache of %d bytes: negative", opt.DataCacheBytes)
	}
	return newDataCache(d, opt.DataCacheBytes, opt.DataCacheCounters), nil
}
