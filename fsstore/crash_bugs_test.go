package fsstore

// Minimal, deterministic reproductions of crash bugs that the random crash
// test (crash_test.go) found, or that it cannot reach (it gives every worker
// its own subtree, so it never has two operations racing on one name). Each
// cuts the power at a chosen flush and keeps a chosen subset of the pending
// writes (a disk may persist writes in any order).

import (
	"bytes"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hanfs/hanfs/shareddisk/faultdisk"
)

// crashBugStore opens a store on a fresh copy of the crash template, behind
// a faultdisk. It returns the store, the faultdisk, the copy (the "reboot"
// disk) and worker 0's top directory.
func crashBugStore(t *testing.T) (*Store, *faultdisk.Disk, *cowDisk, Ino) {
	t.Helper()
	return crashBugStoreWith(t, Options{})
}

// crashBugStoreWith is crashBugStore with the store options opt.
func crashBugStoreWith(t *testing.T, opt Options) (*Store, *faultdisk.Disk, *cowDisk, Ino) {
	t.Helper()
	tm, err := getCrashTemplate()
	if err != nil {
		t.Fatal(err)
	}
	disk := newCowDisk(tm.img, "crash-bug-disk")
	fd := faultdisk.New(disk)
	opt.Logger = quietLogger()
	s, err := Open(fd, opt)
	if err != nil {
		t.Fatal(err)
	}
	return s, fd, disk, tm.tops[0]
}

// cutAtNextFlush arms fd so that its next flush cuts the power first, keeping
// exactly the pending writes keep accepts (whole) and dropping the others. It
// returns the number of writes kept and dropped, valid after the cut.
func cutAtNextFlush(fd *faultdisk.Disk, keep func(off int64) bool) (kept, dropped *atomic.Int32) {
	armed := new(atomic.Bool)
	armed.Store(true)
	return cutAtFlushWhenArmed(fd, armed, keep)
}

// cutAtFlushWhenArmed is cutAtNextFlush for the first flush that starts
// while armed is set (the caller sets it, e.g. from a write hook).
func cutAtFlushWhenArmed(fd *faultdisk.Disk, armed *atomic.Bool, keep func(off int64) bool) (kept, dropped *atomic.Int32) {
	kept, dropped = new(atomic.Int32), new(atomic.Int32)
	fd.SetStall(func(op faultdisk.Op, _ int64, _ int) time.Duration {
		if op == faultdisk.Flush && armed.CompareAndSwap(true, false) {
			fd.PowerCut(func(_ int, off int64, _ int) faultdisk.Keep {
				if keep(off) {
					kept.Add(1)
					return faultdisk.KeepAll
				}
				dropped.Add(1)
				return faultdisk.Drop
			})
		}
		return 0
	})
	return kept, dropped
}

func inJournal(s *Store, off int64) bool {
	lay := s.Superblock().Layout
	return off >= int64(lay.JournalStart)*bs && off < int64(lay.JournalStart+lay.JournalBlocks)*bs
}

