package shareddisk

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// OpenOptions tunes OpenFile.
type OpenOptions struct {
	// ReadOnly opens the disk O_RDONLY; writes then fail with ErrReadOnly.
	ReadOnly bool
	// AllowBuffered falls back to buffered I/O when the file system refuses
	// O_DIRECT (tmpfs). Only for single-machine tests: a buffered reader may
	// miss what another machine wrote (DESIGN.md invariant 8).
	AllowBuffered bool
}

// File is a Disk backed by an image file or a block device, opened with
// O_DIRECT. Its methods are safe for concurrent use.
type File struct {
	f        *os.File
	raw      syscall.RawConn
	path     string
	size     int64
	readOnly bool
	direct   bool
}

// OpenFile opens the image file or block device at path for direct I/O.
func OpenFile(path string, opt OpenOptions) (*File, error) {
	flags := os.O_RDWR
	if opt.ReadOnly {
		flags = os.O_RDONLY
	}
	d, err := openFile(path, flags|unix.O_DIRECT, opt.ReadOnly, true)
	if err == nil {
		return d, nil
	}
	if !errors.Is(err, ErrDirectIOUnsupported) || !opt.AllowBuffered {
		return nil, err
	}
	return openFile(path, flags, opt.ReadOnly, false)
}

// openFile opens path with flags, sizes it and, for direct I/O, checks with
// one read that the file system really accepts O_DIRECT.
func openFile(path string, flags int, readOnly, direct bool) (*File, error) {
	f, err := os.OpenFile(path, flags, 0)
	if err != nil {
		if direct && errors.Is(err, unix.EINVAL) {
			return nil, fmt.Errorf("open %s: %w (the file system refused O_DIRECT; put the image on ext4 or xfs, not tmpfs): %w",
				path, ErrDirectIOUnsupported, err)
		}
		return nil, fmt.Errorf("open disk %s: %w", path, err)
	}
	d := &File{f: f, path: path, readOnly: readOnly, direct: direct}
	if d.raw, err = f.SyscallConn(); err != nil {
		f.Close()
		return nil, fmt.Errorf("open disk %s: %w", path, err)
	}
	if d.size, err = d.statSize(); err != nil {
		f.Close()
		return nil, err
	}
	if direct && d.size >= BlockSize {
		if _, err := f.ReadAt(AlignedBuf(BlockSize), 0); err != nil {
			f.Close()
			if errors.Is(err, unix.EINVAL) {
				return nil, fmt.Errorf("open %s: read of block 0: %w (the file system refused O_DIRECT I/O): %w",
					path, ErrDirectIOUnsupported, err)
			}
			return nil, fmt.Errorf("open disk %s: read of block 0: %w", path, err)
		}
	}
	return d, nil
}

// statSize returns the usable size of the open file or block device, rounded
// down to a multiple of BlockSize.
func (d *File) statSize() (int64, error) {
	var st unix.Stat_t
	var size uint64
	var err error
	cerr := d.raw.Control(func(fd uintptr) {
		if err = unix.Fstat(int(fd), &st); err != nil {
			err = fmt.Errorf("fstat: %w", err)
			return
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			size = uint64(st.Size)
		case unix.S_IFBLK:
			_, _, errno := unix.Syscall(unix.SYS_IOCTL, fd, unix.BLKGETSIZE64, uintptr(unsafe.Pointer(&size)))
			if errno != 0 {
				err = fmt.Errorf("ioctl BLKGETSIZE64: %w", errno)
			}
		default:
			err = fmt.Errorf("not a regular file or block device (mode %#o)", st.Mode)
		}
	})
	if cerr != nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("size of disk %s: %w", d.path, err)
	}
	size -= size % BlockSize
	if size > 1<<62 {
		return 0, fmt.Errorf("size of disk %s: implausible size %d", d.path, size)
	}
	return int64(size), nil
}

// ReadAt reads len(p) bytes at offset off with pread. An unaligned p is read
// through an aligned bounce buffer.
func (d *File) ReadAt(p []byte, off int64) (int, error) {
	if err := CheckIO(d.path, d.size, "read", off, len(p)); err != nil {
		return 0, err
	}
	if len(p) == 0 {
		return 0, nil
	}
	buf := p
	bounce := d.direct && !IsAligned(p)
	if bounce {
		buf = AlignedBuf(len(p))
	}
	n, err := d.f.ReadAt(buf, off)
	if err != nil {
		return n, fmt.Errorf("read %s at offset %d length %d: %w", d.path, off, len(p), closedErr(err))
	}
	if bounce {
		copy(p, buf)
	}
	return n, nil
}

// WriteAt writes p at offset off with pwrite. An unaligned p is written
// through an aligned bounce buffer.
func (d *File) WriteAt(p []byte, off int64) (int, error) {
	if d.readOnly {
		return 0, fmt.Errorf("write %s at offset %d: %w", d.path, off, ErrReadOnly)
	}
	if err := CheckIO(d.path, d.size, "write", off, len(p)); err != nil {
		return 0, err
	}
	if len(p) == 0 {
		return 0, nil
	}
	buf := p
	if d.direct && !IsAligned(p) {
		buf = AlignedBuf(len(p))
		copy(buf, p)
	}
	n, err := d.f.WriteAt(buf, off)
	if err != nil {
		return n, fmt.Errorf("write %s at offset %d length %d: %w", d.path, off, len(p), closedErr(err))
	}
	return n, nil
}

// Flush makes every completed write durable with fdatasync.
func (d *File) Flush() error {
	var err error
	if cerr := d.raw.Control(func(fd uintptr) {
		for {
			err = unix.Fdatasync(int(fd))
			if err != unix.EINTR {
				return
			}
		}
	}); cerr != nil {
		err = closedErr(cerr)
	}
	if err != nil {
		return fmt.Errorf("flush %s: fdatasync: %w", d.path, err)
	}
	return nil
}

// Size returns the usable size in bytes, rounded down to BlockSize.
func (d *File) Size() int64 { return d.size }

// Name returns the path the disk was opened with.
func (d *File) Name() string { return d.path }

// Direct reports whether the disk was opened with O_DIRECT.
func (d *File) Direct() bool { return d.direct }

// Close closes the file; it does not flush.
func (d *File) Close() error {
	if err := d.f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", d.path, err)
	}
	return nil
}

// CreateImage creates a sparse image file of size bytes at path. It refuses
// an existing path and a size that is not a positive multiple of BlockSize.
func CreateImage(path string, size int64) error {
	if size <= 0 || size%BlockSize != 0 {
		return fmt.Errorf("create image %s: size %d is not a positive multiple of %d", path, size, BlockSize)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create image %s: %w", path, err)
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("create image %s: set size %d: %w", path, size, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("create image %s: sync: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("create image %s: close: %w", path, err)
	}
	return nil
}

// closedErr adds ErrClosed to an error that says the file was closed.
func closedErr(err error) error {
	if errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return err
}
