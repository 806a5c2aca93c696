package bench

import (
	"os"
	"sync"
	"testing"
	"time"

	"github.com/hanfs/hanfs/fsstore"
	"github.com/hanfs/hanfs/shareddisk"
)

// diagEnabled says whether the opt-in diagnostics run:
//
//	HANFS_BENCH_DIAG=1 go test -run TestDiag -v -count=1 ./bench/
func diagEnabled() bool { return os.Getenv("HANFS_BENCH_DIAG") == "1" }

// timedDisk measures where a store's disk time goes.
type timedDisk struct {
	shareddisk.Disk
	mu                         sync.Mutex
	wData, wMeta, flush        time.Duration
	nData, nMeta, nFlush, rest int
}

func (t *timedDisk) WriteAt(p []byte, off int64) (int, error) {
	t0 := time.Now()
	n, err := t.Disk.WriteAt(p, off)
	d := time.Since(t0)
	t.mu.Lock()
	if len(p) >= chunk { // file data; journal and checkpoint writes are smaller here
		t.wData += d
		t.nData++
	} else {
		t.wMeta += d
		t.nMeta++
	}
	t.mu.Unlock()
	return n, err
}

func (t *timedDisk) Flush() error {
	t0 := time.Now()
	err := t.Disk.Flush()
	d := time.Since(t0)
	t.mu.Lock()
	t.flush += d
	t.nFlush++
	t.mu.Unlock()
	return err
}

func (t *timedDisk) reset() {
	t.mu.Lock()
	t.wData, t.wMeta, t.flush, t.nData, t.nMeta, t.nFlush = 0, 0, 0, 0, 0, 0
	t.mu.Unlock()
}

// TestDiagSeqWrite splits the time of the SeqWrite/store workload (1 GiB in
// durable 1 MiB writes) into data writes, journal writes, flushes and the
// rest (CPU, allocation, hand-off to the committer).
func TestDiagSeqWrite(t *testing.T) {
	if !diagEnabled() {
		t.Skip("set HANFS_BENCH_DIAG=1")
	}
	if _, err := fsstore.Format(disk, fsstore.FormatOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	td := &timedDisk{Disk: disk}
	s, err := fsstore.Open(td, fsstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a, err := s.Create(nil, fsstore.RootIno, "x", 0o644, fsstore.CreateGuarded, 0)
	if err != nil {
		t.Fatal(err)
	}
	buf := shareddisk.AlignedBuf(chunk)
	td.reset()
	st0 := s.Stats()
	t0 := time.Now()
	for i := range chunks {
		if _, err := s.Write(nil, a.Ino, buf, int64(i)*chunk); err != nil {
			t.Fatal(err)
		}
	}
	el := time.Since(t0)
	st := s.Stats()
	t.Logf("store: 1 GiB in %v = %.0f MB/s", el.Round(time.Millisecond), float64(fileSize)/el.Seconds()/1e6)
	t.Logf("  data writes   %5d  %v", td.nData, td.wData.Round(time.Millisecond))
	t.Logf("  journal writes%5d  %v (%d blocks in %d commits)", td.nMeta, td.wMeta.Round(time.Millisecond),
		st.CommittedBlocks-st0.CommittedBlocks, st.Commits-st0.Commits)
	t.Logf("  flushes       %5d  %v", td.nFlush, td.flush.Round(time.Millisecond))
	t.Logf("  rest (CPU, allocation, scheduling) %v", (el - td.wData - td.wMeta - td.flush).Round(time.Millisecond))
}

// TestDiagModel replays the store's disk protocol for one durable 1 MiB
// write directly on the disk, with and without a freshly allocated buffer per
// write (fsstore.Write allocates and copies into one each call), to show what
// each part costs.
func TestDiagModel(t *testing.T) {
	if !diagEnabled() {
		t.Skip("set HANFS_BENCH_DIAG=1")
	}
	reuse := shareddisk.AlignedBuf(chunk)
	journal := shareddisk.AlignedBuf(3 * shareddisk.BlockSize) // descriptor + 2 metadata blocks, as Stats shows
	const journalBase = 64 << 20
	run := func(name string, fresh bool, flushes int) {
		t0 := time.Now()
		for i := range chunks {
			buf := reuse
			if fresh {
				buf = shareddisk.AlignedBuf(chunk)
				copy(buf, reuse)
			}
			if _, err := disk.WriteAt(buf, rawBase+int64(i)*chunk); err != nil {
				t.Fatal(err)
			}
			if flushes >= 1 {
				if err := disk.Flush(); err != nil {
					t.Fatal(err)
				}
			}
			if flushes == 2 {
				if _, err := disk.WriteAt(journal, journalBase+int64(i%1000)*int64(len(journal))); err != nil {
					t.Fatal(err)
				}
				if err := disk.Flush(); err != nil {
					t.Fatal(err)
				}
			}
		}
		el := time.Since(t0)
		t.Logf("%-62s %5.0f MB/s", name, float64(fileSize)/el.Seconds()/1e6)
	}
	for range 2 {
		run("raw: write 1 MiB, flush (the baseline)", false, 1)
		run("raw: fresh buffer + copy, write 1 MiB, flush", true, 1)
		run("model: write 1 MiB, flush, journal 12 KiB, flush (reused buf)", false, 2)
		run("model: same, fresh buffer + copy per write (as fsstore.Write)", true, 2)
	}
}
