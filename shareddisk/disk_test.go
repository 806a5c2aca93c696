package shareddisk

import (
	"bytes"
	"errors"
	"sync"
	"testing"
)

func TestAlignedBuf(t *testing.T) {
	for _, n := range []int{0, 1, 512, 4096, 2 * 4096, 3 * 4096, 5 * 4096, 7 * 4096, 9 * 4096, 1 << 20, 1<<20 + 4096} {
		b := AlignedBuf(n)
		if len(b) != n || cap(b) != n {
			t.Fatalf("AlignedBuf(%d): len %d cap %d", n, len(b), cap(b))
		}
		if !IsAligned(b) {
			t.Fatalf("AlignedBuf(%d) not aligned", n)
		}
		for _, c := range b {
			if c != 0 {
				t.Fatalf("AlignedBuf(%d) not zeroed", n)
			}
		}
	}
	if b := AlignedBuf(-5); len(b) != 0 {
		t.Fatalf("AlignedBuf(-5) has len %d", len(b))
	}
}

func TestCheckIO(t *testing.T) {
	const size = 16 * BlockSize
	cases := []struct {
		off  int64
		n    int
		want error
	}{
		{0, BlockSize, nil},
		{0, 0, nil},
		{size - BlockSize, BlockSize, nil},
		{size, 0, nil},
		{1, BlockSize, ErrUnaligned},
		{0, 100, ErrUnaligned},
		{-BlockSize, BlockSize, ErrUnaligned},
		{size, BlockSize, ErrOutOfRange},
		{size - BlockSize, 2 * BlockSize, ErrOutOfRange},
		{size + BlockSize, 0, ErrOutOfRange},
	}
	for _, c := range cases {
		err := CheckIO("d0", size, "read", c.off, c.n)
		if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("CheckIO(off %d, n %d) = %v, want %v", c.off, c.n, err, c.want)
		}
		if err != nil && !bytes.Contains([]byte(err.Error()), []byte("d0")) {
			t.Errorf("error %q does not name the disk", err)
		}
	}
}

func TestMem(t *testing.T) {
	m := NewMem(64*BlockSize + 100)
	if m.Size() != 64*BlockSize {
		t.Fatalf("size %d", m.Size())
	}
	p := bytes.Repeat([]byte{7}, 2*BlockSize)
	if _, err := m.WriteAt(p, 3*BlockSize); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 2*BlockSize)
	if _, err := m.ReadAt(got, 3*BlockSize); err != nil || !bytes.Equal(got, p) {
		t.Fatalf("read back: %v", err)
	}
	if _, err := m.WriteAt(p[:10], 0); !errors.Is(err, ErrUnaligned) {
		t.Fatalf("unaligned write: %v", err)
	}
	if _, err := m.ReadAt(got, 63*BlockSize); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("read past end: %v", err)
	}
	b := m.Bytes()
	b[3*BlockSize] = 0
	if m.Bytes()[3*BlockSize] != 7 {
		t.Fatal("Bytes is not a copy")
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, BlockSize)
			for range 100 {
				m.WriteAt(buf, int64(i)*BlockSize)
				m.ReadAt(buf, int64(i+8)*BlockSize)
			}
		}()
	}
	wg.Wait()
	m.Close()
	if _, err := m.ReadAt(got, 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}
	if err := m.Flush(); !errors.Is(err, ErrClosed) {
		t.Fatalf("flush after close: %v", err)
	}
}
