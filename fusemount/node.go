package fusemount

import (
	"context"
	"log/slog"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/hanfs/hanfs/fsstore"
	"github.com/hanfs/hanfs/shareddisk"
)

// fileSystem is what every node of one mount shares.
type fileSystem struct {
	store        *fsstore.Store
	log          *slog.Logger
	entryTimeout time.Duration
	attrTimeout  time.Duration
}

// node is the FUSE inode of one store inode. It holds no state of its own:
// the inode number and generation are its StableAttr.
type node struct {
	fs.Inode
	fsys *fileSystem
}

var (
	_ fs.NodeLookuper       = (*node)(nil)
	_ fs.NodeGetattrer      = (*node)(nil)
	_ fs.NodeSetattrer      = (*node)(nil)
	_ fs.NodeCreater        = (*node)(nil)
	_ fs.NodeMkdirer        = (*node)(nil)
	_ fs.NodeMknoder        = (*node)(nil)
	_ fs.NodeSymlinker      = (*node)(nil)
	_ fs.NodeReadlinker     = (*node)(nil)
	_ fs.NodeLinker         = (*node)(nil)
	_ fs.NodeUnlinker       = (*node)(nil)
	_ fs.NodeRmdirer        = (*node)(nil)
	_ fs.NodeRenamer        = (*node)(nil)
	_ fs.NodeOpener         = (*node)(nil)
	_ fs.NodeOpendirHandler = (*node)(nil)
	_ fs.NodeStatfser       = (*node)(nil)
	_ fs.NodeFsyncer        = (*node)(nil)
)

func (n *node) ino() fsstore.Ino { return fsstore.Ino(n.StableAttr().Ino) }

// op returns the Op of a mutation that needs no owner: the kernel has
// checked permissions (default_permissions).
func op() *fsstore.Op { return &fsstore.Op{} }

// errno maps a store error to the errno for the kernel, logging what the
// kernel will only see as EIO.
func (fsys *fileSystem) errno(what string, ino fsstore.Ino, err error) syscall.Errno {
	e := toErrno(err)
	if e == syscall.EIO {
		fsys.log.Error("fuse request failed", "op", what, "ino", uint64(ino), "err", err)
	}
	return e
}

// child returns the FUSE inode for a, filling out.
func (n *node) child(ctx context.Context, a *fsstore.Attr, out *fuse.EntryOut) *fs.Inode {
	n.fsys.fillEntry(a, out)
	return n.NewInode(ctx, &node{fsys: n.fsys}, fs.StableAttr{
		Mode: a.Mode & fsstore.ModeType,
		Ino:  uint64(a.Ino),
		Gen:  a.Gen,
	})
}

func (fsys *fileSystem) fillEntry(a *fsstore.Attr, out *fuse.EntryOut) {
	fillAttr(a, &out.Attr)
	out.SetEntryTimeout(fsys.entryTimeout)
	out.SetAttrTimeout(fsys.attrTimeout)
}

func fillAttr(a *fsstore.Attr, out *fuse.Attr) {
	out.Ino = uint64(a.Ino)
	out.Size = a.Size
	out.Blocks = a.Blocks * (shareddisk.BlockSize / 512)
	out.Mode = a.Mode
	out.Nlink = a.Nlink
	out.Uid = a.UID
	out.Gid = a.GID
	out.Rdev = uint32(a.Rdev)
	out.Blksize = shareddisk.BlockSize
	out.Atime, out.Atimensec = unixTime(a.Atime)
	out.Mtime, out.Mtimensec = unixTime(a.Mtime)
	out.Ctime, out.Ctimensec = unixTime(a.Ctime)
}

func unixTime(t time.Time) (uint64, uint32) {
	if t.IsZero() || t.Unix() < 0 {
		return 0, 0
	}
	return uint64(t.Unix()), uint32(t.Nanosecond())
}

// Lookup finds name in the directory.
func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	a, err := n.fsys.store.Lookup(nil, n.ino(), name)
	if err != nil {
		return nil, n.fsys.errno("lookup", n.ino(), err)
	}
	return n.child(ctx, &a, out), 0
}

// Getattr returns the inode's attributes.
func (n *node) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	a, err := n.fsys.store.Getattr(n.ino())
	if err != nil {
		return n.fsys.errno("getattr", n.ino(), err)
	}
	fillAttr(&a, &out.Attr)
	out.SetTimeout(n.fsys.attrTimeout)
	return 0
}

// Setattr implements chmod, chown, truncate and utimens.
func (n *node) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	var sa fsstore.SetAttr
	if m, ok := in.GetMode(); ok {
		sa.Mode = &m
	}
	if uid, ok := in.GetUID(); ok {
		sa.UID = &uid
	}
	if gid, ok := in.GetGID(); ok {
		sa.GID = &gid
	}
	if size, ok := in.GetSize(); ok {
		sa.Size = &size
	}
	if in.Valid&fuse.FATTR_ATIME != 0 {
		if in.Valid&fuse.FATTR_ATIME_NOW != 0 {
			sa.AtimeNow = true
		} else {
			t := time.Unix(int64(in.Atime), int64(in.Atimensec))
			sa.Atime = &t
		}
	}
	if in.Valid&fuse.FATTR_MTIME != 0 {
		if in.Valid&fuse.FATTR_MTIME_NOW != 0 {
			sa.MtimeNow = true
		} else {
			t := time.Unix(int64(in.Mtime), int64(in.Mtimensec))
			sa.Mtime = &t
		}
	}
	a, err := n.fsys.store.Setattr(op(), n.ino(), sa)
	if err != nil {
		return n.fsys.errno("setattr", n.ino(), err)
	}
	fillAttr(&a, &out.Attr)
	out.SetTimeout(n.fsys.attrTimeout)
	return 0
}

