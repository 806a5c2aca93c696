package shareddisk

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// formatted returns a freshly formatted in-memory disk of size bytes.
func formatted(t *testing.T, size int64) (*Mem, *Superblock) {
	t.Helper()
	m := NewMem(size)
	sb, err := Format(m, FormatOptions{Label: "t"})
	if err != nil {
		t.Fatal(err)
	}
	return m, sb
}

// smash overwrites byte i of block blk with v.
func smash(t *testing.T, d Disk, blk int64, i int, v byte) {
	t.Helper()
	buf := AlignedBuf(BlockSize)
	if _, err := d.ReadAt(buf, blk*BlockSize); err != nil {
		t.Fatal(err)
	}
	buf[i] = v
	if _, err := d.WriteAt(buf, blk*BlockSize); err != nil {
		t.Fatal(err)
	}
}

func TestReadSuperblock(t *testing.T) {
	m, want := formatted(t, MinSize)
	sb, err := ReadSuperblock(m)
	if err != nil {
		t.Fatal(err)
	}
	if sb.ReadFrom != CopyA || sb.OtherCopyErr != nil || sb.UUID != want.UUID || sb.Layout != want.Layout {
		t.Fatalf("read %+v", sb)
	}
}

func TestReadSuperblockFallsBackToB(t *testing.T) {
	m, want := formatted(t, MinSize)
	smash(t, m, 0, 100, 0xee)
	sb, err := ReadSuperblock(m)
	if err != nil {
		t.Fatal(err)
	}
	if sb.ReadFrom != CopyB || sb.UUID != want.UUID || !errors.Is(sb.OtherCopyErr, ErrCorrupt) {
		t.Fatalf("read from %v, other %v", sb.ReadFrom, sb.OtherCopyErr)
	}
	if !strings.Contains(sb.OtherCopyErr.Error(), "block 0") {
		t.Fatalf("other copy error %q does not name block 0", sb.OtherCopyErr)
	}
	// WriteSuperblock repairs copy A.
	if err := WriteSuperblock(m, sb); err != nil {
		t.Fatal(err)
	}
	if sb, err = ReadSuperblock(m); err != nil || sb.ReadFrom != CopyA || sb.OtherCopyErr != nil {
		t.Fatalf("after repair: %+v, %v", sb, err)
	}
}

func TestReadSuperblockCopyBBad(t *testing.T) {
	m, _ := formatted(t, MinSize)
	smash(t, m, 1, 0, 0)
	sb, err := ReadSuperblock(m)
	if err != nil || sb.ReadFrom != CopyA || !errors.Is(sb.OtherCopyErr, ErrNotHanfs) {
		t.Fatalf("%+v, %v", sb, err)
	}
}

func TestReadSuperblockBothCorrupt(t *testing.T) {
	m, _ := formatted(t, MinSize)
	smash(t, m, 0, 100, 0xee)
	smash(t, m, 1, 200, 0xee)
	_, err := ReadSuperblock(m)
	if !errors.Is(err, ErrCorrupt) || errors.Is(err, ErrNotHanfs) {
		t.Fatalf("got %v", err)
	}
	for _, s := range []string{m.Name(), "block 0 and block 1", "checksum"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q lacks %q", err, s)
		}
	}
	if st, err := Probe(m); st != StatusDamaged || err != nil {
		t.Fatalf("Probe: %v, %v", st, err)
	}
}

func TestReadSuperblockNotHanfs(t *testing.T) {
	m := NewMem(MinSize)
	_, err := ReadSuperblock(m)
	if !errors.Is(err, ErrNotHanfs) || !strings.Contains(err.Error(), m.Name()) {
		t.Fatalf("empty disk: %v", err)
	}
	smash(t, m, 0, 0, 'x')
	if _, err := ReadSuperblock(m); !errors.Is(err, ErrNotHanfs) {
		t.Fatalf("other data: %v", err)
	}
	if _, err := ReadSuperblock(NewMem(BlockSize)); !errors.Is(err, ErrNotHanfs) {
		t.Fatalf("one-block disk: %v", err)
	}
}

func TestReadSuperblockTruncatedImage(t *testing.T) {
	path := newImage(t, 128<<20)
	d := openImage(t, path, OpenOptions{})
	if _, err := Format(d, FormatOptions{}); err != nil {
		t.Fatal(err)
	}
	d.Close()
	if err := os.Truncate(path, 96<<20); err != nil {
		t.Fatal(err)
	}
	d = openImage(t, path, OpenOptions{ReadOnly: true})
	_, err := ReadSuperblock(d)
	if !errors.Is(err, ErrTruncated) || !strings.Contains(err.Error(), path) {
		t.Fatalf("got %v", err)
	}
	if st, _ := Probe(d); st != StatusDamaged {
		t.Fatalf("Probe: %v", st)
	}
}

func TestReadSuperblockIOError(t *testing.T) {
	m, _ := formatted(t, MinSize)
	m.Close()
	if _, err := ReadSuperblock(m); !errors.Is(err, ErrClosed) || errors.Is(err, ErrCorrupt) {
		t.Fatalf("got %v", err)
	}
	if _, err := Probe(m); !errors.Is(err, ErrClosed) {
		t.Fatalf("Probe: %v", err)
	}
}
