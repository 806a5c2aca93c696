package client

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hanfs/hanfs/nfs/rpcwire"
)

// Programs, versions and the procedures the helpers use (RFC 1813).
const (
	ProgNFS   = 100003
	VersNFS   = 3
	ProgMount = 100005
	VersMount = 3

	ProcNull        = 0
	ProcGetattr     = 1
	ProcSetattr     = 2
	ProcLookup      = 3
	ProcAccess      = 4
	ProcReadlink    = 5
	ProcRead        = 6
	ProcWrite       = 7
	ProcCreate      = 8
	ProcMkdir       = 9
	ProcSymlink     = 10
	ProcMknod       = 11
	ProcRemove      = 12
	ProcRmdir       = 13
	ProcRename      = 14
	ProcLink        = 15
	ProcReaddir     = 16
	ProcReaddirplus = 17
	ProcFsstat      = 18
	ProcFsinfo      = 19
	ProcPathconf    = 20
	ProcCommit      = 21

	mountMnt = 1
)

// MaxIO is the largest READ or WRITE the helpers send in one call.
const MaxIO = 1 << 20

var procNames = [...]string{"NULL", "GETATTR", "SETATTR", "LOOKUP", "ACCESS", "READLINK", "READ", "WRITE",
	"CREATE", "MKDIR", "SYMLINK", "MKNOD", "REMOVE", "RMDIR", "RENAME", "LINK", "READDIR", "READDIRPLUS",
	"FSSTAT", "FSINFO", "PATHCONF", "COMMIT"}

// Status is an nfsstat3 value (or a mountstat3 value for Mount).
type Status uint32

// nfsstat3 values (RFC 1813 2.6).
const (
	OK             Status = 0
	ErrPerm        Status = 1
	ErrNoent       Status = 2
	ErrIO          Status = 5
	ErrNxio        Status = 6
	ErrAcces       Status = 13
	ErrExist       Status = 17
	ErrXdev        Status = 18
	ErrNodev       Status = 19
	ErrNotdir      Status = 20
	ErrIsdir       Status = 21
	ErrInval       Status = 22
	ErrFbig        Status = 27
	ErrNospc       Status = 28
	ErrRofs        Status = 30
	ErrMlink       Status = 31
	ErrNametoolong Status = 63
	ErrNotempty    Status = 66
	ErrDquot       Status = 69
	ErrStale       Status = 70
	ErrRemote      Status = 71
	ErrBadhandle   Status = 10001
	ErrNotSync     Status = 10002
	ErrBadCookie   Status = 10003
	ErrNotsupp     Status = 10004
	ErrToosmall    Status = 10005
	ErrServerfault Status = 10006
	ErrBadtype     Status = 10007
	ErrJukebox     Status = 10008
)

var statusNames = map[Status]string{
	OK: "NFS3_OK", ErrPerm: "NFS3ERR_PERM", ErrNoent: "NFS3ERR_NOENT", ErrIO: "NFS3ERR_IO", ErrNxio: "NFS3ERR_NXIO",
	ErrAcces: "NFS3ERR_ACCES", ErrExist: "NFS3ERR_EXIST", ErrXdev: "NFS3ERR_XDEV", ErrNodev: "NFS3ERR_NODEV",
	ErrNotdir: "NFS3ERR_NOTDIR", ErrIsdir: "NFS3ERR_ISDIR", ErrInval: "NFS3ERR_INVAL", ErrFbig: "NFS3ERR_FBIG",
	ErrNospc: "NFS3ERR_NOSPC", ErrRofs: "NFS3ERR_ROFS", ErrMlink: "NFS3ERR_MLINK", ErrNametoolong: "NFS3ERR_NAMETOOLONG",
	ErrNotempty: "NFS3ERR_NOTEMPTY", ErrDquot: "NFS3ERR_DQUOT", ErrStale: "NFS3ERR_STALE", ErrRemote: "NFS3ERR_REMOTE",
	ErrBadhandle: "NFS3ERR_BADHANDLE", ErrNotSync: "NFS3ERR_NOT_SYNC", ErrBadCookie: "NFS3ERR_BAD_COOKIE",
	ErrNotsupp: "NFS3ERR_NOTSUPP", ErrToosmall: "NFS3ERR_TOOSMALL", ErrServerfault: "NFS3ERR_SERVERFAULT",
	ErrBadtype: "NFS3ERR_BADTYPE", ErrJukebox: "NFS3ERR_JUKEBOX",
}

func (s Status) String() string {
	if n, ok := statusNames[s]; ok {
		return n
	}
	return fmt.Sprintf("nfsstat3(%d)", uint32(s))
}

