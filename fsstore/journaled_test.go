package fsstore

// Tests of journaled small writes (fsstore/txn/journaled.go): the data goes
// into the journal with the metadata, reaches its home at the next
// checkpoint, and reads see it in between.

import (
	"bytes"
	"sync/atomic"
	"testing"

	"github.com/hanfs/hanfs/shareddisk"
	"github.com/hanfs/hanfs/shareddisk/faultdisk"
)

// journaledStore opens a store on a fresh in-memory disk behind a fault disk
// that counts the writes outside the journal.
func journaledStore(t *testing.T) (*Store, *shareddisk.Mem, *atomic.Int32) {
	t.Helper()
	mem := shareddisk.NewMem(64 << 20)
	if _, err := Format(mem, FormatOptions{}); err != nil {
		t.Fatal(err)
	}
	fd := faultdisk.New(mem)
	s, err := Open(fd, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	home := new(atomic.Int32)
	lay := s.Superblock().Layout
	fd.SetWriteHook(func(off int64, p []byte) {
		if off >= int64(lay.DataStart)*bs {
			home.Add(1)
		}
	})
	return s, mem, home
}

func readAll(t *testing.T, s *Store, ino Ino, n int) []byte {
	t.Helper()
	buf := make([]byte, n)
	got, _, err := s.Read(nil, ino, buf, 0)
	if err != nil || got != n {
		t.Fatalf("read %d bytes: got %d, %v", n, got, err)
	}
	return buf
}

// TestJournaledWriteSkipsHome: a small write, to a new file and over
// existing data, writes nothing at the data's home before the checkpoint;
// reads see it at once; after a crash (no checkpoint), replay puts it home.
func TestJournaledWriteSkipsHome(t *testing.T) {
	s, mem, home := journaledStore(t)
	f, err := s.Create(nil, RootIno, "f", 0o644, CreateGuarded, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Repeat([]byte{0x11}, 3*bs)
	if _, err := s.Write(nil, f.Ino, want, 0); err != nil {
		t.Fatal(err)
	}
	copy(want[bs+100:], bytes.Repeat([]byte{0x22}, 200)) // partial block
	if _, err := s.Write(nil, f.Ino, want[bs+100:bs+300], bs+100); err != nil {
		t.Fatal(err)
	}
	if n := home.Load(); n != 0 {
		t.Fatalf("%d writes at data homes before any checkpoint; journaled writes make none", n)
	}
	if got := readAll(t, s, f.Ino, 3*bs); !bytes.Equal(got, want) {
		t.Fatal("read after journaled writes differs from what was written")
	}
	if st := s.m.Stats(); st.JournaledBlocks < 4 {
		t.Fatalf("%d journaled blocks counted, want at least 4", st.JournaledBlocks)
	}
	s.Kill(errCrashCut)
	s2, err := Open(mem, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if got := readAll(t, s2, f.Ino, 3*bs); !bytes.Equal(got, want) {
		t.Fatal("after the crash, replay did not restore the journaled data")
	}
	rep, err := Fsck(mem)
	if err != nil || !rep.OK() {
		t.Fatalf("fsck: %v\n%v", err, rep)
	}
}

// TestJournaledThenInPlaceSurvivesCrash: a small (journaled) write, then a
// large write over the same blocks (in place), both acknowledged, then a
// crash: the large write's bytes must stay. Replaying the journaled image
// over them would bring back the older bytes, so the store checkpoints before
// it writes a journaled block in place.
func TestJournaledThenInPlaceSurvivesCrash(t *testing.T) {
	s, mem, _ := journaledStore(t)
	f, err := s.Create(nil, RootIno, "f", 0o644, CreateGuarded, 0)
	if err != nil {
		t.Fatal(err)
	}
	const n = 64 * bs // larger than any journaled write
	if _, err := s.Write(nil, f.Ino, bytes.Repeat([]byte{0xaa}, n), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(nil, f.Ino, bytes.Repeat([]byte{0xbb}, bs), 5*bs); err != nil {
		t.Fatal(err)
	}
	want := bytes.Repeat([]byte{0xcc}, n)
	if _, err := s.Write(nil, f.Ino, want, 0); err != nil {
		t.Fatal(err)
	}
	if st := s.m.Stats(); st.Unjournals == 0 {
		t.Fatal("no checkpoint before the in-place overwrite of a journaled block")
	}
	s.Kill(errCrashCut)
	s2, err := Open(mem, Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	got := readAll(t, s2, f.Ino, n)
	for i, b := range got {
		if b != 0xcc {
			t.Fatalf("byte %d reads %#x after the crash, want 0xcc: replay put an older journaled image over an acknowledged in-place write", i, b)
		}
	}
}

// TestJournaledReadAheadCoherent: a file read ahead into the data cache,
// then overwritten by a small journaled write, reads the new bytes, before
// and after the checkpoint that writes them home.
func TestJournaledReadAheadCoherent(t *testing.T) {
	s, _, _ := journaledStore(t)
	defer s.Close()
	f, err := s.Create(nil, RootIno, "f", 0o644, CreateGuarded, 0)
	if err != nil {
		t.Fatal(err)
	}
	const n = 4 << 20
	want := bytes.Repeat([]byte{0x5a}, n)
	if _, err := s.Write(nil, f.Ino, want, 0); err != nil {
		t.Fatal(err)
	}
	// Sequential reads of 64 KiB make the store read ahead.
	chunk := make([]byte, 64<<10)
	for off := 0; off < n/2; off += len(chunk) {
		if _, _, err := s.Read(nil, f.Ino, chunk, int64(off)); err != nil {
			t.Fatal(err)
		}
	}
	at := n/2 + 3*bs
	copy(want[at:], bytes.Repeat([]byte{0xe1}, bs))
	if _, err := s.Write(nil, f.Ino, want[at:at+bs], int64(at)); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		got := readAll(t, s, f.Ino, n)
		if !bytes.Equal(got, want) {
			i := 0
			for got[i] == want[i] {
				i++
			}
			t.Fatalf("%s: byte %d reads %#x, want %#x", when, i, got[i], want[i])
		}
		// ReadRefs serves cached blocks without copying them.
		bufs, _, _, release, err := s.ReadRefs(nil, f.Ino, make([]byte, 1<<20), int64(n/2))
		if err != nil {
			t.Fatal(err)
		}
		defer release()
		if got := bytes.Join(bufs, nil); !bytes.Equal(got, want[n/2:n/2+1<<20]) {
			t.Fatalf("%s: ReadRefs differs from what was written", when)
		}
	}
	var blk uint64
	if err := s.view(func(t *stx) error {
		segs, err := t.mapRange(f.Ino, uint64(at)/bs, uint64(at)/bs+1)
		blk = segs[0].disk
		return err
	}); err != nil {
		t.Fatal(err)
	}
	// Read the journaled block's old home bytes ahead into the cache: reads
	// must still see the journaled bytes, and the checkpoint must drop the
	// cached copy when it drops the image.
	s.m.Prefetch(blk, 1)
	check("before the checkpoint")
	if err := s.m.Settle(blk, 1); err != nil { // checkpoints: blk is journaled
		t.Fatal(err)
	}
	if st := s.m.Stats(); st.Unjournals == 0 {
		t.Fatal("Settle of a journaled block took no checkpoint")
	}
	check("after the checkpoint")
}

// TestJournaledOverlayEdges journals single blocks at the start, middle and
// end of a file written in place, then reads ranges that end on, start on
// and cover those blocks: ranges longer than the number of journaled blocks
// and shorter ones look the images up in different ways, and both must find
// the blocks at a range's edges.
func TestJournaledOverlayEdges(t *testing.T) {
	s, _, _ := journaledStore(t)
	f, err := s.Create(nil, RootIno, "f", 0o644, CreateGuarded, 0)
	if err != nil {
		t.Fatal(err)
	}
	const blocks = 64
	want := bytes.Repeat([]byte{0x11}, blocks*bs)
	if _, err := s.Write(nil, f.Ino, want, 0); err != nil { // in place: too large to journal
		t.Fatal(err)
	}
	for i, b := range []int{0, 31, blocks - 1} {
		p := bytes.Repeat([]byte{byte(0x21 + i)}, bs)
		if _, err := s.Write(nil, f.Ino, p, int64(b*bs)); err != nil {
			t.Fatal(err)
		}
		copy(want[b*bs:], p)
	}
	if st := s.m.Stats(); st.JournaledBlocks < 3 {
		t.Fatalf("%d journaled blocks, want 3: the test tests nothing", st.JournaledBlocks)
	}
	for _, r := range [][2]int{{0, blocks}, {0, 32}, {31, blocks}, {1, 31}, {32, blocks - 1}, {blocks - 1, blocks}, {0, 1}, {30, 33}} {
		off, n := r[0]*bs, (r[1]-r[0])*bs
		buf := make([]byte, n)
		got, _, err := s.Read(nil, f.Ino, buf, int64(off))
		if err != nil || got != n {
			t.Fatalf("read blocks [%d, %d): %d bytes, %v", r[0], r[1], got, err)
		}
		if !bytes.Equal(buf, want[off:off+n]) {
			t.Errorf("read blocks [%d, %d): differs from what was written", r[0], r[1])
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
