package txn_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hanfs/hanfs/fsstore"
	"github.com/hanfs/hanfs/fsstore/block"
	"github.com/hanfs/hanfs/fsstore/txn"
	"github.com/hanfs/hanfs/shareddisk"
	"github.com/hanfs/hanfs/shareddisk/faultdisk"
)

// TestCheckpointForRoomKeepsDurableImages: a group that does not fit in the
// rest of the log makes the commit checkpoint first. That checkpoint must
// write home the newest durable image of every block, including blocks the
// group changes again or frees: if the group's commit then never becomes
// durable (power cut at its flush), the home must hold the earlier committed
// contents, since the checkpoint emptied the log that held them.
func TestCheckpointForRoomKeepsDurableImages(t *testing.T) {
	mem := shareddisk.NewMem(64 << 20)
	sb, err := fsstore.Format(mem, fsstore.FormatOptions{JournalBlocks: 256})
	if err != nil {
		t.Fatal(err)
	}
	lay := sb.Layout
	fd := faultdisk.New(mem)
	m, err := txn.Open(fd, lay, txn.Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	const at = block.Size - 8 // a byte FSInfo does not use
	var kept uint64           // a block written, then freed by the lost commit
	update := func(mark byte, allocs int) error {
		c, err := m.Update(func(tx *txn.Tx) error {
			if mark != 0 {
				b, err := tx.Modify(lay.FSInfo)
				if err != nil {
					return err
				}
				b[at] = mark
			}
			switch mark {
			case 1:
				blk, buf, err := tx.Alloc()
				if err != nil {
					return err
				}
				block.Init(buf, block.TypeBTree)
				buf[at] = 0x77
				kept = blk
			case 2:
				if err := tx.Free(kept); err != nil {
					return err
				}
			}
			for range allocs {
				_, buf, err := tx.Alloc()
				if err != nil {
					return err
				}
				block.Init(buf, block.TypeBTree)
			}
			return nil
		})
		if err != nil {
			return err
		}
		return c.Wait()
	}
	// Place the log's head so that the last group must wrap to the log's
	// start with much padding, and so does not fit unless the log is
	// checkpointed first, while the log holds FSInfo's durable image.
	if err := update(0, 100); err != nil { // about 102 blocks
		t.Fatal(err)
	}
	var data uint64 // a journaled data block: Settle on it checkpoints now
	c, err := m.Update(func(tx *txn.Tx) error {
		r, err := tx.AllocRun(1, 0)
		if err != nil {
			return err
		}
		data = r.Start
		return tx.JournalData(r.Start, shareddisk.AlignedBuf(block.Size))
	})
	if err == nil {
		err = c.Wait()
	}
	if err == nil {
		err = m.Settle(data, 1)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := update(1, 37); err != nil { // about 40 blocks, head near 145
		t.Fatal(err)
	}
	// The last group (about 123 blocks) would end past the log's end: it
	// goes to the start, leaving about 110 blocks of padding, too many.
	// Cut the power at its commit's own flush (the third: the checkpoint
	// flushes twice), dropping the unflushed journal write.
	before := m.Stats().Checkpoints
	flushes := 0
	fd.SetStall(func(op faultdisk.Op, _ int64, _ int) time.Duration {
		if op == faultdisk.Flush {
			if flushes++; flushes == 3 {
				fd.PowerCut(func(int, int64, int) faultdisk.Keep { return faultdisk.Drop })
			}
		}
		return 0
	})
	if err := update(2, 120); !errors.Is(err, faultdisk.ErrPowerCut) {
		t.Fatalf("commit at the cut: %v, want a power cut", err)
	}
	if got := m.Stats().Checkpoints - before; got != 1 {
		t.Fatalf("%d checkpoints during the last commit, want 1: the test does not reach its case", got)
	}
	if s := m.Stats(); s.CheckpointBlocks == 0 || s.CheckpointNanos == 0 {
		t.Errorf("after a checkpoint: %d checkpoint blocks, %d ns counted, want both above 0", s.CheckpointBlocks, s.CheckpointNanos)
	}
	m.Kill(errors.New("test: power cut"))
	m2, err := txn.Open(mem, lay, txn.Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if err := m2.View(func(tx *txn.Tx) error {
		b, err := tx.Read(lay.FSInfo)
		if err != nil {
			return err
		}
		if b[at] != 1 {
			t.Errorf("FSInfo mark %d after the cut, want 1 (the last durable commit): the checkpoint skipped its durable image", b[at])
		}
		k, err := tx.Read(kept)
		if err != nil {
			return fmt.Errorf("block %d, freed only by the lost commit: %w", kept, err)
		}
		if k[at] != 0x77 {
			t.Errorf("block %d, freed only by the lost commit, reads %#x, want 0x77: the checkpoint skipped it as freed", kept, k[at])
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