// StatusError is a reply with a status other than NFS3_OK (or MNT3_OK).
type StatusError struct {
	Proc   uint32 // NFS procedure, or mountMnt with Mount set
	Mount  bool   // the status is a mountstat3
	Status Status
}

func (e *StatusError) Error() string {
	if e.Mount {
		return fmt.Sprintf("nfs: MOUNT: status %d", uint32(e.Status))
	}
	name := fmt.Sprintf("procedure %d", e.Proc)
	if int(e.Proc) < len(procNames) {
		name = procNames[e.Proc]
	}
	return fmt.Sprintf("nfs: %s: %v", name, e.Status)
}

// StatusOf returns the NFS status carried by err, and whether it carries one.
func StatusOf(err error) (Status, bool) {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Status, true
	}
	return OK, false
}

// IsStatus reports whether err is a *StatusError with status st.
func IsStatus(err error, st Status) bool {
	s, ok := StatusOf(err)
	return ok && s == st
}

// File types (ftype3).
const (
	TypeReg  = 1
	TypeDir  = 2
	TypeBlk  = 3
	TypeChr  = 4
	TypeLnk  = 5
	TypeSock = 6
	TypeFifo = 7
)

// Attr is a decoded fattr3.
type Attr struct {
	Type                uint32
	Mode                uint32
	Nlink               uint32
	UID, GID            uint32
	Size, Used          uint64
	RdevMajor           uint32
	RdevMinor           uint32
	Fsid, Fileid        uint64
	Atime, Mtime, Ctime time.Time
}

// DirEntry is one entry of ReadDirPlus.
type DirEntry struct {
	Name   string
	Fileid uint64
	Cookie uint64
	Handle []byte // nil if the server sent none
	Attr   *Attr  // nil if the server sent none
}

// errShort wraps a decoding failure of a reply.
func decodeErr(proc uint32, err error) error {
	name := fmt.Sprintf("procedure %d", proc)
	if int(proc) < len(procNames) {
		name = procNames[proc]
	}
	return fmt.Errorf("nfs: %s: malformed reply: %w", name, err)
}

// reply is a decoder over a reply body that remembers its first error.
type reply struct {
	d   *rpcwire.Decoder
	err error
}

func (r *reply) u32() uint32 {
	if r.err != nil {
		return 0
	}
	v, err := r.d.Uint32()
	r.err = err
	return v
}

func (r *reply) u64() uint64 {
	if r.err != nil {
		return 0
	}
	v, err := r.d.Uint64()
	r.err = err
	return v
}

func (r *reply) boolean() bool {
	if r.err != nil {
		return false
	}
	v, err := r.d.Bool()
	r.err = err
	return v
}

func (r *reply) opaque(max int) []byte {
	if r.err != nil {
		return nil
	}
	v, err := r.d.Opaque(max)
	r.err = err
	return append([]byte(nil), v...)
}

func (r *reply) fixed(n int) []byte {
	if r.err != nil {
		return nil
	}
	v, err := r.d.FixedOpaque(n)
	r.err = err
	return v
}

func (r *reply) time() time.Time {
	s, ns := r.u32(), r.u32()
	return time.Unix(int64(s), int64(ns))
}

func (r *reply) fattr() *Attr {
	a := &Attr{Type: r.u32(), Mode: r.u32(), Nlink: r.u32(), UID: r.u32(), GID: r.u32(), Size: r.u64(), Used: r.u64(),
		RdevMajor: r.u32(), RdevMinor: r.u32(), Fsid: r.u64(), Fileid: r.u64()}
	a.Atime, a.Mtime, a.Ctime = r.time(), r.time(), r.time()
	return a
}

func (r *reply) postOp() *Attr {
	if r.boolean() {
		return r.fattr()
	}
	return nil
}

func (r *reply) wcc() {
	if r.boolean() {
		r.u64()
		r.time()
		r.time()
	}
	r.postOp()
}

func (r *reply) postOpFH() []byte {
	if r.boolean() {
		return r.opaque(64)
	}
	return nil
}

// nfsCall runs an NFSv3 procedure and returns a decoder positioned after
// the status, or a *StatusError.
func (c *Client) nfsCall(ctx context.Context, proc uint32, args []byte) (*reply, error) {
	body, err := c.Call(ctx, ProgNFS, VersNFS, proc, args)
	if err != nil {
		return nil, err
	}
	r := &reply{d: rpcwire.NewDecoder(body)}
	st := Status(r.u32())
	if r.err != nil {
		return nil, decodeErr(proc, r.err)
	}
	if st != OK {
		return r, &StatusError{Proc: proc, Status: st}
	}
	return r, nil
}

