package txn

import (
	"fmt"
	"slices"
	"time"

	"github.com/hanfs/hanfs/fsstore/block"
	"github.com/hanfs/hanfs/fsstore/journal"
	"github.com/hanfs/hanfs/shareddisk"
)

// committer is the goroutine that commits groups when kicked, checkpoints,
// and closes the manager. A caller waiting for its commit may commit the
// running group itself instead (lead), when no commit is under way: whoever
// writes the journal holds cmt, so transactions are still appended one at a
// time, each after the previous one's flush.
func (m *Manager) committer() {
	defer close(m.stopped)
	for {
		select {
		case <-m.kick:
			m.cmt.Lock()
			m.commitOnce()
			m.checkpointIfHalf()
			m.cmt.Unlock()
		case reply := <-m.ckptReq:
			m.cmt.Lock()
			m.commitOnce()
			err := m.Err()
			if err == nil {
				if err = m.checkpoint(); err != nil {
					m.fail(err)
				}
			}
			m.cmt.Unlock()
			reply <- err
		case <-m.quit:
			m.cmt.Lock()
			m.commitOnce()
			if m.Err() == nil {
				if err := m.checkpoint(); err != nil {
					m.fail(err)
				}
			}
			m.mu.Lock()
			g := m.running
			m.running = nil
			m.mu.Unlock()
			m.cmt.Unlock()
			g.err = ErrClosed
			close(g.done)
			return
		}
	}
}

// lead commits group g on the calling goroutine if the caller's update is
// the only one not yet waited for (Manager.open), no commit is under way, and g is
// still the running group: one request at a time then costs no handoff to
// the committer goroutine and back. Otherwise the committer is asked to
// commit (it takes the group after the commit under way, gathering the
// updates that arrive meanwhile). A checkpoint, when due, is left to the
// committer, so that the caller's reply does not wait for it.
func (m *Manager) lead(g *group) {
	if m.open.Load() != 1 || !m.cmt.TryLock() {
		m.kickNow()
		return
	}
	m.mu.RLock()
	running := m.running == g
	m.mu.RUnlock()
	if running {
		m.commitOnce()
		m.cmu.Lock()
		m.stats.Led++
		m.cmu.Unlock()
	}
	due := m.checkpointDue()
	m.cmt.Unlock()
	if due {
		m.kickNow()
	}
}

// checkpointDue reports whether the log is more than half full: time to
// checkpoint.
func (m *Manager) checkpointDue() bool { return m.log.Used() > m.log.Capacity()/2 }

// checkpointIfHalf checkpoints when it is due. The caller holds cmt.
func (m *Manager) checkpointIfHalf() {
	if m.Err() == nil && m.checkpointDue() {
		if err := m.checkpoint(); err != nil {
			m.fail(err)
		}
	}
}