// reopenAfterCut kills s, checks the rebooted disk with Fsck and opens it.
func reopenAfterCut(t *testing.T, s *Store, disk *cowDisk) *Store {
	t.Helper()
	s.Kill(errCrashCut)
	rep, err := Fsck(disk)
	if err != nil || !rep.OK() {
		t.Fatalf("fsck after the cut: %v\n%v", err, rep)
	}
	s2, err := Open(disk, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	t.Cleanup(func() { s2.Close() })
	return s2
}

// expectZerosPastEOF extends ino from its size to newSize and checks that the
// new bytes read as zeros.
func expectZerosPastEOF(t *testing.T, s *Store, ino Ino, wantSize, newSize uint64) {
	t.Helper()
	a, err := s.Getattr(ino)
	if err != nil {
		t.Fatal(err)
	}
	if a.Size != wantSize {
		t.Fatalf("size after the cut %d, want %d", a.Size, wantSize)
	}
	if _, err := s.Setattr(nil, ino, SetAttr{Size: &newSize}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, newSize-wantSize)
	if n, _, err := s.Read(nil, ino, buf, int64(wantSize)); err != nil || n != len(buf) {
		t.Fatalf("read: %d %v", n, err)
	}
	if i := bytes.IndexFunc(buf, func(r rune) bool { return r != 0 }); i >= 0 {
		t.Errorf("after truncating the file from %d up to %d bytes, byte %d reads %#x, not zero: "+
			"stale bytes past the old end of file survived the crash (POSIX: the extended part reads as zeros)",
			wantSize, newSize, int(wantSize)+i, buf[i])
	}
}

// Regression (fixed in 80be8d4): an unacknowledged write that overwrites the
// last block in place and extends the file: its data reaches the disk, its
// transaction does not (a disk may persist writes in any order). The size
// stays old, but the block holds the new bytes past the end of file;
// extending the file later must not show them.
func TestCrashBugStaleBytesPastEOFAfterInFlightWrite(t *testing.T) {
	s, fd, disk, top := crashBugStore(t)
	f, err := s.Create(nil, top, "f", 0o644, CreateGuarded, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(nil, f.Ino, bytes.Repeat([]byte{0xaa}, 100), 0); err != nil {
		t.Fatal(err)
	}
	kept, dropped := cutAtNextFlush(fd, func(off int64) bool { return !inJournal(s, off) })
	if _, err := s.Write(nil, f.Ino, bytes.Repeat([]byte{0xbb}, 50), 100); !errors.Is(err, faultdisk.ErrPowerCut) {
		t.Fatalf("write during the cut: %v", err)
	}
	t.Logf("cut kept %d write(s) outside the journal, dropped %d in it", kept.Load(), dropped.Load())
	s2 := reopenAfterCut(t, s, disk)
	expectZerosPastEOF(t, s2, f.Ino, 100, 4096)
}

// Regression (fixed in 80be8d4): an unacknowledged truncate to a size inside
// a block whose transaction reaches the disk while an in-place zeroing of the
// rest of the block does not; extending the file later must show zeros.
func TestCrashBugStaleBytesPastEOFAfterInFlightTruncate(t *testing.T) {
	s, fd, disk, top := crashBugStore(t)
	f, err := s.Create(nil, top, "f", 0o644, CreateGuarded, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(nil, f.Ino, bytes.Repeat([]byte{0xaa}, 2*bs), 0); err != nil {
		t.Fatal(err)
	}
	kept, dropped := cutAtNextFlush(fd, func(off int64) bool { return inJournal(s, off) })
	sz := uint64(100)
	if _, err := s.Setattr(nil, f.Ino, SetAttr{Size: &sz}); !errors.Is(err, faultdisk.ErrPowerCut) {
		t.Fatalf("truncate during the cut: %v", err)
	}
	t.Logf("cut kept %d journal write(s), dropped %d other(s)", kept.Load(), dropped.Load())
	s2 := reopenAfterCut(t, s, disk)
	expectZerosPastEOF(t, s2, f.Ino, 100, bs)
}

// Regression (fixed in 80be8d4), invariant 3 (durable before acknowledged)
// for calls that find their work already done in memory: while operation A
// is committing (its flush is stalled), operation B sees A's effect in
// memory, has nothing to change, and must not return success before A's
// transaction is durable: a power cut then would lose what B acknowledged.
func TestCrashBugNoopAcknowledgedBeforeDurable(t *testing.T) {
	type scenario struct {
		name   string
		setup  func(s *Store, top Ino) (Ino, error)
		a, b   func(s *Store, top, ino Ino) error
		verify func(s *Store, top, ino Ino) error // after reboot, given b succeeded
	}
	lookup := func(s *Store, dir Ino, name string) error {
		_, err := s.Lookup(nil, dir, name)
		return err
	}
	for _, sc := range []scenario{{
		name:  "CreateExclusiveRetransmission",
		setup: func(*Store, Ino) (Ino, error) { return 0, nil },
		a: func(s *Store, top, _ Ino) error {
			_, err := s.Create(nil, top, "x", 0o644, CreateExclusive, 42)
			return err
		},
		b: func(s *Store, top, _ Ino) error {
			_, err := s.Create(nil, top, "x", 0o644, CreateExclusive, 42)
			return err
		},
		verify: func(s *Store, top, _ Ino) error { return lookup(s, top, "x") },
	}, {
		name:  "CreateUncheckedOfNewFile",
		setup: func(*Store, Ino) (Ino, error) { return 0, nil },
		a: func(s *Store, top, _ Ino) error {
			_, err := s.Create(nil, top, "x", 0o644, CreateGuarded, 0)
			return err
		},
		b: func(s *Store, top, _ Ino) error {
			_, err := s.Create(nil, top, "x", 0o644, CreateUnchecked, 0)
			return err
		},
		verify: func(s *Store, top, _ Ino) error { return lookup(s, top, "x") },
	}, {
		name: "RenameOntoNewHardLink",
		setup: func(s *Store, top Ino) (Ino, error) {
			a, err := s.Create(nil, top, "f", 0o644, CreateGuarded, 0)
			return a.Ino, err
		},
		a: func(s *Store, top, ino Ino) error {
			_, err := s.Link(nil, ino, top, "y")
			return err
		},
		b: func(s *Store, top, _ Ino) error { return s.Rename(nil, top, "f", top, "y") },
		verify: func(s *Store, top, _ Ino) error {
			return lookup(s, top, "y") // rename(f, y) succeeded: y must name the file
		},
	}} {
		t.Run(sc.name, func(t *testing.T) {
			s, fd, disk, top := crashBugStore(t)
			ino, err := sc.setup(s, top)
			if err != nil {
				t.Fatal(err)
			}
			stalled, release := make(chan struct{}), make(chan struct{})
			var armed atomic.Bool
			armed.Store(true)
			fd.SetStall(func(op faultdisk.Op, _ int64, _ int) time.Duration {
				if op == faultdisk.Flush && armed.CompareAndSwap(true, false) {
					close(stalled)
					<-release
				}
				return 0
			})
			aDone, bDone := make(chan error, 1), make(chan error, 1)
			go func() { aDone <- sc.a(s, top, ino) }()
			<-stalled // A's transaction is being flushed
			go func() { bDone <- sc.b(s, top, ino) }()
			var bErr error
			bReturned := false
			select {
			case bErr = <-bDone:
				bReturned = true
			case <-time.After(500 * time.Millisecond): // B waits for durability: good
			}
			if err := fd.PowerCut(func(int, int64, int) faultdisk.Keep { return faultdisk.Drop }); err != nil {
				t.Fatal(err)
			}
			close(release)
			if err := <-aDone; err == nil {
				t.Fatalf("A succeeded although its flush was cut")
			}
			if !bReturned {
				bErr = <-bDone
			}
			if bErr != nil {
				return // B was not acknowledged: nothing to check
			}
			s2 := reopenAfterCut(t, s, disk)
			if err := sc.verify(s2, top, ino); err != nil {
				t.Errorf("B returned success (before the cut: %v), but after the power cut its result is not on the disk: %v", bReturned, err)
			}
		})
	}
}

// setupStaleTail makes a file of two blocks of 0xaa and truncates it
// (acknowledged) to 100 bytes: since 80be8d4 a truncate down leaves the old
// bytes past the new end of file on the disk, to be zeroed when the file
// grows again.
func setupStaleTail(t *testing.T, s *Store, top Ino) Ino {
	t.Helper()
	f, err := s.Create(nil, top, "f", 0o644, CreateGuarded, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(nil, f.Ino, bytes.Repeat([]byte{0xaa}, 2*bs), 0); err != nil {
		t.Fatal(err)
	}
	sz := uint64(100)
	if _, err := s.Setattr(nil, f.Ino, SetAttr{Size: &sz}); err != nil {
		t.Fatal(err)
	}
	return f.Ino
}

// expectNoStale checks that ino, after the cut, has size 100 (the grow was
// lost) or wantSize, and that its bytes past 100 are zeros or new.
func expectNoStale(t *testing.T, s *Store, ino Ino, wantSize uint64, newByte byte) {
	t.Helper()
	a, err := s.Getattr(ino)
	if err != nil {
		t.Fatal(err)
	}
	if a.Size != 100 && a.Size != wantSize {
		t.Fatalf("size %d after the cut, want 100 or %d", a.Size, wantSize)
	}
	buf := make([]byte, a.Size)
	if n, _, err := s.Read(nil, ino, buf, 0); err != nil || n != len(buf) {
		t.Fatalf("read: %d %v", n, err)
	}
	for i := 100; i < len(buf); i++ {
		if buf[i] != 0 && buf[i] != newByte {
			t.Fatalf("size %d after the cut, but byte %d reads %#x: the bytes an acknowledged truncate removed are back "+
				"(the transaction that grew the file reached the disk, the in-place block write that zeroes past the old EOF did not)", a.Size, i, buf[i])
		}
	}
}

// Regression (fixed in 30521f3): an unacknowledged write that grows a file
// whose last block is partial rewrites that block in place (zeroing the stale
// bytes past the old EOF in its buffer). The transaction with the new size
// must not reach the disk without that block write, or the grown range shows
// the bytes an acknowledged truncate removed. Found by the random test: seed
// 36, cut flush:10 (HANFS_LONG_TEST=1 seeds 10, 22, 84 too).
func TestCrashBugStaleBytesAfterInFlightGrowingWrite(t *testing.T) {
	s, fd, disk, top := crashBugStore(t)
	ino := setupStaleTail(t, s, top)
	cutAtNextFlush(fd, func(off int64) bool { return inJournal(s, off) })
	if _, err := s.Write(nil, ino, bytes.Repeat([]byte{0xbb}, 50), 200); !errors.Is(err, faultdisk.ErrPowerCut) {
		t.Fatalf("write during the cut: %v", err)
	}
	expectNoStale(t, reopenAfterCut(t, s, disk), ino, 250, 0xbb)
}

// Regression (fixed in 30521f3): the same for an unacknowledged truncate
// that grows the file: zeroPastEOF writes the zeroed block in place, and the
// commit that grows the size must come after it (HANFS_LONG_TEST=1 seeds 48,
// 80).
func TestCrashBugStaleBytesAfterInFlightGrowingTruncate(t *testing.T) {
	s, fd, disk, top := crashBugStore(t)
	ino := setupStaleTail(t, s, top)
	cutAtNextFlush(fd, func(off int64) bool { return inJournal(s, off) })
	sz := uint64(4000)
	if _, err := s.Setattr(nil, ino, SetAttr{Size: &sz}); !errors.Is(err, faultdisk.ErrPowerCut) {
		t.Fatalf("truncate during the cut: %v", err)
	}
	expectNoStale(t, reopenAfterCut(t, s, disk), ino, 4000, 0)
}
