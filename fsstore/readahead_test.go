package fsstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hanfs/hanfs/fsstore/txn"
	"github.com/hanfs/hanfs/shareddisk"
)

// filled returns n bytes whose every 8-byte word says (tag, offset), so that
// a stale or misplaced block shows.
func filled(tag uint32, off, n int) []byte {
	p := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		binary.BigEndian.PutUint32(p[i:], tag)
		binary.BigEndian.PutUint32(p[i+4:], uint32(off+i))
	}
	return p
}

// readSeq reads ino from 0 to size in 1 MiB reads, as a sequential NFS
// client does, and returns the bytes.
func readSeq(t *testing.T, s *Store, ino Ino, size int) []byte {
	t.Helper()
	out := make([]byte, 0, size)
	buf := shareddisk.AlignedBuf(1 << 20)
	for off := 0; off < size; off += len(buf) {
		n, _, err := s.Read(nil, ino, buf, int64(off))
		if err != nil {
			t.Fatalf("read at %d: %v", off, err)
		}
		out = append(out, buf[:n]...)
	}
	return out
}

func checkBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if bytes.Equal(got, want) {
		return
	}
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			t.Fatalf("%s: first difference at byte %d (block %d) of %d/%d", what, i, i/bs, len(got), len(want))
		}
	}
	t.Fatalf("%s: got %d bytes, want %d", what, len(got), len(want))
}