// commitOnce commits the running group, if it holds changes. The caller
// holds cmt.
func (m *Manager) commitOnce() {
	m.mu.Lock()
	g := m.running
	if g.empty() {
		m.mu.Unlock()
		return
	}
	// Make room first, while the checkpoint map still holds the newest
	// durable image of every block: taking the group replaces the images of
	// the blocks it changes by ones not yet in the log, which a checkpoint
	// would skip while freeing the log that holds the older ones (a crash
	// before this commit is durable would then leave neither at home).
	for m.Err() == nil && m.log.Used() > 0 && !m.log.Fits(len(g.dirty)+len(g.data), len(g.sums)) {
		m.mu.Unlock()
		if err := m.checkpoint(); err != nil {
			m.fail(err)
		}
		m.mu.Lock()
		g = m.running // the same group, perhaps grown: only commitOnce swaps it
	}
	m.running = newGroup()
	m.committing = g
	if err := m.Err(); err != nil {
		m.mu.Unlock()
		g.err = err
		close(g.done)
		return
	}
	txid := m.log.NextTxID()
	dimgs := dataImages(g)
	imgs := make([]journal.Image, 0, len(g.dirty)+len(dimgs))
	m.cmu.Lock()
	for blk, c := range g.dirty {
		img := shareddisk.AlignedBuf(block.Size)
		copy(img, c.data)
		block.Seal(img, blk, txid)
		c.dirty = false
		imgs = append(imgs, journal.Image{Home: blk, Data: img})
		m.ckpt[blk] = &ckptEntry{img: img}
	}
	for _, im := range dimgs {
		m.ckpt[im.Home] = &ckptEntry{img: im.Data, data: true}
	}
	m.cmu.Unlock()
	m.mu.Unlock()

	imgs = append(imgs, dimgs...)
	slices.SortFunc(imgs, func(a, b journal.Image) int { return cmpU64(a.Home, b.Home) })
	err := m.writeGroup(g, imgs, txid)
	if err != nil {
		m.fail(err)
		g.err = err
		close(g.done)
		return
	}
	m.cmu.Lock()
	for _, im := range imgs {
		if e, ok := m.ckpt[im.Home]; ok && &e.img[0] == &im.Data[0] {
			e.txid = txid
		}
	}
	m.stats.Commits++
	m.stats.CommittedBlocks += uint64(len(imgs))
	m.stats.DataSums += uint64(len(g.sums))
	m.stats.JournaledBlocks += uint64(len(dimgs))
	// The frees are durable: the images of the freed blocks need not go home.
	for _, r := range g.freed {
		for b := r.start; b < r.start+r.n; b++ {
			if e, ok := m.ckpt[b]; ok {
				e.freed = true
			}
		}
	}
	m.cmu.Unlock()
	m.mu.Lock()
	for _, r := range g.freed {
		m.alloc.set(r.start, r.n, false)
	}
	if len(imgs) > 0 {
		// g is durable and the newest transaction in the log.
		m.exposed = nil
		if len(g.sums) > 0 {
			m.exposed = g
		}
	}
	m.mu.Unlock()
	close(g.done)
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// writeGroup appends one transaction and flushes once: the data its checksums
// cover was written before the flush (data writes announced with AwaitData may
// overlap the journal write; the flush waits for them), so the flush makes
// both durable. The next transaction is appended only after this returns
// (see package journal).
func (m *Manager) writeGroup(g *group, imgs []journal.Image, txid uint64) error {
	if len(imgs) == 0 {
		g.pending.Wait()
		return m.Err()
	}
	sums := g.sums
	if !m.log.Fits(len(imgs), len(sums)) {
		// commitOnce checkpointed already: even an empty log is too small.
		return fmt.Errorf("commit %d blocks: %w", len(imgs), ErrTooLarge)
	}
	if err := m.gate(); err != nil {
		return err
	}
	got, err := m.log.Append(imgs, sums)
	if err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if got != txid {
		return fmt.Errorf("commit: journal assigned txid %d, expected %d", got, txid)
	}
	g.pending.Wait()
	if err := m.Err(); err != nil {
		return fmt.Errorf("commit transaction %d: a data write failed: %w", txid, err)
	}
	if err := m.gate(); err != nil {
		return err
	}
	if err := m.flush(); err != nil {
		return fmt.Errorf("commit transaction %d: %w", txid, err)
	}
	return nil
}

func (m *Manager) flush() error {
	m.cmu.Lock()
	m.stats.Flushes++
	m.cmu.Unlock()
	return m.d.Flush()
}

// ckptWriters is the number of home writes a checkpoint has in flight.
const ckptWriters = 8

// checkpoint writes every durable journaled image to its home, flushes, and
// frees the log. The caller holds cmt.
func (m *Manager) checkpoint() error {
	type w struct {
		blk uint64
		img []byte
	}
	var ws []w
	var data map[uint64][]byte // the data images written home
	start := time.Now()
	m.cmu.Lock()
	for blk, e := range m.ckpt {
		if e.txid != 0 && !e.freed {
			ws = append(ws, w{blk, e.img})
			if e.data {
				if data == nil {
					data = make(map[uint64][]byte)
				}
				data[blk] = e.img
			}
		}
	}
	m.cmu.Unlock()
	slices.SortFunc(ws, func(a, b w) int { return cmpU64(a.blk, b.blk) })
	if err := m.gate(); err != nil {
		return err
	}
	// Runs of contiguous blocks, written by a few goroutines at once: the
	// disk serves scattered writes faster with several in flight.
	const maxRun = 256
	type span struct{ i, j int }
	var spans []span
	for i := 0; i < len(ws); {
		j := i + 1
		for j < len(ws) && j-i < maxRun && ws[j].blk == ws[j-1].blk+1 {
			j++
		}
		spans = append(spans, span{i, j})
		i = j
	}
	work := make(chan span)
	errs := make(chan error, ckptWriters)
	for range min(ckptWriters, len(spans)) {
		go func() {
			var buf []byte // grown to the longest run yet: most are one block
			var err error
			for sp := range work {
				if err != nil {
					continue
				}
				out := ws[sp.i].img[:block.Size]
				if sp.j-sp.i > 1 || !shareddisk.IsAligned(out) {
					n := (sp.j - sp.i) * block.Size
					if len(buf) < n {
						buf = shareddisk.AlignedBuf(n)
					}
					for k := sp.i; k < sp.j; k++ {
						copy(buf[(k-sp.i)*block.Size:], ws[k].img)
					}
					out = buf[:n]
				}
				if _, werr := m.d.WriteAt(out, int64(ws[sp.i].blk)*block.Size); werr != nil {
					err = fmt.Errorf("checkpoint: write blocks %d..%d: %w", ws[sp.i].blk, ws[sp.j-1].blk, werr)
				}
			}
			errs <- err
		}()
	}
	for _, sp := range spans {
		work <- sp
	}
	close(work)
	var werr error
	for range min(ckptWriters, len(spans)) {
		if err := <-errs; err != nil && werr == nil {
			werr = err
		}
	}
	if werr != nil {
		return werr
	}
	if err := m.flush(); err != nil {
		return fmt.Errorf("checkpoint: flush: %w", err)
	}
	if err := m.gate(); err != nil {
		return err
	}
	if err := m.log.Checkpointed(m.log.NextTxID()); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	m.cmu.Lock()
	for blk, e := range m.ckpt {
		if e.txid != 0 {
			delete(m.ckpt, blk)
		}
	}
	m.stats.Checkpoints++
	m.stats.CheckpointBlocks += uint64(len(ws))
	m.stats.CheckpointNanos += uint64(time.Since(start))
	m.cmu.Unlock()
	m.checkpointedData(data)
	// The log is empty: no transaction is left for replay to drop.
	m.mu.Lock()
	m.exposed = nil
	m.mu.Unlock()
	return nil
}

// Close commits what is pending, checkpoints, and stops the committer. The
// disk stays open.
func (m *Manager) Close() error {
	m.closeOnce.Do(func() { close(m.quit) })
	<-m.stopped
	return m.Err()
}

// Kill stops the committer without committing or checkpointing, as a crash
// would (for tests and for a node that lost its lease).
func (m *Manager) Kill(reason error) {
	m.fail(fmt.Errorf("store killed: %w", reason))
	m.Close()
}
