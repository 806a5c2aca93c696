package txn_test

import (
	"sync"
	"testing"
	"time"

	"github.com/hanfs/hanfs/fsstore/txn"
)

// TestLead: an update that is the only one in flight is committed by its own
// Wait (no handoff to the committer goroutine); while a commit is under way,
// updates that arrive meanwhile share the next commit (group commit).
func TestLead(t *testing.T) {
	m, d, lay := gatedManager(t)
	defer m.Close()
	touch := func() error {
		c, err := m.Update(func(tx *txn.Tx) error { return tx.Touch(lay.FSInfo) })
		if err != nil {
			return err
		}
		return c.Wait()
	}
	before := m.Stats()
	for range 20 {
		if err := touch(); err != nil {
			t.Fatal(err)
		}
	}
	st := m.Stats()
	if commits, led := st.Commits-before.Commits, st.Led-before.Led; commits != 20 || led != 20 {
		t.Fatalf("20 updates one at a time: %d commits, %d by the waiting caller; want 20 and 20", commits, led)
	}
	// Hold the flushes: the first update's commit stays under way while 15
	// more arrive; they must not each commit alone.
	release := make(chan struct{})
	d.mu.Lock()
	d.open = release
	d.mu.Unlock()
	before = m.Stats()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() { errs <- touch() })
	}
	// Once the first flush is held, the others have time to queue behind it.
	for m.Stats().Flushes == before.Flushes && len(errs) == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	d.mu.Lock()
	d.open = nil
	d.mu.Unlock()
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if commits := m.Stats().Commits - before.Commits; commits > 8 {
		t.Fatalf("16 concurrent updates took %d commits; they should share a few", commits)
	}
}