func dirop(dir []byte, name string) *rpcwire.Encoder {
	e := rpcwire.NewEncoder(nil)
	e.Opaque(dir)
	e.String(name)
	return e
}

// sattr encodes a sattr3 that sets only the mode (if mode >= 0).
func sattr(e *rpcwire.Encoder, mode int64) {
	if mode >= 0 {
		e.Bool(true)
		e.Uint32(uint32(mode))
	} else {
		e.Bool(false)
	}
	e.Bool(false) // uid
	e.Bool(false) // gid
	e.Bool(false) // size
	e.Uint32(0)   // atime: don't change
	e.Uint32(0)   // mtime: don't change
}

// Null calls NFSPROC3_NULL (a ping).
func (c *Client) Null(ctx context.Context) error {
	_, err := c.Call(ctx, ProgNFS, VersNFS, ProcNull, nil)
	return err
}

// Mount calls MOUNTPROC3_MNT for path and returns the export's root handle.
// A refusal is a *StatusError with Mount set and the mountstat3 value.
func (c *Client) Mount(ctx context.Context, path string) ([]byte, error) {
	e := rpcwire.NewEncoder(nil)
	e.String(path)
	body, err := c.Call(ctx, ProgMount, VersMount, mountMnt, e.Bytes())
	if err != nil {
		return nil, err
	}
	r := &reply{d: rpcwire.NewDecoder(body)}
	st := Status(r.u32())
	if r.err == nil && st != OK {
		return nil, &StatusError{Proc: mountMnt, Mount: true, Status: st}
	}
	fh := r.opaque(64)
	if r.err != nil {
		return nil, fmt.Errorf("nfs: MOUNT: malformed reply: %w", r.err)
	}
	return fh, nil
}

// Getattr returns the attributes of fh.
func (c *Client) Getattr(ctx context.Context, fh []byte) (*Attr, error) {
	e := rpcwire.NewEncoder(nil)
	e.Opaque(fh)
	r, err := c.nfsCall(ctx, ProcGetattr, e.Bytes())
	if err != nil {
		return nil, err
	}
	a := r.fattr()
	if r.err != nil {
		return nil, decodeErr(ProcGetattr, r.err)
	}
	return a, nil
}

// Lookup returns the handle and attributes (nil if not sent) of name in dir.
func (c *Client) Lookup(ctx context.Context, dir []byte, name string) ([]byte, *Attr, error) {
	r, err := c.nfsCall(ctx, ProcLookup, dirop(dir, name).Bytes())
	if err != nil {
		return nil, nil, err
	}
	fh := r.opaque(64)
	a := r.postOp()
	if r.err != nil {
		return nil, nil, decodeErr(ProcLookup, r.err)
	}
	return fh, a, nil
}

// created decodes the result of CREATE and MKDIR; when the server sent no
// handle it looks the name up.
func (c *Client) created(ctx context.Context, proc uint32, r *reply, dir []byte, name string) ([]byte, error) {
	fh := r.postOpFH()
	if r.err != nil {
		return nil, decodeErr(proc, r.err)
	}
	if fh == nil {
		fh, _, err := c.Lookup(ctx, dir, name)
		return fh, err
	}
	return fh, nil
}

// Create creates the regular file name in dir with permission bits mode,
// GUARDED (an existing name is NFS3ERR_EXIST), and returns its handle. A
// retransmission after a reconnect is answered by the server's
// duplicate-request cache with the original result.
func (c *Client) Create(ctx context.Context, dir []byte, name string, mode uint32) ([]byte, error) {
	e := dirop(dir, name)
	e.Uint32(1) // GUARDED
	sattr(e, int64(mode))
	r, err := c.nfsCall(ctx, ProcCreate, e.Bytes())
	if err != nil {
		return nil, err
	}
	return c.created(ctx, ProcCreate, r, dir, name)
}

// Mkdir creates the directory name in dir with permission bits mode and
// returns its handle.
func (c *Client) Mkdir(ctx context.Context, dir []byte, name string, mode uint32) ([]byte, error) {
	e := dirop(dir, name)
	sattr(e, int64(mode))
	r, err := c.nfsCall(ctx, ProcMkdir, e.Bytes())
	if err != nil {
		return nil, err
	}
	return c.created(ctx, ProcMkdir, r, dir, name)
}

