package txn_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/hanfs/hanfs/fsstore"
	"github.com/hanfs/hanfs/fsstore/block"
	"github.com/hanfs/hanfs/fsstore/btree"
	"github.com/hanfs/hanfs/fsstore/txn"
	"github.com/hanfs/hanfs/shareddisk"
)

// gateDisk holds back reads of one chosen block until released, and can fail
// reads of another.
type gateDisk struct {
	shareddisk.Disk
	mu      sync.Mutex
	hold    int64         // byte offset of the held block, -1: none
	started chan struct{} // closed when a held read starts
	release chan struct{} // closed to let held reads finish
	fail    int64         // byte offset whose reads fail, -1: none
}

func newGateDisk(d shareddisk.Disk) *gateDisk { return &gateDisk{Disk: d, hold: -1, fail: -1} }

// holdBlock makes the next reads of blk wait for the returned release func.
func (d *gateDisk) holdBlock(blk uint64) (started <-chan struct{}, release func()) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.hold = int64(blk) * block.Size
	d.started, d.release = make(chan struct{}), make(chan struct{})
	rel := d.release
	return d.started, sync.OnceFunc(func() { close(rel) })
}

func (d *gateDisk) ReadAt(p []byte, off int64) (int, error) {
	d.mu.Lock()
	held := d.hold >= off && d.hold < off+int64(len(p))
	failed := d.fail >= off && d.fail < off+int64(len(p))
	started, release := d.started, d.release
	if held {
		select {
		case <-started:
		default:
			close(started)
		}
	}
	d.mu.Unlock()
	if failed {
		return 0, fmt.Errorf("injected read error at %d", off)
	}
	if held {
		<-release
	}
	return d.Disk.ReadAt(p, off)
}