// Create creates and opens a regular file.
func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	cm := fsstore.CreateUnchecked
	if flags&syscall.O_EXCL != 0 {
		cm = fsstore.CreateGuarded
	}
	a, err := n.fsys.store.Create(ownerOp(ctx), n.ino(), name, mode&fsstore.ModePerm, cm, 0)
	if err != nil {
		return nil, nil, 0, n.fsys.errno("create", n.ino(), err)
	}
	if flags&syscall.O_TRUNC != 0 && a.Size != 0 {
		// Unchecked create of a name that appeared since the kernel's lookup.
		zero := uint64(0)
		if a, err = n.fsys.store.Setattr(op(), a.Ino, fsstore.SetAttr{Size: &zero}); err != nil {
			return nil, nil, 0, n.fsys.errno("create", a.Ino, err)
		}
	}
	child := n.child(ctx, &a, out)
	return child, n.fsys.open(a.Ino), 0, 0
}

// Mkdir creates a directory.
func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	a, err := n.fsys.store.Mkdir(ownerOp(ctx), n.ino(), name, mode&fsstore.ModePerm)
	if err != nil {
		return nil, n.fsys.errno("mkdir", n.ino(), err)
	}
	return n.child(ctx, &a, out), 0
}

// Mknod creates a device, fifo, socket or regular file.
func (n *node) Mknod(ctx context.Context, name string, mode uint32, dev uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	a, err := n.fsys.store.Mknod(ownerOp(ctx), n.ino(), name, mode, uint64(dev))
	if err != nil {
		return nil, n.fsys.errno("mknod", n.ino(), err)
	}
	return n.child(ctx, &a, out), 0
}

// Symlink creates a symbolic link.
func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	a, err := n.fsys.store.Symlink(ownerOp(ctx), n.ino(), name, target)
	if err != nil {
		return nil, n.fsys.errno("symlink", n.ino(), err)
	}
	return n.child(ctx, &a, out), 0
}

// Readlink returns a symlink's target.
func (n *node) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	t, err := n.fsys.store.Readlink(n.ino())
	if err != nil {
		return nil, n.fsys.errno("readlink", n.ino(), err)
	}
	return []byte(t), 0
}

// Link adds a hard link to target in this directory.
func (n *node) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	ino := fsstore.Ino(target.EmbeddedInode().StableAttr().Ino)
	a, err := n.fsys.store.Link(op(), ino, n.ino(), name)
	if err != nil {
		return nil, n.fsys.errno("link", ino, err)
	}
	return n.child(ctx, &a, out), 0
}

// Unlink removes a non-directory name.
func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	if err := n.fsys.store.Unlink(op(), n.ino(), name); err != nil {
		return n.fsys.errno("unlink", n.ino(), err)
	}
	return 0
}

// Rmdir removes an empty directory.
func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	if err := n.fsys.store.Rmdir(op(), n.ino(), name); err != nil {
		return n.fsys.errno("rmdir", n.ino(), err)
	}
	return 0
}

// renameNoreplace and renameExchange are the renameat2 flags.
const (
	renameNoreplace = 1 << 0
	renameExchange  = 1 << 1
)

// Rename moves name to newName in newParent, replacing what is there.
// RENAME_NOREPLACE is honoured with a lookup first (not atomic against a
// concurrent create of the target through another path); RENAME_EXCHANGE
// and other flags are not supported.
func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	ndir := fsstore.Ino(newParent.EmbeddedInode().StableAttr().Ino)
	switch flags {
	case 0:
	case renameNoreplace:
		_, err := n.fsys.store.Lookup(nil, ndir, newName)
		if err == nil {
			return syscall.EEXIST
		}
		if e := toErrno(err); e != syscall.ENOENT {
			return n.fsys.errno("rename", ndir, err)
		}
	default:
		return syscall.EINVAL
	}
	if err := n.fsys.store.Rename(op(), n.ino(), name, ndir, newName); err != nil {
		return n.fsys.errno("rename", n.ino(), err)
	}
	return 0
}

// Open opens a file; the store keeps an unlinked file alive while it is
// open.
func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	return n.fsys.open(n.ino()), 0, 0
}

// OpendirHandle opens a directory for reading.
func (n *node) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	return &dirHandle{fsys: n.fsys, ino: n.ino()}, 0, 0
}

// Fsync without a file handle (the kernel sends one for every fsync(2) on
// an open file; this is the fallback).
func (n *node) Fsync(ctx context.Context, f fs.FileHandle, flags uint32) syscall.Errno {
	return n.fsys.fsync("fsync", n.ino())
}

// fsync answers fsync(2): every store call that returned is durable already
// (DESIGN.md invariant 3), so there is nothing to wait for; it reports a
// store that has stopped, whose earlier writes may be lost.
func (fsys *fileSystem) fsync(what string, ino fsstore.Ino) syscall.Errno {
	if err := fsys.store.Err(); err != nil {
		return fsys.errno(what, ino, err)
	}
	return 0
}

// Statfs reports space and inode usage.
func (n *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	st := n.fsys.store.StatFS()
	bs := st.BlockSize
	if bs == 0 {
		bs = shareddisk.BlockSize
	}
	out.Bsize = bs
	out.Frsize = bs
	out.Blocks = st.TotalBlocks
	out.Bfree = st.FreeBlocks
	out.Bavail = st.FreeBlocks
	out.Files = st.Files + st.FreeFiles
	out.Ffree = st.FreeFiles
	out.NameLen = fsstore.MaxNameLen
	return 0
}
