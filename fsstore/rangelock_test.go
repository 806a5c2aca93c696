package fsstore

import (
	"bytes"
	"fmt"
	"math/rand"
	"sync"
	"testing"
	"time"

	"github.com/hanfs/hanfs/shareddisk"
	"github.com/hanfs/hanfs/shareddisk/faultdisk"
)

// TestDisjointWritesRunInParallel: while one write's data I/O is stalled,
// a write to another range of the same file issues its data I/O too, both
// inside the file's size and when both grow the file by aligned blocks. With
// one lock per file held across data I/O, the second write would wait for
// the first. (Its commit may wait: a group's flush waits for its data writes.)
// A read of the stalled range waits for that write; a read elsewhere does not.
func TestDisjointWritesRunInParallel(t *testing.T) {
	for _, tc := range []struct {
		name       string
		offA, offB int64
	}{
		{"inside the size", 3 * bs, 40 * bs},
		{"aligned appends", 64 * bs, 65 * bs},
	} {
		t.Run(tc.name, func(t *testing.T) { disjointWrites(t, tc.offA, tc.offB) })
	}
}

func disjointWrites(t *testing.T, offA, offB int64) {
	mem := shareddisk.NewMem(64 << 20)
	if _, err := Format(mem, FormatOptions{}); err != nil {
		t.Fatal(err)
	}
	fd := faultdisk.New(mem)
	// Data written at its home: the test watches those writes.
	s, err := Open(fd, Options{JournaledWriteBlocks: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	f, err := s.Create(nil, RootIno, "f", 0o644, CreateGuarded, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(nil, f.Ino, make([]byte, 64*bs), 0); err != nil {
		t.Fatal(err)
	}
	stalled, release, sawB := make(chan struct{}), make(chan struct{}), make(chan struct{})
	var onceA, onceB sync.Once
	fd.SetWriteHook(func(off int64, p []byte) {
		if len(p) == bs && p[0] == 0xa1 && p[bs-1] == 0xa1 {
			onceA.Do(func() { close(stalled); <-release })
		}
		if len(p) == bs && p[0] == 0xb2 && p[bs-1] == 0xb2 {
			onceB.Do(func() { close(sawB) })
		}
	})
	errA := make(chan error, 1)
	go func() {
		_, err := s.Write(nil, f.Ino, bytes.Repeat([]byte{0xa1}, bs), offA)
		errA <- err
	}()
	<-stalled
	done := make(chan error, 1)
	go func() {
		_, err := s.Write(nil, f.Ino, bytes.Repeat([]byte{0xb2}, bs), offB)
		done <- err
	}()
	select {
	case <-sawB:
	case <-time.After(10 * time.Second):
		close(release)
		t.Fatalf("a write at block %d did not reach the disk while a write at block %d of the same file was stalled", offB/bs, offA/bs)
	}
	buf := make([]byte, bs)
	if _, _, err := s.Read(nil, f.Ino, buf, offB); err != nil || buf[0] != 0xb2 {
		t.Fatalf("read of the other range: %v %#x", err, buf[0])
	}
	readA := make(chan byte, 1)
	go func() {
		b := make([]byte, bs)
		s.Read(nil, f.Ino, b, offA)
		readA <- b[0]
	}()
	select {
	case v := <-readA:
		t.Fatalf("a read of a range being written returned %#x before the write finished", v)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if err := <-errA; err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if v := <-readA; v != 0xa1 {
		t.Fatalf("read after the write: %#x", v)
	}
}

// TestConcurrentOverwritesAndReads: goroutines overwrite random blocks of one
// file (each block filled with one byte value) while others read; no read
// sees a block with mixed values, and the file ends with the last value
// written to every block. Growing writes and truncates run alongside.
func TestConcurrentOverwritesAndReads(t *testing.T) {
	s, d := newTestStore(t, 128<<20)
	const nblk = 256
	f, err := s.Create(nil, RootIno, "f", 0o644, CreateGuarded, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(nil, f.Ino, make([]byte, nblk*bs), 0); err != nil {
		t.Fatal(err)
	}
	last := make([]byte, nblk) // last value written per block, by its owner
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			r := rand.New(rand.NewSource(int64(w)))
			for i := 0; i < 150; i++ {
				// Worker w owns the blocks b with b%6 == w: only it writes
				// them, so last[b] is the value the file must end with.
				b := uint64(r.Intn(nblk/6))*6 + uint64(w)
				v := byte(1 + r.Intn(250))
				if _, err := s.Write(nil, f.Ino, bytes.Repeat([]byte{v}, bs), int64(b*bs)); err != nil {
					errs <- err
					return
				}
				last[b] = v
			}
		}(w)
	}
	for rd := 0; rd < 3; rd++ {
		wg.Add(1)
		go func(rd int) {
			defer wg.Done()
			r := rand.New(rand.NewSource(int64(100 + rd)))
			buf := make([]byte, 4*bs)
			for i := 0; i < 300; i++ {
				b := uint64(r.Intn(nblk - 4))
				n, _, err := s.Read(nil, f.Ino, buf, int64(b*bs))
				if err != nil || n != len(buf) {
					errs <- fmt.Errorf("read: %d %v", n, err)
					return
				}
				for k := 0; k < 4; k++ {
					blk := buf[k*bs : (k+1)*bs]
					for i := range blk {
						if blk[i] != blk[0] {
							errs <- fmt.Errorf("block %d read torn: byte 0 is %#x, byte %d is %#x", b+uint64(k), blk[0], i, blk[i])
							return
						}
					}
				}
			}
		}(rd)
	}
	// A writer that grows the file and truncates it back, taking the inode
	// lock exclusive, alongside.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 40; i++ {
			if _, err := s.Write(nil, f.Ino, []byte("tail"), nblk*bs+int64(i)); err != nil {
				errs <- err
				return
			}
			sz := uint64(nblk * bs)
			if _, err := s.Setattr(nil, f.Ino, SetAttr{Size: &sz}); err != nil {
				errs <- err
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	buf := make([]byte, nblk*bs)
	if _, _, err := s.Read(nil, f.Ino, buf, 0); err != nil {
		t.Fatal(err)
	}
	for b := 0; b < nblk; b++ {
		if got := buf[b*bs]; got != last[b] {
			t.Fatalf("block %d holds %#x, last write was %#x", b, got, last[b])
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fsckOK(t, d)
}

// TestConcurrentAlignedAppends: writers fill consecutive block-aligned chunks
// of a growing file at once (as an NFS client does with several WRITEs in
// flight), holding the inode lock shared; the file ends with every chunk's
// bytes, the right size, and a clean fsck.
func TestConcurrentAlignedAppends(t *testing.T) {
	s, d := newTestStore(t, 128<<20)
	f, err := s.Create(nil, RootIno, "f", 0o644, CreateGuarded, 0)
	if err != nil {
		t.Fatal(err)
	}
	const chunk, chunks, writers = 16 * bs, 64, 4
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for c := w; c < chunks; c += writers {
				if _, err := s.Write(nil, f.Ino, bytes.Repeat([]byte{byte(c + 1)}, chunk), int64(c*chunk)); err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	a, err := s.Getattr(f.Ino)
	if err != nil {
		t.Fatal(err)
	}
	if a.Size != chunks*chunk {
		t.Fatalf("size %d, want %d", a.Size, chunks*chunk)
	}
	buf := make([]byte, chunks*chunk)
	if _, _, err := s.Read(nil, f.Ino, buf, 0); err != nil {
		t.Fatal(err)
	}
	for c := 0; c < chunks; c++ {
		for i := c * chunk; i < (c+1)*chunk; i++ {
			if buf[i] != byte(c+1) {
				t.Fatalf("byte %d (chunk %d) is %#x, want %#x", i, c, buf[i], c+1)
			}
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fsckOK(t, d)
}