// A Tx takes the B+tree's read-ahead hints.
var _ btree.Prefetcher = (*txn.Tx)(nil)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newStore formats a 64 MiB memory disk and returns it with its layout and n
// metadata blocks written with known contents (payload(i)) and checkpointed
// home, so that they are on the disk and in no cache.
func newStore(t *testing.T, n int) (*shareddisk.Mem, shareddisk.Layout, []uint64) {
	t.Helper()
	mem := shareddisk.NewMem(64 << 20)
	sb, err := fsstore.Format(mem, fsstore.FormatOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := txn.Open(mem, sb.Layout, txn.Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	var blks []uint64
	c, err := m.Update(func(tx *txn.Tx) error {
		blks = blks[:0]
		for i := 0; i < n; i++ {
			b, buf, err := tx.Alloc()
			if err != nil {
				return err
			}
			copy(buf[block.HeaderSize:], payload(i))
			blks = append(blks, b)
		}
		return nil
	})
	if err == nil {
		err = c.Wait()
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	return mem, sb.Layout, blks
}

func payload(i int) []byte { return []byte(fmt.Sprintf("block %d payload", i)) }

func readPayload(tx *txn.Tx, blk uint64, i int) error {
	b, err := tx.Read(blk)
	if err != nil {
		return err
	}
	if want := payload(i); !bytes.Equal(b[block.HeaderSize:block.HeaderSize+len(want)], want) {
		return fmt.Errorf("block %d: payload %q, want %q", blk, b[block.HeaderSize:block.HeaderSize+len(want)], want)
	}
	return nil
}

// within fails the test unless f returns within d.
func within(t *testing.T, d time.Duration, what string, f func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(d):
		t.Fatalf("%s: still blocked after %v while another call waits for a metadata read", what, d)
	}
}

// TestMissDoesNotBlockOthers stalls the disk read of one metadata block that
// an Update (then a View) misses, and checks that updates and views of cached
// blocks complete meanwhile, and that the stalled call completes correctly
// once the read is released.
func TestMissDoesNotBlockOthers(t *testing.T) {
	for _, first := range []string{"update", "view"} {
		t.Run(first, func(t *testing.T) {
			mem, lay, blks := newStore(t, 3)
			gd := newGateDisk(mem)
			m, err := txn.Open(gd, lay, txn.Options{Logger: quiet()})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			hot, cold, other := blks[0], blks[1], blks[2]
			// Warm the cache with hot and other.
			if err := m.View(func(tx *txn.Tx) error {
				if err := readPayload(tx, hot, 0); err != nil {
					return err
				}
				return readPayload(tx, other, 2)
			}); err != nil {
				t.Fatal(err)
			}
			retries0 := m.Stats().Retries
			started, release := gd.holdBlock(cold)
			defer release()
			attempts := 0
			stalled := make(chan error, 1)
			go func() {
				if first == "view" {
					stalled <- m.View(func(tx *txn.Tx) error {
						attempts++
						if err := readPayload(tx, other, 2); err != nil {
							return err
						}
						return readPayload(tx, cold, 1)
					})
					return
				}
				c, err := m.Update(func(tx *txn.Tx) error {
					attempts++
					b, err := tx.Modify(other)
					if err != nil {
						return err
					}
					b[block.Size-1]++ // undone if the attempt misses
					if err := readPayload(tx, cold, 1); err != nil {
						return err
					}
					b, err = tx.Modify(cold)
					if err != nil {
						return err
					}
					b[block.Size-1] = 7
					return nil
				})
				if err == nil {
					err = c.Wait()
				}
				stalled <- err
			}()
			select {
			case <-started:
			case <-time.After(10 * time.Second):
				t.Fatal("the read of the missed block never started")
			}
			within(t, 5*time.Second, "update of a cached block", func() error {
				c, err := m.Update(func(tx *txn.Tx) error {
					b, err := tx.Modify(hot)
					if err != nil {
						return err
					}
					b[block.Size-2] = 9
					return nil
				})
				if err != nil {
					return err
				}
				return c.Wait()
			})
			within(t, 5*time.Second, "view of a cached block", func() error {
				return m.View(func(tx *txn.Tx) error { return readPayload(tx, hot, 0) })
			})
			select {
			case err := <-stalled:
				t.Fatalf("the call that missed returned before its read was released: %v", err)
			default:
			}
			release()
			select {
			case err := <-stalled:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the call that missed did not complete after the release")
			}
			if attempts != 2 {
				t.Errorf("%d attempts, want 2 (one miss)", attempts)
			}
			if err := m.View(func(tx *txn.Tx) error {
				for i, b := range blks {
					if err := readPayload(tx, b, i); err != nil {
						return err
					}
				}
				h, _ := tx.Read(hot)
				o, _ := tx.Read(other)
				c, _ := tx.Read(cold)
				wantO, wantC := byte(0), byte(0)
				if first == "update" {
					wantO, wantC = 1, 7 // applied once, not once per attempt
				}
				if h[block.Size-2] != 9 || o[block.Size-1] != wantO || c[block.Size-1] != wantC {
					return fmt.Errorf("hot %d other %d cold %d, want 9 %d %d", h[block.Size-2], o[block.Size-1], c[block.Size-1], wantO, wantC)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if st := m.Stats(); st.Retries-retries0 != 1 {
				t.Errorf("stats: %d retries, want 1", st.Retries-retries0)
			}
		})
	}
}

// TestRetryUndoesAllocation misses the cache after allocating and freeing
// blocks, and checks that only the successful attempt's changes remain, in
// memory and on the disk.
func TestRetryUndoesAllocation(t *testing.T) {
	mem, lay, blks := newStore(t, 2)
	m, err := txn.Open(mem, lay, txn.Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	var free0 uint64
	var res txn.Run
	if err := m.View(func(tx *txn.Tx) error { free0 = tx.FreeBlocks(); return nil }); err != nil {
		t.Fatal(err)
	}
	if res, err = m.Reserve(4, 0); err != nil {
		t.Fatal(err)
	}
	attempts := 0
	var got []uint64
	c, err := m.Update(func(tx *txn.Tx) error {
		attempts++
		got = got[:0]
		b, _, err := tx.Alloc()
		if err != nil {
			return err
		}
		r, err := tx.AllocRun(8, 0)
		if err != nil {
			return err
		}
		if err := tx.Claim(res); err != nil {
			return err
		}
		if err := tx.Free(blks[0]); err != nil {
			return err
		}
		got = append(got, b, r.Start, r.N)
		return readPayload(tx, blks[1], 1) // a miss on the first attempt
	})
	if err == nil {
		err = c.Wait()
	}
	if err != nil {
		t.Fatal(err)
	}
	if attempts < 2 {
		t.Fatalf("%d attempts, want at least 2", attempts)
	}
	var free1 uint64
	if err := m.View(func(tx *txn.Tx) error { free1 = tx.FreeBlocks(); return nil }); err != nil {
		t.Fatal(err)
	}
	// One block and a run allocated, a reserved run claimed, one freed.
	if want := free0 - 1 - got[2] - res.N + 1; free1 != want {
		t.Fatalf("free blocks %d after the retried update, want %d (allocation %v)", free1, want, got)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	// The bitmap on the disk agrees with the allocator.
	m, err = txn.Open(mem, lay, txn.Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.View(func(tx *txn.Tx) error {
		if f := tx.FreeBlocks(); f != free1 {
			return fmt.Errorf("free blocks %d after reopening, want %d", f, free1)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestReadErrorReachesFunction checks that a metadata read that fails is
// reported to the function, as before the retry, not retried forever.
func TestReadErrorReachesFunction(t *testing.T) {
	mem, lay, blks := newStore(t, 1)
	gd := newGateDisk(mem)
	gd.fail = int64(blks[0]) * block.Size
	m, err := txn.Open(gd, lay, txn.Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	errWrapped := errors.New("seen by fn")
	err = m.View(func(tx *txn.Tx) error {
		if _, err := tx.Read(blks[0]); err != nil {
			return fmt.Errorf("%w: %w", errWrapped, err)
		}
		return nil
	})
	if !errors.Is(err, errWrapped) {
		t.Fatalf("view: %v, want the function's error", err)
	}
	_, err = m.Update(func(tx *txn.Tx) error {
		_, err := tx.Modify(blks[0])
		return err
	})
	if err == nil {
		t.Fatal("update of an unreadable block succeeded")
	}
}
