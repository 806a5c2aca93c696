package fusemount

import (
	"context"
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/hanfs/hanfs/fsstore"
)

// Directory stream offsets: 0 is the start, 1 follows ".", 2 follows "..",
// and an entry's offset is its store cookie squeezed into 63 bits: the
// kernel keeps directory positions in a signed loff_t, and lseek(2) (hence
// seekdir(3)) refuses negative ones. A store cookie is a 56-bit name hash
// and an 8-bit index within the hash's bucket (fsstore.ReadDir), at least
// 257; dropping the index's top bit, which a bucket of fewer than 128 names
// never uses, leaves 63 bits and offsets of at least 128.
const (
	offDot    = 1
	offDotDot = 2
)

func cookieToOff(c uint64) uint64 { return c>>8<<7 | c&0x7f }
func offToCookie(o uint64) uint64 { return o>>7<<8 | o&0x7f }

// dirBatch is how many entries one store ReadDir call fetches.
const dirBatch = 256

// dirHandle is an open directory. It reads the store in batches, so a
// directory of millions of entries costs memory for one batch only, and it
// seeks by store cookie, so telldir/seekdir work.
type dirHandle struct {
	fsys *fileSystem
	ino  fsstore.Ino

	mu   sync.Mutex
	off  uint64          // offset of the next entry to return
	buf  []fuse.DirEntry // fetched entries after off
	done bool            // the store has no entries after buf
}

var (
	_ fs.FileReaddirenter = (*dirHandle)(nil)
	_ fs.FileSeekdirer    = (*dirHandle)(nil)
	_ fs.FileFsyncdirer   = (*dirHandle)(nil)
	_ fs.FileReleasedirer = (*dirHandle)(nil)
)

// Readdirent returns the next entry, or nil at the end.
func (d *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch d.off {
	case 0:
		d.off = offDot
		return &fuse.DirEntry{Name: ".", Mode: fsstore.ModeDir, Ino: uint64(d.ino), Off: offDot}, 0
	case offDot:
		parent := d.ino
		if a, err := d.fsys.store.Getattr(d.ino); err == nil && a.Parent != 0 {
			parent = a.Parent
		}
		d.off = offDotDot
		return &fuse.DirEntry{Name: "..", Mode: fsstore.ModeDir, Ino: uint64(parent), Off: offDotDot}, 0
	}
	if len(d.buf) == 0 && !d.done {
		if errno := d.fill(); errno != 0 {
			return nil, errno
		}
	}
	if len(d.buf) == 0 {
		return nil, 0
	}
	e := d.buf[0]
	d.buf = d.buf[1:]
	d.off = e.Off
	return &e, 0
}

// fill fetches the next batch of entries after d.off.
func (d *dirHandle) fill() syscall.Errno {
	cookie := offToCookie(d.off)
	if d.off == offDotDot {
		cookie = 0
	}
	d.buf = d.buf[:0]
	err := d.fsys.store.ReadDir(nil, d.ino, cookie, func(e fsstore.DirEntry) bool {
		d.buf = append(d.buf, fuse.DirEntry{Name: e.Name, Mode: e.Type, Ino: uint64(e.Ino), Off: cookieToOff(e.Cookie)})
		return len(d.buf) < dirBatch
	})
	if err != nil {
		d.buf = d.buf[:0]
		return d.fsys.errno("readdir", d.ino, err)
	}
	d.done = len(d.buf) < dirBatch
	return 0
}

// Seekdir moves to an offset returned earlier (or 0, the start).
func (d *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	d.mu.Lock()
	defer d.mu.Unlock()
	if off == d.off {
		return 0
	}
	d.off = off
	d.buf = d.buf[:0]
	d.done = false
	return 0
}

// Fsyncdir: directory operations are durable when they return.
func (d *dirHandle) Fsyncdir(ctx context.Context, flags uint32) syscall.Errno {
	return d.fsys.fsync("fsyncdir", d.ino)
}

// Releasedir drops the buffered entries.
func (d *dirHandle) Releasedir(ctx context.Context, releaseFlags uint32) {
	d.mu.Lock()
	d.buf = nil
	d.mu.Unlock()
}
