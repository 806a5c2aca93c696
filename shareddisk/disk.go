package shareddisk

import (
	"fmt"
	"unsafe"
)

// BlockSize is the size in bytes of a block, the unit of every disk I/O.
const BlockSize = 4096

// Disk is the shared block device.
//
// ReadAt and WriteAt take offsets and lengths that are multiples of
// BlockSize; implementations reject others with an error wrapping
// ErrUnaligned, and ranges past Size with ErrOutOfRange. Both are safe for
// concurrent use.
type Disk interface {
	// ReadAt reads len(p) bytes at byte offset off.
	ReadAt(p []byte, off int64) (int, error)
	// WriteAt writes len(p) bytes at byte offset off.
	WriteAt(p []byte, off int64) (int, error)
	// Flush makes every completed write durable.
	Flush() error
	// Size returns the usable size in bytes, a multiple of BlockSize.
	Size() int64
	// Name returns the path or a description, for error messages.
	Name() string
	// Close releases the disk; later calls fail.
	Close() error
}

// AlignedBuf returns a zeroed buffer of length n whose first byte is aligned
// to BlockSize in memory, as O_DIRECT requires.
func AlignedBuf(n int) []byte {
	if n < 0 {
		n = 0
	}
	if n > 0 && n%BlockSize == 0 {
		// Go's allocator places such buffers on page boundaries (size
		// classes of whole pages in 8 KiB-aligned spans, large objects on
		// their own pages): no padding needed, half the memory for one block.
		if b := make([]byte, n); uintptr(unsafe.Pointer(unsafe.SliceData(b)))%BlockSize == 0 {
			return b
		}
	}
	raw := make([]byte, n+BlockSize)
	shift := 0
	if r := int(uintptr(unsafe.Pointer(unsafe.SliceData(raw))) % BlockSize); r != 0 {
		shift = BlockSize - r
	}
	return raw[shift : shift+n : shift+n]
}

// IsAligned reports whether p starts at a BlockSize-aligned memory address
// (an empty slice counts as aligned).
func IsAligned(p []byte) bool {
	if len(p) == 0 {
		return true
	}
	return uintptr(unsafe.Pointer(unsafe.SliceData(p)))%BlockSize == 0
}

// CheckIO validates an I/O request of length n at byte offset off against a
// disk of the given size and name: off and n must be multiples of BlockSize
// and the range must lie inside the disk. Disk implementations call it first.
func CheckIO(name string, size int64, op string, off int64, n int) error {
	if off < 0 || off%BlockSize != 0 || n%BlockSize != 0 {
		return fmt.Errorf("%s %s: offset %d length %d: %w", op, name, off, n, ErrUnaligned)
	}
	if off > size || int64(n) > size-off {
		return fmt.Errorf("%s %s: offset %d length %d beyond disk size %d: %w", op, name, off, n, size, ErrOutOfRange)
	}
	return nil
}