func openCached(t *testing.T, d shareddisk.Disk, cnt *txn.DataCacheCounters) *Store {
	t.Helper()
	s, err := Open(d, Options{ReadCacheCounters: cnt})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// diskBlocks returns the disk blocks that ino maps.
func diskBlocks(t *testing.T, s *Store, ino Ino, size uint64) map[uint64]bool {
	t.Helper()
	out := map[uint64]bool{}
	err := s.view(func(tx *stx) error {
		segs, err := tx.mapRange(ino, 0, (size+bs-1)/bs)
		for _, sg := range segs {
			for i := uint64(0); sg.disk != 0 && i < sg.n; i++ {
				out[sg.disk+i] = true
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestReadCacheSeesEveryWrite fills the read-ahead cache by reading files
// sequentially, changes their blocks in every way the store can (overwrite,
// unaligned overwrite, truncate and rewrite, truncate and extend, remove
// and reuse of the blocks by another file) and reads again, expecting the
// new bytes each time.
func TestReadCacheSeesEveryWrite(t *testing.T) {
	var cnt txn.DataCacheCounters
	d := shareddisk.NewMem(256 << 20)
	if _, err := Format(d, FormatOptions{}); err != nil {
		t.Fatal(err)
	}
	s := openCached(t, d, &cnt)
	defer s.Close()
	const size = 12 << 20
	a, err := s.Create(nil, RootIno, "a", 0o644, CreateGuarded, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := filled(1, 0, size)
	if _, err := s.Write(nil, a.Ino, want, 0); err != nil {
		t.Fatal(err)
	}
	fill := func(what string) {
		t.Helper()
		h0 := cnt.Hits.Load()
		checkBytes(t, what+": first read", readSeq(t, s, a.Ino, len(want)), want)
		if cnt.Hits.Load() == h0 {
			t.Fatalf("%s: the sequential read hit no read-ahead: the test tests nothing", what)
		}
		// Everything read ahead is still cached (the cache holds 64 MiB).
	}

	fill("written")
	// 1. An aligned overwrite of the whole file.
	want = filled(2, 0, size)
	if _, err := s.Write(nil, a.Ino, want, 0); err != nil {
		t.Fatal(err)
	}
	checkBytes(t, "after overwrite", readSeq(t, s, a.Ino, size), want)
	if cnt.InvalidatedBlocks.Load() == 0 {
		t.Fatal("the overwrite invalidated no cached block")
	}

	// 2. Unaligned overwrites (read-modify-write of the edge blocks).
	fill("overwritten")
	for _, off := range []int{5, 3<<20 - 100, 7<<20 + 4095, size - 3} {
		p := filled(3, off, 10000)[:min(10000, size-off)]
		if _, err := s.Write(nil, a.Ino, p, int64(off)); err != nil {
			t.Fatal(err)
		}
		copy(want[off:], p)
	}
	checkBytes(t, "after unaligned overwrites", readSeq(t, s, a.Ino, size), want)

	// 3. Truncate to zero and rewrite.
	fill("patched")
	zero := uint64(0)
	if _, err := s.Setattr(nil, a.Ino, SetAttr{Size: &zero}); err != nil {
		t.Fatal(err)
	}
	want = filled(4, 0, size)
	if _, err := s.Write(nil, a.Ino, want, 0); err != nil {
		t.Fatal(err)
	}
	checkBytes(t, "after truncate and rewrite", readSeq(t, s, a.Ino, size), want)

	// 4. Truncate to an unaligned size, then extend: the old bytes past the
	// new end of file, cached, must read as zeros (zeroPastEOF).
	fill("rewritten")
	short := uint64(size/2 + 1000)
	if _, err := s.Setattr(nil, a.Ino, SetAttr{Size: &short}); err != nil {
		t.Fatal(err)
	}
	long := uint64(size)
	if _, err := s.Setattr(nil, a.Ino, SetAttr{Size: &long}); err != nil {
		t.Fatal(err)
	}
	clear(want[short:])
	checkBytes(t, "after truncate and extend", readSeq(t, s, a.Ino, size), want)

	// 5. Remove the file and write another that reuses its blocks.
	want = filled(5, 0, size)
	if _, err := s.Write(nil, a.Ino, want, 0); err != nil {
		t.Fatal(err)
	}
	fill("before remove")
	old := diskBlocks(t, s, a.Ino, size)
	if err := s.Unlink(nil, RootIno, "a"); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	// The allocator is next-fit: write (and remove) new files until one
	// lands on the removed file's blocks.
	reused := 0
	for i := 0; i < 40 && reused == 0; i++ {
		name := fmt.Sprintf("b%d", i)
		b, err := s.Create(nil, RootIno, name, 0o644, CreateGuarded, 0)
		if err != nil {
			t.Fatal(err)
		}
		nw := filled(uint32(6+i), 0, size)
		if _, err := s.Write(nil, b.Ino, nw, 0); err != nil {
			t.Fatal(err)
		}
		for blk := range diskBlocks(t, s, b.Ino, size) {
			if old[blk] {
				reused++
			}
		}
		checkBytes(t, "a new file", readSeq(t, s, b.Ino, size), nw)
		if reused == 0 {
			if err := s.Unlink(nil, RootIno, name); err != nil {
				t.Fatal(err)
			}
			if err := s.Sync(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if reused == 0 {
		t.Fatal("no block of the removed file was reused: the test tests nothing")
	}
}

// TestReadCacheNotAcrossOpens checks that a store opened on a disk reads
// what another store instance wrote there, whatever an earlier instance of
// this node had cached: a node that held the lease, lost it and took it back
// must not serve its old cache.
func TestReadCacheNotAcrossOpens(t *testing.T) {
	var cnt txn.DataCacheCounters
	d := shareddisk.NewMem(128 << 20)
	if _, err := Format(d, FormatOptions{}); err != nil {
		t.Fatal(err)
	}
	const size = 6 << 20
	s1 := openCached(t, d, &cnt)
	a, err := s1.Create(nil, RootIno, "a", 0o644, CreateGuarded, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s1.Write(nil, a.Ino, filled(1, 0, size), 0); err != nil {
		t.Fatal(err)
	}
	checkBytes(t, "first node", readSeq(t, s1, a.Ino, size), filled(1, 0, size))
	if cnt.Hits.Load() == 0 {
		t.Fatal("no read-ahead hit: the test tests nothing")
	}
	s1.Kill(errors.New("lease lost")) // the other node takes over
	if n := s1.m.DataCacheBytes(); n != 0 {
		t.Fatalf("a killed store still caches %d bytes", n)
	}

	s2 := openCached(t, d, nil) // the other node
	if _, err := s2.Write(nil, a.Ino, filled(2, 0, size), 0); err != nil {
		t.Fatal(err)
	}
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}

	s3 := openCached(t, d, &cnt) // this node again
	defer s3.Close()
	checkBytes(t, "after the other node wrote", readSeq(t, s3, a.Ino, size), filled(2, 0, size))
}

// holdDisk delays the end of data reads when armed: the read is done, then
// it waits, as a read ahead overtaken by a write would.
type holdDisk struct {
	shareddisk.Disk
	hold  int64 // a read at this offset is held, once armed
	armed atomic.Bool
	held  chan struct{} // receives when a read is held
	go_   chan struct{} // closed to let held reads return
}

func (h *holdDisk) ReadAt(p []byte, off int64) (int, error) {
	n, err := h.Disk.ReadAt(p, off)
	if off == h.hold && h.armed.CompareAndSwap(true, false) {
		h.held <- struct{}{}
		<-h.go_
	}
	return n, err
}

// TestReadCacheWriteDuringReadAhead writes blocks while a read ahead that
// has read their old bytes from the disk has not yet put them in the cache:
// the read ahead must not serve the old bytes afterwards.
func TestReadCacheWriteDuringReadAhead(t *testing.T) {
	mem := shareddisk.NewMem(128 << 20)
	if _, err := Format(mem, FormatOptions{}); err != nil {
		t.Fatal(err)
	}
	h := &holdDisk{Disk: mem, held: make(chan struct{}, 1), go_: make(chan struct{})}
	var cnt txn.DataCacheCounters
	s := openCached(t, h, &cnt)
	defer s.Close()
	const size = 4 << 20
	a, err := s.Create(nil, RootIno, "a", 0o644, CreateGuarded, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(nil, a.Ino, filled(1, 0, size), 0); err != nil {
		t.Fatal(err)
	}
	// The second 1 MiB read reads ahead from 2 MiB on: hold the read of
	// the block at 2 MiB, which only the read ahead does.
	at := uint64(0)
	err = s.view(func(tx *stx) error {
		segs, err := tx.mapRange(a.Ino, (2<<20)/bs, (2<<20)/bs+1)
		at = segs[0].disk
		return err
	})
	if err != nil || at == 0 {
		t.Fatalf("map: %v, block %d", err, at)
	}
	h.hold = int64(at * bs)
	h.armed.Store(true)
	buf := shareddisk.AlignedBuf(1 << 20)
	for _, off := range []int64{0, 1 << 20} {
		if _, _, err := s.Read(nil, a.Ino, buf, off); err != nil {
			t.Fatal(err)
		}
	}
	<-h.held // the read ahead has read the old bytes, and waits
	if _, err := s.Write(nil, a.Ino, filled(2, 2<<20, size-2<<20), 2<<20); err != nil {
		t.Fatal(err)
	}
	close(h.go_)
	want := append(filled(1, 0, 2<<20), filled(2, 2<<20, size-2<<20)...)
	got := make([]byte, 0, size)
	for off := 0; off < size; off += 1 << 20 {
		n, _, err := s.Read(nil, a.Ino, buf, int64(off))
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:n]...)
	}
	checkBytes(t, "after a write overtook a read ahead", got, want)
	if cnt.InvalidatedBlocks.Load() == 0 {
		t.Fatal("the write invalidated nothing: the read ahead was not pending")
	}
}

// TestReadCacheConcurrentWrites runs sequential readers against a writer
// that keeps overwriting the file, then checks that the file reads as last
// written: a read ahead that raced with a write must have been dropped.
func TestReadCacheConcurrentWrites(t *testing.T) {
	var cnt txn.DataCacheCounters
	d := shareddisk.NewMem(128 << 20)
	if _, err := Format(d, FormatOptions{}); err != nil {
		t.Fatal(err)
	}
	s, err := Open(d, Options{ReadCacheCounters: &cnt, ReadCacheBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const size = 8 << 20
	const chunk = 1 << 20
	a, err := s.Create(nil, RootIno, "a", 0o644, CreateGuarded, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := filled(0, 0, size)
	if _, err := s.Write(nil, a.Ino, want, 0); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := shareddisk.AlignedBuf(chunk)
			for !stop.Load() {
				for off := 0; off < size; off += chunk {
					if _, _, err := s.Read(nil, a.Ino, buf, int64(off)); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	for i := 1; i <= 200; i++ {
		off := (i * 7 % (size / chunk)) * chunk
		p := filled(uint32(i), off, chunk)
		if _, err := s.Write(nil, a.Ino, p, int64(off)); err != nil {
			t.Fatal(err)
		}
		copy(want[off:], p)
	}
	stop.Store(true)
	wg.Wait()
	if cnt.Hits.Load() == 0 {
		t.Fatal("no read-ahead hit: the test tests nothing")
	}
	checkBytes(t, "after concurrent writes", readSeq(t, s, a.Ino, size), want)
}

// TestReadRefs checks that ReadRefs returns the same bytes as Read, for
// reads that are cached, partly cached, in holes and past the end of file,
// and that the cache's buffers stay intact while referenced even if the
// blocks are overwritten meanwhile.
func TestReadRefs(t *testing.T) {
	var cnt txn.DataCacheCounters
	d := shareddisk.NewMem(128 << 20)
	if _, err := Format(d, FormatOptions{}); err != nil {
		t.Fatal(err)
	}
	s := openCached(t, d, &cnt)
	defer s.Close()
	const size = 6<<20 + 100
	a, err := s.Create(nil, RootIno, "a", 0o644, CreateGuarded, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := filled(1, 0, size)
	clear(want[3<<20 : 3<<20+8192]) // a hole
	if _, err := s.Write(nil, a.Ino, want[:3<<20], 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(nil, a.Ino, want[3<<20+8192:], 3<<20+8192); err != nil {
		t.Fatal(err)
	}
	readSeq(t, s, a.Ino, size) // read ahead from 2 MiB on
	if cnt.Hits.Load() == 0 {
		t.Fatal("no read-ahead hit: the test tests nothing")
	}
	for _, c := range []struct{ off, n int }{
		{0, 1 << 20}, {1 << 20, 2 << 20}, {2 << 20, 1 << 20}, {3<<20 - 4096, 1 << 20},
		{3 << 20, 8192}, {5 << 20, 2 << 20}, {6 << 20, 4096}, {size, 4096}, {2<<20 + 4096, 4096},
	} {
		p := shareddisk.AlignedBuf(c.n)
		bufs, n, eof, release, err := s.ReadRefs(nil, a.Ino, p, int64(c.off))
		if err != nil {
			t.Fatal(err)
		}
		var got []byte
		for _, b := range bufs {
			got = append(got, b...)
		}
		if len(got) != n {
			t.Fatalf("off %d: %d bytes in bufs, n %d", c.off, len(got), n)
		}
		end := min(c.off+c.n, size)
		checkBytes(t, fmt.Sprintf("off %d", c.off), got, want[min(c.off, size):end])
		if eof != (end == size) {
			t.Fatalf("off %d: eof %v", c.off, eof)
		}
		// Overwrite while referenced: the referenced bytes do not change.
		if c.off < size {
			if _, err := s.Write(nil, a.Ino, filled(9, c.off, 4096)[:min(4096, size-c.off)], int64(c.off)); err != nil {
				t.Fatal(err)
			}
			var again []byte
			for _, b := range bufs {
				again = append(again, b...)
			}
			checkBytes(t, fmt.Sprintf("off %d, referenced", c.off), again, got)
			copy(want[c.off:], filled(9, c.off, 4096)[:min(4096, size-c.off)])
		}
		release()
	}
}
