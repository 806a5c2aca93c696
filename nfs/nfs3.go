package nfs

import (
	"errors"
	"syscall"
	"time"

	"github.com/hanfs/hanfs/fsstore"
	"github.com/hanfs/hanfs/nfs/rpcwire"
)

// RPC program numbers and versions served.
const (
	ProgNFS    = 100003
	ProgMount  = 100005
	VersNFS    = 3
	VersMount  = 3
	maxNameLen = 255
	maxPathLen = 1024
)

// NFSv3 procedures (RFC 1813).
const (
	procNull        = 0
	procGetattr     = 1
	procSetattr     = 2
	procLookup      = 3
	procAccess      = 4
	procReadlink    = 5
	procRead        = 6
	procWrite       = 7
	procCreate      = 8
	procMkdir       = 9
	procSymlink     = 10
	procMknod       = 11
	procRemove      = 12
	procRmdir       = 13
	procRename      = 14
	procLink        = 15
	procReaddir     = 16
	procReaddirplus = 17
	procFsstat      = 18
	procFsinfo      = 19
	procPathconf    = 20
	procCommit      = 21
	numProcs        = 22
)

var procNames = [numProcs]string{"NULL", "GETATTR", "SETATTR", "LOOKUP", "ACCESS", "READLINK", "READ", "WRITE",
	"CREATE", "MKDIR", "SYMLINK", "MKNOD", "REMOVE", "RMDIR", "RENAME", "LINK", "READDIR", "READDIRPLUS",
	"FSSTAT", "FSINFO", "PATHCONF", "COMMIT"}

// nfsstat3 values.
type nfsstat uint32

const (
	nfsOK             nfsstat = 0
	nfsErrPerm        nfsstat = 1
	nfsErrNoent       nfsstat = 2
	nfsErrIO          nfsstat = 5
	nfsErrNxio        nfsstat = 6
	nfsErrAcces       nfsstat = 13
	nfsErrExist       nfsstat = 17
	nfsErrXdev        nfsstat = 18
	nfsErrNodev       nfsstat = 19
	nfsErrNotdir      nfsstat = 20
	nfsErrIsdir       nfsstat = 21
	nfsErrInval       nfsstat = 22
	nfsErrFbig        nfsstat = 27
	nfsErrNospc       nfsstat = 28
	nfsErrRofs        nfsstat = 30
	nfsErrMlink       nfsstat = 31
	nfsErrNametoolong nfsstat = 63
	nfsErrNotempty    nfsstat = 66
	nfsErrDquot       nfsstat = 69
	nfsErrStale       nfsstat = 70
	nfsErrBadhandle   nfsstat = 10001
	nfsErrNotSync     nfsstat = 10002
	nfsErrBadCookie   nfsstat = 10003
	nfsErrNotsupp     nfsstat = 10004
	nfsErrToosmall    nfsstat = 10005
	nfsErrServerfault nfsstat = 10006
	nfsErrBadtype     nfsstat = 10007
	nfsErrJukebox     nfsstat = 10008
)

func (s nfsstat) String() string {
	switch s {
	case nfsOK:
		return "OK"
	case nfsErrPerm:
		return "PERM"
	case nfsErrNoent:
		return "NOENT"
	case nfsErrIO:
		return "IO"
	case nfsErrAcces:
		return "ACCES"
	case nfsErrExist:
		return "EXIST"
	case nfsErrXdev:
		return "XDEV"
	case nfsErrNotdir:
		return "NOTDIR"
	case nfsErrIsdir:
		return "ISDIR"
	case nfsErrInval:
		return "INVAL"
	case nfsErrFbig:
		return "FBIG"
	case nfsErrNospc:
		return "NOSPC"
	case nfsErrRofs:
		return "ROFS"
	case nfsErrMlink:
		return "MLINK"
	case nfsErrNametoolong:
		return "NAMETOOLONG"
	case nfsErrNotempty:
		return "NOTEMPTY"
	case nfsErrStale:
		return "STALE"
	case nfsErrBadhandle:
		return "BADHANDLE"
	case nfsErrBadCookie:
		return "BAD_COOKIE"
	case nfsErrNotsupp:
		return "NOTSUPP"
	case nfsErrToosmall:
		return "TOOSMALL"
	case nfsErrServerfault:
		return "SERVERFAULT"
	case nfsErrBadtype:
		return "BADTYPE"
	case nfsErrJukebox:
		return "JUKEBOX"
	}
	return "ERR"
}

