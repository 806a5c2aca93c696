package fsstore

// Tests of single-flush commits: data and journal are written before one
// flush, the journal records a checksum of the data each transaction makes
// visible, and replay drops the newest transaction when its data is missing.

import (
	"bytes"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/hanfs/hanfs/shareddisk/faultdisk"
)

// inPlace makes every write go to its home (no journaled data), the path
// these tests are about.
var inPlace = Options{JournaledWriteBlocks: -1}

// TestCrashSumsDropNewestWithoutData: a write of new blocks whose journal
// transaction reaches the disk while its data does not must vanish whole at
// replay (it was never acknowledged): no file size pointing at blocks that
// never got their data.
func TestCrashSumsDropNewestWithoutData(t *testing.T) {
	s, fd, disk, top := crashBugStoreWith(t, inPlace)
	f, err := s.Create(nil, top, "f", 0o644, CreateGuarded, 0)
	if err != nil {
		t.Fatal(err)
	}
	kept, dropped := cutAtNextFlush(fd, func(off int64) bool { return inJournal(s, off) })
	if _, err := s.Write(nil, f.Ino, bytes.Repeat([]byte{0xcc}, 3*bs), 0); !errors.Is(err, faultdisk.ErrPowerCut) {
		t.Fatalf("write during the cut: %v", err)
	}
	if kept.Load() == 0 || dropped.Load() == 0 {
		t.Fatalf("cut kept %d journal writes and dropped %d data writes; want both", kept.Load(), dropped.Load())
	}
	s2 := reopenAfterCut(t, s, disk)
	a, err := s2.Getattr(f.Ino)
	if err != nil {
		t.Fatal(err)
	}
	if a.Size != 0 {
		buf := make([]byte, a.Size)
		s2.Read(nil, f.Ino, buf, 0)
		t.Fatalf("size %d after the cut (first byte %#x): replay applied a transaction whose data never reached the disk", a.Size, buf[0])
	}
}

// TestCrashSumsInPlaceOverwriteOfNewestData: an acknowledged write of new
// blocks is the newest transaction in the log; an in-place overwrite of those
// blocks whose data lands while its own transaction does not must not make
// replay drop the acknowledged write (the checksum no longer matches). The
// store must commit a later transaction before it overwrites them.
func TestCrashSumsInPlaceOverwriteOfNewestData(t *testing.T) {
	for _, tc := range []struct {
		name     string
		off, len int
	}{
		{"whole block", 0, bs},
		{"partial block", 100, 50},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, fd, disk, top := crashBugStoreWith(t, inPlace)
			f, err := s.Create(nil, top, "f", 0o644, CreateGuarded, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Write(nil, f.Ino, bytes.Repeat([]byte{0xaa}, 2*bs), 0); err != nil {
				t.Fatal(err)
			}
			// Cut at the first flush after the overwrite's data write, keeping
			// everything outside the journal (the data) and nothing in it.
			var sawData, armed atomic.Bool
			fd.SetWriteHook(func(off int64, p []byte) {
				if !inJournal(s, off) {
					sawData.Store(true)
					armed.Store(true)
				}
			})
			cutAtFlushWhenArmed(fd, &armed, func(off int64) bool { return !inJournal(s, off) })
			if _, err := s.Write(nil, f.Ino, bytes.Repeat([]byte{0xbb}, tc.len), int64(tc.off)); !errors.Is(err, faultdisk.ErrPowerCut) {
				t.Fatalf("overwrite during the cut: %v", err)
			}
			if !sawData.Load() {
				t.Fatal("the overwrite wrote no data before the cut")
			}
			s2 := reopenAfterCut(t, s, disk)
			a, err := s2.Getattr(f.Ino)
			if err != nil {
				t.Fatal(err)
			}
			if a.Size != 2*bs {
				t.Fatalf("size %d after the cut, want %d: replay dropped the acknowledged write because an in-place overwrite changed its data", a.Size, 2*bs)
			}
			buf := make([]byte, 2*bs)
			if _, _, err := s2.Read(nil, f.Ino, buf, 0); err != nil {
				t.Fatal(err)
			}
			for i, b := range buf {
				in := i >= tc.off && i < tc.off+tc.len
				if b != 0xaa && !(in && b == 0xbb) {
					t.Fatalf("byte %d reads %#x after the cut", i, b)
				}
			}
		})
	}
}
