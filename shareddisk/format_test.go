package shareddisk

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestFormatWritesRegions(t *testing.T) {
	m := NewMem(MinSize)
	// Garbage where Format must zero, and where it must not touch.
	junk := AlignedBuf(BlockSize)
	for i := range junk {
		junk[i] = 0x5a
	}
	l, _ := ComputeLayout(MinSize, 0)
	for _, b := range []uint64{2, 16, 48, 112, l.JournalStart, l.BitmapStart, l.BitmapStart + l.BitmapBlocks - 1} {
		m.WriteAt(junk, Bytes(b))
	}
	untouched := []uint64{l.JournalStart + 1, l.DataStart, l.TotalBlocks - 1}
	for _, b := range untouched {
		m.WriteAt(junk, Bytes(b))
	}
	sb, err := Format(m, FormatOptions{Label: "lbl", Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if sb.Layout != l || sb.Label != "lbl" || sb.UUID == ([16]byte{}) || sb.HandleKey == ([32]byte{}) {
		t.Fatalf("superblock %+v", sb)
	}
	if sb.UUID[6]>>4 != 4 {
		t.Fatalf("UUID %s is not version 4", sb.UUIDString())
	}
	for _, r := range [][2]uint64{{2, 128}, {l.JournalStart, l.JournalStart + 1}, {l.BitmapStart, l.DataStart}} {
		region := readBlocks(t, m, r[0], r[1]-r[0])
		if n := bytes.Count(region, []byte{0}); n != len(region) {
			t.Fatalf("blocks %d..%d: %d bytes not zeroed", r[0], r[1]-1, len(region)-n)
		}
	}
	for _, b := range untouched {
		if readBlocks(t, m, b, 1)[0] != 0x5a {
			t.Fatalf("block %d was written", b)
		}
	}
	sbs := readBlocks(t, m, 0, 2)
	if !bytes.Equal(sbs[:SuperblockSize], sbs[BlockSize:BlockSize+SuperblockSize]) {
		t.Fatal("copies A and B differ")
	}
	if st, err := Probe(m); st != StatusHanfs || err != nil {
		t.Fatalf("Probe: %v %v", st, err)
	}
}

func TestFormatRefusals(t *testing.T) {
	m, first := formatted(t, MinSize)
	_, err := Format(m, FormatOptions{})
	if !errors.Is(err, ErrAlreadyFormatted) || !strings.Contains(err.Error(), first.UUIDString()) || !strings.Contains(err.Error(), m.Name()) {
		t.Fatalf("reformat: %v", err)
	}
	second, err := Format(m, FormatOptions{Force: true})
	if err != nil || second.UUID == first.UUID {
		t.Fatalf("forced reformat: %v", err)
	}

	other := NewMem(MinSize)
	smash(t, other, 200, 17, 1) // block 200 lies within the first MiB
	if st, _ := Probe(other); st != StatusOther {
		t.Fatalf("Probe: %v", st)
	}
	if _, err := Format(other, FormatOptions{}); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("non-empty: %v", err)
	}
	if _, err := Format(other, FormatOptions{Force: true}); err != nil {
		t.Fatalf("forced: %v", err)
	}

	damaged, _ := formatted(t, MinSize)
	smash(t, damaged, 0, 100, 1)
	smash(t, damaged, 1, 100, 1)
	if _, err := Format(damaged, FormatOptions{}); !errors.Is(err, ErrNotEmpty) || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("damaged: %v", err)
	}

	small := NewMem(MinSize - BlockSize)
	if _, err := Format(small, FormatOptions{Force: true}); !errors.Is(err, ErrTooSmall) || !strings.Contains(err.Error(), small.Name()) {
		t.Fatalf("too small: %v", err)
	}
	if _, err := Format(NewMem(MinSize), FormatOptions{Label: strings.Repeat("x", 65)}); err == nil {
		t.Fatal("long label accepted")
	}
	if _, err := Format(NewMem(MinSize), FormatOptions{JournalBlocks: 10}); err == nil {
		t.Fatal("tiny journal accepted")
	}
}

func TestFormatEmptyAndJournalOverride(t *testing.T) {
	m := NewMem(MinSize)
	if st, _ := Probe(m); st != StatusEmpty {
		t.Fatalf("Probe: %v", st)
	}
	sb, err := Format(m, FormatOptions{JournalBlocks: 512})
	if err != nil || sb.Layout.JournalBlocks != 512 {
		t.Fatalf("%v %+v", err, sb)
	}
}

func TestFormatKeepsImageSparse(t *testing.T) {
	path := newImage(t, 4<<30)
	d := openImage(t, path, OpenOptions{})
	sb, err := Format(d, FormatOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	limit := Bytes(JournalStartBlock+1+sb.Layout.BitmapBlocks) + 1<<20
	if st.Blocks*512 > limit {
		t.Fatalf("format allocated %d bytes, want at most %d", st.Blocks*512, limit)
	}
	d = openImage(t, path, OpenOptions{ReadOnly: true})
	got, err := ReadSuperblock(d)
	if err != nil || got.UUID != sb.UUID {
		t.Fatalf("reopen: %v", err)
	}
}

// readBlocks reads n blocks from block start.
func readBlocks(t *testing.T, d Disk, start, n uint64) []byte {
	t.Helper()
	buf := AlignedBuf(int(n) * BlockSize)
	if _, err := d.ReadAt(buf, Bytes(start)); err != nil {
		t.Fatal(err)
	}
	return buf
}
