package shareddisk

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// newImage creates an image of size bytes in a temp dir and returns its path.
func newImage(t *testing.T, size int64) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "disk.img")
	if err := CreateImage(path, size); err != nil {
		t.Fatal(err)
	}
	return path
}

// openImage opens path with O_DIRECT and closes it at the end of the test.
func openImage(t *testing.T, path string, opt OpenOptions) *File {
	t.Helper()
	d, err := OpenFile(path, opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestFileReadBackAfterReopen(t *testing.T) {
	path := newImage(t, 1<<20)
	d := openImage(t, path, OpenOptions{})
	if !d.Direct() || d.Size() != 1<<20 || d.Name() != path {
		t.Fatalf("direct %v size %d name %q", d.Direct(), d.Size(), d.Name())
	}
	aligned := AlignedBuf(2 * BlockSize)
	for i := range aligned {
		aligned[i] = byte(i * 7)
	}
	if _, err := d.WriteAt(aligned, 4*BlockSize); err != nil {
		t.Fatal(err)
	}
	// An unaligned caller buffer goes through a bounce buffer.
	raw := make([]byte, BlockSize+1)
	unaligned := raw[1:]
	if IsAligned(unaligned) {
		t.Fatal("test buffer unexpectedly aligned")
	}
	copy(unaligned, bytes.Repeat([]byte("hanfs"), BlockSize))
	if _, err := d.WriteAt(unaligned, 10*BlockSize); err != nil {
		t.Fatal(err)
	}
	if err := d.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.ReadAt(aligned, 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}

	d2 := openImage(t, path, OpenOptions{ReadOnly: true})
	got := AlignedBuf(2 * BlockSize)
	if _, err := d2.ReadAt(got, 4*BlockSize); err != nil || !bytes.Equal(got, aligned) {
		t.Fatalf("read back aligned: %v", err)
	}
	raw2 := make([]byte, BlockSize+3)
	if _, err := d2.ReadAt(raw2[3:], 10*BlockSize); err != nil || !bytes.Equal(raw2[3:], unaligned) {
		t.Fatalf("read back unaligned: %v", err)
	}
	if _, err := d2.WriteAt(got, 0); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("write to read-only disk: %v", err)
	}
}

func TestFileRejectsBadIO(t *testing.T) {
	path := newImage(t, 1<<20)
	d := openImage(t, path, OpenOptions{})
	buf := AlignedBuf(BlockSize)
	if _, err := d.ReadAt(buf, 100); !errors.Is(err, ErrUnaligned) || !strings.Contains(err.Error(), path) {
		t.Fatalf("unaligned offset: %v", err)
	}
	if _, err := d.WriteAt(buf[:512], 0); !errors.Is(err, ErrUnaligned) {
		t.Fatalf("unaligned length: %v", err)
	}
	if _, err := d.WriteAt(buf, 1<<20); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("write past end: %v", err)
	}
	if st, _ := os.Stat(path); st.Size() != 1<<20 {
		t.Fatalf("image grew to %d", st.Size())
	}
}

func TestFileConcurrent(t *testing.T) {
	d := openImage(t, newImage(t, 1<<20), OpenOptions{})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := AlignedBuf(BlockSize)
			r := AlignedBuf(BlockSize)
			for j := range 50 {
				w[0], w[BlockSize-1] = byte(i), byte(j)
				if _, err := d.WriteAt(w, int64(i)*BlockSize); err != nil {
					t.Error(err)
					return
				}
				if _, err := d.ReadAt(r, int64(i)*BlockSize); err != nil || !bytes.Equal(r, w) {
					t.Errorf("goroutine %d: read back %v", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestCreateImage(t *testing.T) {
	path := newImage(t, 1<<30)
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	if st.Size != 1<<30 || st.Blocks*512 > 1<<20 {
		t.Fatalf("image size %d, allocated %d bytes: not sparse", st.Size, st.Blocks*512)
	}
	if err := CreateImage(path, 1<<20); err == nil {
		t.Fatal("CreateImage over an existing file succeeded")
	}
	if err := CreateImage(path+"2", 1000); err == nil {
		t.Fatal("CreateImage of unaligned size succeeded")
	}
}

func TestOpenFileErrors(t *testing.T) {
	if _, err := OpenFile(filepath.Join(t.TempDir(), "missing"), OpenOptions{}); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("missing file: %v", err)
	}
	if _, err := OpenFile(t.TempDir(), OpenOptions{ReadOnly: true}); err == nil {
		t.Fatal("opening a directory succeeded")
	}
}

func TestOpenFileTmpfs(t *testing.T) {
	var fs unix.Statfs_t
	if err := unix.Statfs("/dev/shm", &fs); err != nil || fs.Type != unix.TMPFS_MAGIC {
		t.Skip("no tmpfs at /dev/shm")
	}
	dir, err := os.MkdirTemp("/dev/shm", "shareddisk-test")
	if err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "disk.img")
	if err := CreateImage(path, 1<<20); err != nil {
		t.Fatal(err)
	}
	d, err := OpenFile(path, OpenOptions{})
	if err == nil {
		d.Close()
		t.Skip("this tmpfs accepts O_DIRECT")
	}
	if !errors.Is(err, ErrDirectIOUnsupported) || !strings.Contains(err.Error(), path) {
		t.Fatalf("tmpfs without AllowBuffered: %v", err)
	}
	d = openImage(t, path, OpenOptions{AllowBuffered: true})
	if d.Direct() {
		t.Fatal("buffered fallback claims O_DIRECT")
	}
	raw := make([]byte, BlockSize+1)
	if _, err := d.WriteAt(raw[1:], 0); err != nil {
		t.Fatal(err)
	}
}