// Write writes data (at most MaxIO bytes) at off in fh, FILE_SYNC: the data
// is durable when Write returns. It returns the count the server wrote and
// its write verifier.
func (c *Client) Write(ctx context.Context, fh []byte, off uint64, data []byte) (uint32, [8]byte, error) {
	var verf [8]byte
	if len(data) > MaxIO {
		return 0, verf, fmt.Errorf("nfs: WRITE of %d bytes: at most %d per call", len(data), MaxIO)
	}
	e := rpcwire.NewEncoder(make([]byte, 0, 64+len(fh)+len(data)))
	e.Opaque(fh)
	e.Uint64(off)
	e.Uint32(uint32(len(data)))
	e.Uint32(2) // FILE_SYNC
	e.Opaque(data)
	r, err := c.nfsCall(ctx, ProcWrite, e.Bytes())
	if err != nil {
		return 0, verf, err
	}
	r.wcc()
	n := r.u32()
	committed := r.u32()
	copy(verf[:], r.fixed(8))
	if r.err != nil {
		return 0, verf, decodeErr(ProcWrite, r.err)
	}
	if committed != 2 {
		return n, verf, fmt.Errorf("nfs: WRITE: asked FILE_SYNC, server committed %d", committed)
	}
	return n, verf, nil
}

// Read reads up to count bytes (at most MaxIO) at off in fh.
func (c *Client) Read(ctx context.Context, fh []byte, off uint64, count uint32) ([]byte, bool, error) {
	if count > MaxIO {
		count = MaxIO
	}
	e := rpcwire.NewEncoder(nil)
	e.Opaque(fh)
	e.Uint64(off)
	e.Uint32(count)
	r, err := c.nfsCall(ctx, ProcRead, e.Bytes())
	if err != nil {
		return nil, false, err
	}
	r.postOp()
	n := r.u32()
	eof := r.boolean()
	data := r.opaque(MaxIO)
	if r.err != nil {
		return nil, false, decodeErr(ProcRead, r.err)
	}
	if int(n) != len(data) {
		return nil, false, decodeErr(ProcRead, fmt.Errorf("count %d but %d bytes of data", n, len(data)))
	}
	return data, eof, nil
}

// ReadAll reads fh from offset 0 to its end.
func (c *Client) ReadAll(ctx context.Context, fh []byte) ([]byte, error) {
	var out []byte
	for {
		b, eof, err := c.Read(ctx, fh, uint64(len(out)), MaxIO)
		if err != nil {
			return out, err
		}
		out = append(out, b...)
		if eof || len(b) == 0 {
			return out, nil
		}
	}
}

// Remove removes the non-directory name from dir.
func (c *Client) Remove(ctx context.Context, dir []byte, name string) error {
	_, err := c.nfsCall(ctx, ProcRemove, dirop(dir, name).Bytes())
	return err
}

// Rmdir removes the empty directory name from dir.
func (c *Client) Rmdir(ctx context.Context, dir []byte, name string) error {
	_, err := c.nfsCall(ctx, ProcRmdir, dirop(dir, name).Bytes())
	return err
}

// Rename renames fromDir/from to toDir/to.
func (c *Client) Rename(ctx context.Context, fromDir []byte, from string, toDir []byte, to string) error {
	e := dirop(fromDir, from)
	e.Opaque(toDir)
	e.String(to)
	_, err := c.nfsCall(ctx, ProcRename, e.Bytes())
	return err
}

// ReadDirPlus lists dir completely (including "." and ".."), with handles
// and attributes, following cookies across as many READDIRPLUS calls as
// needed.
func (c *Client) ReadDirPlus(ctx context.Context, dir []byte) ([]DirEntry, error) {
	var out []DirEntry
	var cookie uint64
	var verf []byte = make([]byte, 8)
	for {
		e := rpcwire.NewEncoder(nil)
		e.Opaque(dir)
		e.Uint64(cookie)
		e.FixedOpaque(verf)
		e.Uint32(32 << 10) // dircount
		e.Uint32(64 << 10) // maxcount
		r, err := c.nfsCall(ctx, ProcReaddirplus, e.Bytes())
		if err != nil {
			return out, err
		}
		r.postOp()
		verf = append([]byte(nil), r.fixed(8)...)
		n := 0
		for r.boolean() {
			var de DirEntry
			de.Fileid = r.u64()
			if r.err == nil {
				de.Name, r.err = r.d.String(4096)
			}
			de.Cookie = r.u64()
			de.Attr = r.postOp()
			de.Handle = r.postOpFH()
			if r.err != nil {
				break
			}
			out = append(out, de)
			cookie = de.Cookie
			n++
		}
		eof := r.boolean()
		if r.err != nil {
			return out, decodeErr(ProcReaddirplus, r.err)
		}
		if eof {
			return out, nil
		}
		if n == 0 {
			return out, decodeErr(ProcReaddirplus, errors.New("no entries and no end of directory"))
		}
	}
}
