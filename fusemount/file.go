package fusemount

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/hanfs/hanfs/fsstore"
)

// fileHandle is an open regular file (or other non-directory). It pins its
// inode, so that the store keeps an unlinked file until the last close.
type fileHandle struct {
	fsys *fileSystem
	ino  fsstore.Ino
	once sync.Once
}

var (
	_ fs.FileReader   = (*fileHandle)(nil)
	_ fs.FileWriter   = (*fileHandle)(nil)
	_ fs.FileFlusher  = (*fileHandle)(nil)
	_ fs.FileFsyncer  = (*fileHandle)(nil)
	_ fs.FileReleaser = (*fileHandle)(nil)
)

func (fsys *fileSystem) open(ino fsstore.Ino) *fileHandle {
	fsys.store.Pin(ino)
	return &fileHandle{fsys: fsys, ino: ino}
}

// Read reads from the store; a short read at the end of the file is EOF.
func (f *fileHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	n, _, err := f.fsys.store.Read(nil, f.ino, dest, off)
	if err != nil {
		return nil, f.fsys.errno("read", f.ino, err)
	}
	return fuse.ReadResultData(dest[:n]), 0
}

// Write writes to the store; the data is durable when it returns.
func (f *fileHandle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	if _, err := f.fsys.store.Write(op(), f.ino, data, off); err != nil {
		return 0, f.fsys.errno("write", f.ino, err)
	}
	return uint32(len(data)), 0
}

// Flush is called on every close(2); writes are already durable.
func (f *fileHandle) Flush(ctx context.Context) syscall.Errno { return 0 }

// Fsync has nothing to flush: every write was durable when it returned.
func (f *fileHandle) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	return f.fsys.fsync("fsync", f.ino)
}

// Release unpins the inode after the last close of this open.
func (f *fileHandle) Release(ctx context.Context) syscall.Errno {
	f.once.Do(func() { f.fsys.store.Unpin(f.ino) })
	return 0
}

// toErrno maps a store error to an errno (see fsstore.ToErrno).
func toErrno(err error) syscall.Errno {
	if errors.Is(err, context.Canceled) {
		return syscall.EINTR
	}
	return fsstore.ToErrno(err)
}

// ownerOp returns the Op for a call that creates an object, with the
// caller's identity so that the object gets the caller's uid and gid. The
// superuser maps to a nil Cred (no checks, owner root). Supplementary
// groups, which FUSE does not pass, are read from /proc so that the store's
// permission check agrees with the kernel's.
func ownerOp(ctx context.Context) *fsstore.Op {
	caller, ok := fuse.FromContext(ctx)
	if !ok || (caller.Uid == 0 && caller.Gid == 0) {
		return op()
	}
	return &fsstore.Op{Cred: &fsstore.Cred{UID: caller.Uid, GID: caller.Gid, Groups: procGroups(caller.Pid)}}
}

// procGroups returns the supplementary groups of process pid, or nil.
func procGroups(pid uint32) []uint32 {
	if pid == 0 {
		return nil
	}
	b, err := os.ReadFile("/proc/" + strconv.FormatUint(uint64(pid), 10) + "/status")
	if err != nil {
		return nil
	}
	for line := range strings.Lines(string(b)) {
		rest, ok := strings.CutPrefix(line, "Groups:")
		if !ok {
			continue
		}
		var groups []uint32
		for _, f := range strings.Fields(rest) {
			if g, err := strconv.ParseUint(f, 10, 32); err == nil {
				groups = append(groups, uint32(g))
			}
		}
		return groups
	}
	return nil
}
