package txn_test

import (
	"sync"
	"testing"
	"time"

	"github.com/hanfs/hanfs/fsstore/journal"
	"github.com/hanfs/hanfs/fsstore/txn"
	"github.com/hanfs/hanfs/shareddisk"
)

// flushGate holds every Flush while closed.
type flushGate struct {
	shareddisk.Disk
	mu   sync.Mutex
	open chan struct{}
}

func (d *flushGate) Flush() error {
	d.mu.Lock()
	ch := d.open
	d.mu.Unlock()
	if ch != nil {
		<-ch
	}
	return d.Disk.Flush()
}

// gatedManager opens a manager on a fresh store whose flushes the test can
// hold (flushGate).
func gatedManager(t *testing.T) (*txn.Manager, *flushGate, shareddisk.Layout) {
	t.Helper()
	mem, lay, _ := newStore(t, 1)
	d := &flushGate{Disk: mem}
	m, err := txn.Open(d, lay, txn.Options{Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	return m, d, lay
}

// TestGroupDataCap: once the running group's checksums cover 64 MiB, a new
// update waits for that group to commit instead of joining it, so replay
// never has to read back more than about that to check the last transaction.
func TestGroupDataCap(t *testing.T) {
	m, d, lay := gatedManager(t)
	defer m.Close()
	release := make(chan struct{})
	d.mu.Lock()
	d.open = release
	d.mu.Unlock()
	var once sync.Once
	open := func() {
		once.Do(func() {
			d.mu.Lock()
			d.open = nil
			d.mu.Unlock()
			close(release)
		})
	}
	defer open() // before m.Close (deferred earlier), even when the test fails
	touch := func(ds *journal.DataSum) (*txn.Commit, error) {
		return m.Update(func(tx *txn.Tx) error {
			if ds != nil {
				tx.DataWritten(*ds)
			}
			return tx.Touch(lay.FSInfo)
		})
	}
	// The committer takes a first group and waits in its flush; the next
	// update, covering 64 MiB of data, stays in the running group.
	c0, err := touch(nil)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	c1, err := touch(&journal.DataSum{Start: lay.DataStart, N: 16384})
	if err != nil {
		t.Fatal(err)
	}
	joined := make(chan error, 1) // when Update returns, before Wait
	waited := make(chan error, 1)
	go func() {
		c, err := touch(nil)
		joined <- err
		if err == nil {
			err = c.Wait()
		}
		waited <- err
	}()
	select {
	case err := <-joined:
		t.Fatalf("an update joined a group whose checksums already cover 64 MiB (err %v)", err)
	case <-time.After(300 * time.Millisecond):
	}
	open()
	for _, c := range []*txn.Commit{c0, c1} {
		if err := c.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-joined; err != nil {
		t.Fatal(err)
	}
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
}
