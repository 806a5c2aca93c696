package shareddisk

import (
	"fmt"
	"sync"
)

// Mem is an in-memory Disk for tests. It is safe for concurrent use; Flush
// does nothing because every write is "durable" at once.
type Mem struct {
	mu     sync.RWMutex
	data   []byte
	closed bool
	name   string
}

// NewMem returns a zeroed in-memory disk of size bytes, rounded down to a
// multiple of BlockSize (a negative size gives an empty disk).
func NewMem(size int64) *Mem {
	if size < 0 {
		size = 0
	}
	size -= size % BlockSize
	return &Mem{data: make([]byte, size), name: fmt.Sprintf("mem(%d bytes)", size)}
}

// ReadAt copies len(p) bytes at offset off into p.
func (m *Mem) ReadAt(p []byte, off int64) (int, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return 0, fmt.Errorf("read %s: %w", m.name, ErrClosed)
	}
	if err := CheckIO(m.name, int64(len(m.data)), "read", off, len(p)); err != nil {
		return 0, err
	}
	return copy(p, m.data[off:]), nil
}

// WriteAt copies p to offset off.
func (m *Mem) WriteAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 0, fmt.Errorf("write %s: %w", m.name, ErrClosed)
	}
	if err := CheckIO(m.name, int64(len(m.data)), "write", off, len(p)); err != nil {
		return 0, err
	}
	return copy(m.data[off:], p), nil
}

// Flush does nothing except report a closed disk.
func (m *Mem) Flush() error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return fmt.Errorf("flush %s: %w", m.name, ErrClosed)
	}
	return nil
}

// Size returns the size in bytes.
func (m *Mem) Size() int64 { return int64(len(m.data)) }

// Name returns a description of the disk.
func (m *Mem) Name() string { return m.name }

// Close marks the disk closed; later I/O fails with ErrClosed.
func (m *Mem) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}

// Bytes returns a copy of the whole disk contents.
func (m *Mem) Bytes() []byte {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return append([]byte(nil), m.data...)
}