// statusOf maps an error from the store or the handle codec to nfsstat3.
func statusOf(err error) nfsstat {
	switch {
	case err == nil:
		return nfsOK
	case errors.Is(err, ErrBadHandle):
		return nfsErrBadhandle
	case errors.Is(err, ErrStaleHandle):
		return nfsErrStale
	case errors.Is(err, fsstore.ErrGuard):
		return nfsErrNotSync
	}
	switch fsstore.ToErrno(err) {
	case syscall.EPERM:
		return nfsErrPerm
	case syscall.ENOENT:
		return nfsErrNoent
	case syscall.EACCES:
		return nfsErrAcces
	case syscall.EEXIST:
		return nfsErrExist
	case syscall.EXDEV:
		return nfsErrXdev
	case syscall.ENOTDIR:
		return nfsErrNotdir
	case syscall.EISDIR:
		return nfsErrIsdir
	case syscall.EINVAL, syscall.ELOOP:
		return nfsErrInval
	case syscall.EFBIG:
		return nfsErrFbig
	case syscall.ENOSPC:
		return nfsErrNospc
	case syscall.EROFS:
		return nfsErrRofs
	case syscall.EMLINK:
		return nfsErrMlink
	case syscall.ENAMETOOLONG:
		return nfsErrNametoolong
	case syscall.ENOTEMPTY:
		return nfsErrNotempty
	case syscall.ESTALE:
		return nfsErrStale
	case syscall.EDQUOT:
		return nfsErrDquot
	}
	return nfsErrIO
}

// ftype3 values.
const (
	nf3Reg  = 1
	nf3Dir  = 2
	nf3Blk  = 3
	nf3Chr  = 4
	nf3Lnk  = 5
	nf3Sock = 6
	nf3Fifo = 7
)

func ftypeOf(mode uint32) uint32 {
	switch mode & fsstore.ModeType {
	case fsstore.ModeDir:
		return nf3Dir
	case fsstore.ModeBlock:
		return nf3Blk
	case fsstore.ModeChar:
		return nf3Chr
	case fsstore.ModeSymlink:
		return nf3Lnk
	case fsstore.ModeSocket:
		return nf3Sock
	case fsstore.ModeFIFO:
		return nf3Fifo
	}
	return nf3Reg
}

func putTime(e *rpcwire.Encoder, t time.Time) {
	ns := t.UnixNano()
	if ns < 0 {
		ns = 0
	}
	e.Uint32(uint32(ns / 1e9))
	e.Uint32(uint32(ns % 1e9))
}

// putFattr encodes fattr3.
func (s *Server) putFattr(e *rpcwire.Encoder, a *fsstore.Attr) {
	e.Uint32(ftypeOf(a.Mode))
	e.Uint32(a.Mode & fsstore.ModePerm)
	e.Uint32(a.Nlink)
	e.Uint32(a.UID)
	e.Uint32(a.GID)
	e.Uint64(a.Size)
	e.Uint64(a.Blocks * 4096)
	e.Uint32(uint32(a.Rdev >> 32)) // major
	e.Uint32(uint32(a.Rdev))       // minor
	e.Uint64(s.fsid)
	e.Uint64(uint64(a.Ino))
	putTime(e, a.Atime)
	putTime(e, a.Mtime)
	putTime(e, a.Ctime)
}

// putPostOp encodes post_op_attr.
func (s *Server) putPostOp(e *rpcwire.Encoder, a *fsstore.Attr) {
	if a == nil {
		e.Bool(false)
		return
	}
	e.Bool(true)
	s.putFattr(e, a)
}

