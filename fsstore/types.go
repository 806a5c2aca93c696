package fsstore

import (
	"errors"
	"syscall"
	"time"
)

// Ino is an inode number. Inode numbers are never reused on a disk.
type Ino uint64

// RootIno is the root directory's inode number.
const RootIno Ino = 1

// File type bits of Attr.Mode (the POSIX S_IF* values).
const (
	ModeType    = syscall.S_IFMT
	ModeRegular = syscall.S_IFREG
	ModeDir     = syscall.S_IFDIR
	ModeSymlink = syscall.S_IFLNK
	ModeChar    = syscall.S_IFCHR
	ModeBlock   = syscall.S_IFBLK
	ModeFIFO    = syscall.S_IFIFO
	ModeSocket  = syscall.S_IFSOCK
	ModePerm    = 0o7777 // permission, setuid, setgid and sticky bits
)

// MaxNameLen is the longest file name accepted.
const MaxNameLen = 255

// MaxSymlinkLen is the longest symlink target accepted.
const MaxSymlinkLen = 1023

// MaxFileSize is the largest file size accepted (8 TiB).
const MaxFileSize = 8 << 40

// Errors returned by the store. Every error the store returns wraps either one
// of these or a syscall.Errno, so callers map them with errors.Is.
var (
	ErrNotExist = syscall.ENOENT
	ErrExist    = syscall.EEXIST
	ErrNotDir   = syscall.ENOTDIR
	ErrIsDir    = syscall.EISDIR
	ErrNotEmpty = syscall.ENOTEMPTY
	ErrPerm     = syscall.EPERM
	ErrAccess   = syscall.EACCES
	ErrInvalid  = syscall.EINVAL
	ErrNameLong = syscall.ENAMETOOLONG
	ErrNoSpace  = syscall.ENOSPC
	ErrFBig     = syscall.EFBIG
	ErrXDev     = syscall.EXDEV
	ErrMLink    = syscall.EMLINK
	ErrLoop     = syscall.ELOOP
	// ErrStale means the inode number or generation names no live object.
	ErrStale = syscall.ESTALE
	// ErrIO reports corruption or a failed disk.
	ErrIO = syscall.EIO
)

// ErrCorrupt is wrapped (together with ErrIO) by errors caused by invalid
// on-disk metadata.
var ErrCorrupt = errors.New("file system metadata corrupt")

// Attr holds an inode's attributes.
type Attr struct {
	Ino    Ino
	Gen    uint64 // generation: unique per created object, part of file handles
	Mode   uint32 // type (ModeType bits) and permissions
	Nlink  uint32
	UID    uint32
	GID    uint32
	Size   uint64
	Blocks uint64 // data blocks allocated (4096 bytes each)
	Rdev   uint64 // device number for character and block devices
	Atime  time.Time
	Mtime  time.Time
	Ctime  time.Time
	Parent Ino // for directories: the parent directory (the root is its own parent)
}

// IsDir reports whether the inode is a directory.
func (a *Attr) IsDir() bool { return a.Mode&ModeType == ModeDir }

// IsRegular reports whether the inode is a regular file.
func (a *Attr) IsRegular() bool { return a.Mode&ModeType == ModeRegular }

// IsSymlink reports whether the inode is a symbolic link.
func (a *Attr) IsSymlink() bool { return a.Mode&ModeType == ModeSymlink }

// Cred is the identity a request runs as. A nil *Cred skips permission checks
// (the local superuser, FUSE with default_permissions, internal callers).
type Cred struct {
	UID    uint32
	GID    uint32
	Groups []uint32
}

// Op carries what a mutating call needs besides its arguments.
type Op struct {
	Cred *Cred
	// Record, when set, is stored in the same journal transaction as the
	// operation's effect (the NFS duplicate-request cache).
	Record *Record
}

// Record is a small keyed value stored atomically with an operation.
type Record struct {
	Key [16]byte
	// Encode builds the value from the operation's result (the attributes of
	// the object created, changed or removed; zero Attr when there is none).
	Encode func(res Attr) []byte
}

func (op *Op) cred() *Cred {
	if op == nil {
		return nil
	}
	return op.Cred
}

// SetAttr says which attributes Setattr changes; nil fields stay as they are.
type SetAttr struct {
	Mode     *uint32 // permission bits only
	UID      *uint32
	GID      *uint32
	Size     *uint64
	Atime    *time.Time
	Mtime    *time.Time
	AtimeNow bool // set atime to the server's time
	MtimeNow bool
	// Guard, when set, makes Setattr fail with ErrGuard unless the inode's
	// ctime equals it (NFSv3 guarded SETATTR).
	Guard *time.Time
}

// ErrGuard is returned by a guarded Setattr whose guard does not match.
var ErrGuard = errors.New("setattr guard mismatch")

// CreateMode says how Create treats an existing name.
type CreateMode int

// Create modes (NFSv3 UNCHECKED, GUARDED and EXCLUSIVE).
const (
	CreateUnchecked CreateMode = iota // open the existing file (truncating if Size is set)
	CreateGuarded                     // fail with ErrExist if the name exists
	CreateExclusive                   // like Guarded, but a file created with the same Verf is a success
)

// DirEntry is one name in a directory.
type DirEntry struct {
	Name   string
	Ino    Ino
	Type   uint32 // ModeType bits of the target
	Cookie uint64 // position after this entry: pass it to ReadDir to continue
}

// StatFS describes space and inode usage.
type StatFS struct {
	BlockSize   uint32
	TotalBlocks uint64 // blocks usable for data and metadata
	FreeBlocks  uint64
	Files       uint64 // inodes in use
	FreeFiles   uint64 // an estimate: one inode per free block
}
