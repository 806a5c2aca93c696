package fsstore

import (
	"fmt"
	"log/slog"
	"sync"

	"github.com/hanfs/hanfs/shareddisk"
)

// cowDisk is an in-memory shareddisk.Disk that starts as a copy of a
// template image without copying it: written blocks go to an overlay, unwritten
// blocks are read from the (shared, read-only) template. It stands for a fresh
// shareddisk.Mem holding the formatted image, at a cost proportional to the
// blocks a crash case touches instead of the disk's size, so that thousands of
// cases fit in the test budget. Flush does nothing: like Mem, every write is
// durable at once (volatility is faultdisk's job).
type cowDisk struct {
	base []byte
	name string

	mu     sync.RWMutex
	over   map[int64][]byte // block number -> contents
	closed bool
}

func newCowDisk(base []byte, name string) *cowDisk {
	return &cowDisk{base: base, name: name, over: make(map[int64][]byte)}
}

func (c *cowDisk) ReadAt(p []byte, off int64) (int, error) {
	if err := shareddisk.CheckIO(c.name, c.Size(), "read", off, len(p)); err != nil {
		return 0, err
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return 0, fmt.Errorf("read %s: %w", c.name, shareddisk.ErrClosed)
	}
	for i := 0; i < len(p); i += bs {
		blk := (off + int64(i)) / bs
		if b, ok := c.over[blk]; ok {
			copy(p[i:i+bs], b)
		} else {
			copy(p[i:i+bs], c.base[blk*bs:])
		}
	}
	return len(p), nil
}

func (c *cowDisk) WriteAt(p []byte, off int64) (int, error) {
	if err := shareddisk.CheckIO(c.name, c.Size(), "write", off, len(p)); err != nil {
		return 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, fmt.Errorf("write %s: %w", c.name, shareddisk.ErrClosed)
	}
	for i := 0; i < len(p); i += bs {
		blk := (off + int64(i)) / bs
		b, ok := c.over[blk]
		if !ok {
			b = make([]byte, bs)
			c.over[blk] = b
		}
		copy(b, p[i:i+bs])
	}
	return len(p), nil
}

func (c *cowDisk) Flush() error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return fmt.Errorf("flush %s: %w", c.name, shareddisk.ErrClosed)
	}
	return nil
}

func (c *cowDisk) Size() int64  { return int64(len(c.base)) }
func (c *cowDisk) Name() string { return c.name }

func (c *cowDisk) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return nil
}

// The crash template: a 64 MiB disk formatted with a 256-block journal (the
// minimum, so that the journal fills, checkpoints and wraps around every few
// dozen operations), holding one top directory per crash worker, w0..w3.
const (
	crashDiskSize      = 64 << 20
	crashJournalBlocks = 256
	crashMaxWorkers    = 4
)

type crashTemplate struct {
	img  []byte
	tops [crashMaxWorkers]Ino
	gens [crashMaxWorkers]uint64
	err  error
}

var (
	crashTmplOnce sync.Once
	crashTmpl     crashTemplate
)

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func getCrashTemplate() (*crashTemplate, error) {
	crashTmplOnce.Do(func() {
		t := &crashTmpl
		m := shareddisk.NewMem(crashDiskSize)
		if _, err := Format(m, FormatOptions{JournalBlocks: crashJournalBlocks, Label: "crash"}); err != nil {
			t.err = fmt.Errorf("format template: %w", err)
			return
		}
		s, err := Open(m, Options{Logger: quietLogger()})
		if err != nil {
			t.err = fmt.Errorf("open template: %w", err)
			return
		}
		for w := range crashMaxWorkers {
			a, err := s.Mkdir(nil, RootIno, fmt.Sprintf("w%d", w), 0o755)
			if err != nil {
				t.err = fmt.Errorf("template mkdir w%d: %w", w, err)
				s.Close()
				return
			}
			t.tops[w], t.gens[w] = a.Ino, a.Gen
		}
		if err := s.Close(); err != nil {
			t.err = fmt.Errorf("close template: %w", err)
			return
		}
		t.img = m.Bytes()
	})
	return &crashTmpl, crashTmpl.err
}
