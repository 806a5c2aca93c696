package txn

import (
	"fmt"

	"github.com/hanfs/hanfs/fsstore/block"
	"github.com/hanfs/hanfs/fsstore/journal"
	"github.com/hanfs/hanfs/shareddisk"
)

// Journaled file data. A small write can put its data blocks into the
// journal with the metadata it changes (Tx.JournalData): the commit is then
// one contiguous journal write and one flush, where writing the data at its
// home as well would add a second write at another place of the disk (the
// disk serves them one after the other). The checkpoint writes the blocks
// home later, many at a time.
//
// Until then the home holds older bytes, so:
//   - reads overlay the newest journaled image of each block (ReadData;
//     ReadDataRefs declines ranges with images), from the moment the
//     update that journaled it returns;
//   - no block with an image in the live journal is written in place: replay
//     or the checkpoint would put the older journaled bytes back over the
//     newer ones. Settle takes a checkpoint first (rare: a small write and
//     then a large one to the same blocks, within one lap of the journal);
//   - a journaled block is never covered by the data checksums of a
//     transaction that could be the last one (Settle's rule applies before
//     journaling too: SettleJournaled), so the checkpoint's home write can
//     never make replay drop an acknowledged transaction.
//
// A block with an image is not reused after it is freed until a checkpoint
// (the allocator skips every block of the checkpoint map), as for metadata.

// MaxJournaledBlocks bounds the blocks of one JournalData call: larger
// writes go to their home (written twice, journaled data costs bandwidth).
const MaxJournaledBlocks = 8

// dataImg is one data block image of a transaction.
type dataImg struct {
	blk uint64
	buf []byte
}

// JournalData puts the block-aligned data p, for disk blocks from blk, into
// the transaction: it becomes the blocks' contents when the transaction
// commits, without a write at their home. The caller owns the blocks (newly
// allocated by this transaction, or blocks of a file it has locked) and
// called SettleJournaled for those it overwrites. p is copied.
func (tx *Tx) JournalData(blk uint64, p []byte) error {
	if tx.readOnly {
		return ErrReadOnly
	}
	n := uint64(len(p)) / block.Size
	if uint64(len(p))%block.Size != 0 || n == 0 || n > MaxJournaledBlocks {
		return fmt.Errorf("journal %d bytes of data at block %d: not 1 to %d whole blocks", len(p), blk, MaxJournaledBlocks)
	}
	if blk < tx.m.lay.DataStart || blk+n > tx.m.lay.TotalBlocks {
		return fmt.Errorf("journal data at blocks %d+%d: outside the data region", blk, n)
	}
	for i := range n {
		buf := shareddisk.AlignedBuf(block.Size)
		copy(buf, p[i*block.Size:])
		tx.data = append(tx.data, dataImg{blk: blk + i, buf: buf})
	}
	return nil
}

// finishDataLocked hands the transaction's data images to its group and to
// the read overlay. The caller holds mu and cmu.
func (tx *Tx) finishDataLocked() {
	m := tx.m
	if len(tx.data) == 0 {
		return
	}
	if tx.g.data == nil {
		tx.g.data = make(map[uint64][]byte)
	}
	for _, d := range tx.data {
		tx.g.data[d.blk] = d.buf
		m.dimg[d.blk] = d.buf
	}
}

// forgetDataLocked drops blk from the running group's data and the overlay
// when the block is freed. The caller holds mu and cmu.
func (tx *Tx) forgetDataLocked(blk uint64) {
	delete(tx.g.data, blk)
	delete(tx.m.dimg, blk)
}

// dataImages returns g's journaled data as raw journal images.
func dataImages(g *group) []journal.Image {
	if len(g.data) == 0 {
		return nil
	}
	imgs := make([]journal.Image, 0, len(g.data))
	for blk, buf := range g.data {
		imgs = append(imgs, journal.Image{Home: blk, Data: buf, Raw: true})
	}
	return imgs
}

// imagesIn returns the journaled images of the blocks that the n bytes at
// byte offset off touch. A reader takes them before it reads the home, and
// lays them over what it read (overlay): a checkpoint may write them home and
// drop them meanwhile, but never before the home holds them, and the
// caller's file locks keep newer images of its range out.
func (m *Manager) imagesIn(off int64, n int) []dataImg {
	if n <= 0 {
		return nil
	}
	first := uint64(off) / block.Size
	return m.blockImages(first, (uint64(off)+uint64(n)-1)/block.Size-first+1)
}

// blockImages returns the journaled images of disk blocks [blk, blk+n), in
// no particular order, looking up whichever is fewer: the blocks or the
// images.
func (m *Manager) blockImages(blk, n uint64) []dataImg {
	m.cmu.Lock()
	defer m.cmu.Unlock()
	if len(m.dimg) == 0 {
		return nil
	}
	var imgs []dataImg
	if n > uint64(len(m.dimg)) {
		for b, img := range m.dimg {
			if b >= blk && b < blk+n {
				imgs = append(imgs, dataImg{blk: b, buf: img})
			}
		}
		return imgs
	}
	for b := blk; b < blk+n; b++ {
		if img, ok := m.dimg[b]; ok {
			imgs = append(imgs, dataImg{blk: b, buf: img})
		}
	}
	return imgs
}

// overlay copies the images imgs (from imagesIn) over p, the file data read
// at byte offset off.
func overlay(imgs []dataImg, p []byte, off int64) {
	for _, im := range imgs {
		// The part of block im.blk that p holds.
		bstart := int64(im.blk * block.Size)
		from := max(bstart, off)
		to := min(bstart+block.Size, off+int64(len(p)))
		copy(p[from-off:to-off], im.buf[from-bstart:to-bstart])
	}
}

// unjournal returns once no block of [blk, blk+n) has an image in the live
// journal: it asks the committer to commit and checkpoint. The caller holds
// the locks that keep new images of these blocks out.
func (m *Manager) unjournal(blk, n uint64) error {
	for len(m.blockImages(blk, n)) > 0 {
		reply := make(chan error, 1)
		select {
		case m.ckptReq <- reply:
		case <-m.stopped:
			return ErrClosed
		}
		if err := <-reply; err != nil {
			return fmt.Errorf("checkpoint before overwriting journaled data in place: %w", err)
		}
		m.cmu.Lock()
		m.stats.Unjournals++
		m.cmu.Unlock()
	}
	return nil
}

// checkpointedData updates the overlay and the data cache after a
// checkpoint wrote the data images imgs home: the overlay entries that are
// still these images go. The data cache drops the blocks first, so that no
// read ahead of the old home bytes outlives the overlay.
func (m *Manager) checkpointedData(imgs map[uint64][]byte) {
	if len(imgs) == 0 {
		return
	}
	for blk := range imgs {
		m.dc.invalidate(int64(blk*block.Size), block.Size)
	}
	m.cmu.Lock()
	for blk, img := range imgs {
		if cur, ok := m.dimg[blk]; ok && &cur[0] == &img[0] {
			delete(m.dimg, blk)
		}
	}
	m.cmu.Unlock()
}