// putPostOpIno encodes post_op_attr with the current attributes of ino.
func (s *Server) putPostOpIno(e *rpcwire.Encoder, ino fsstore.Ino) {
	a, err := s.store.Getattr(ino)
	if err != nil {
		e.Bool(false)
		return
	}
	s.putPostOp(e, &a)
}

// wcc is the pre-operation part of wcc_data.
type wcc struct {
	ok           bool
	size         uint64
	mtime, ctime time.Time
}

func preOp(a *fsstore.Attr) wcc {
	if a == nil {
		return wcc{}
	}
	return wcc{ok: true, size: a.Size, mtime: a.Mtime, ctime: a.Ctime}
}

// putWcc encodes wcc_data: the attributes before (pre) and after (post).
func (s *Server) putWcc(e *rpcwire.Encoder, pre wcc, post *fsstore.Attr) {
	e.Bool(pre.ok)
	if pre.ok {
		e.Uint64(pre.size)
		putTime(e, pre.mtime)
		putTime(e, pre.ctime)
	}
	s.putPostOp(e, post)
}

// putWccIno encodes wcc_data with the current attributes of ino as post.
func (s *Server) putWccIno(e *rpcwire.Encoder, pre wcc, ino fsstore.Ino) {
	a, err := s.store.Getattr(ino)
	if err != nil {
		s.putWcc(e, pre, nil)
		return
	}
	s.putWcc(e, pre, &a)
}

// putPostOpFH encodes post_op_fh3.
func putPostOpFH(e *rpcwire.Encoder, fh []byte) {
	if fh == nil {
		e.Bool(false)
		return
	}
	e.Bool(true)
	e.Opaque(fh)
}

// sattr is a decoded sattr3.
type sattr struct {
	set fsstore.SetAttr
	any bool
}

const maxHandle = 64

// optUint32 decodes an XDR optional uint32 (a bool, then the value if true).
func optUint32(d *rpcwire.Decoder) (*uint32, error) {
	ok, err := d.Bool()
	if err != nil || !ok {
		return nil, err
	}
	v, err := d.Uint32()
	if err != nil {
		return nil, err
	}
	return &v, nil
}

// readSattr decodes sattr3.
func readSattr(d *rpcwire.Decoder) (sattr, error) {
	var sa sattr
	var err error
	for _, f := range []**uint32{&sa.set.Mode, &sa.set.UID, &sa.set.GID} {
		if *f, err = optUint32(d); err != nil {
			return sa, err
		}
		sa.any = sa.any || *f != nil
	}
	if ok, err := d.Bool(); err != nil {
		return sa, err
	} else if ok {
		v, err := d.Uint64()
		if err != nil {
			return sa, err
		}
		sa.set.Size, sa.any = &v, true
	}
	for i := 0; i < 2; i++ {
		how, err := d.Uint32()
		if err != nil {
			return sa, err
		}
		switch how {
		case 0: // DONT_CHANGE
		case 1: // SET_TO_SERVER_TIME
			if i == 0 {
				sa.set.AtimeNow = true
			} else {
				sa.set.MtimeNow = true
			}
			sa.any = true
		case 2: // SET_TO_CLIENT_TIME
			t, err := readTime(d)
			if err != nil {
				return sa, err
			}
			if i == 0 {
				sa.set.Atime = &t
			} else {
				sa.set.Mtime = &t
			}
			sa.any = true
		default:
			return sa, errGarbage
		}
	}
	return sa, nil
}

func readTime(d *rpcwire.Decoder) (time.Time, error) {
	sec, err := d.Uint32()
	if err != nil {
		return time.Time{}, err
	}
	nsec, err := d.Uint32()
	if err != nil {
		return time.Time{}, err
	}
	if nsec >= 1e9 {
		return time.Time{}, errGarbage
	}
	return time.Unix(int64(sec), int64(nsec)), nil
}

// errGarbage marks arguments that do not decode (GARBAGE_ARGS).
var errGarbage = errors.New("garbage arguments")
