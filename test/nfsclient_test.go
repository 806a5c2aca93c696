package test

// A raw NFSv3 and MOUNT v3 client over rpcwire: the tests choose every xid,
// credential and argument byte, can send malformed calls and can retransmit
// a request exactly. Decoders follow RFC 1813.

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hanfs/hanfs/nfs/rpcwire"
)

// Program numbers and procedures (RFC 1813).
const (
	progNFS   = 100003
	progMount = 100005

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

	mntNull   = 0
	mntMnt    = 1
	mntDump   = 2
	mntUmnt   = 3
	mntExport = 5
)

// nfsStat is an nfsstat3 (or mountstat3) value.
type nfsStat uint32

const (
	nfsOK          nfsStat = 0
	errPerm        nfsStat = 1
	errNoent       nfsStat = 2
	errIO          nfsStat = 5
	errAcces       nfsStat = 13
	errExist       nfsStat = 17
	errXdev        nfsStat = 18
	errNotdir      nfsStat = 20
	errIsdir       nfsStat = 21
	errInval       nfsStat = 22
	errRofs        nfsStat = 30
	errNametoolong nfsStat = 63
	errNotempty    nfsStat = 66
	errStale       nfsStat = 70
	errBadhandle   nfsStat = 10001
	errNotSync     nfsStat = 10002
	errBadCookie   nfsStat = 10003
	errNotsupp     nfsStat = 10004
	errToosmall    nfsStat = 10005
	errBadtype     nfsStat = 10007
)

var statNames = map[nfsStat]string{
	0: "OK", 1: "PERM", 2: "NOENT", 5: "IO", 6: "NXIO", 13: "ACCES", 17: "EXIST", 18: "XDEV", 19: "NODEV",
	20: "NOTDIR", 21: "ISDIR", 22: "INVAL", 27: "FBIG", 28: "NOSPC", 30: "ROFS", 31: "MLINK",
	63: "NAMETOOLONG", 66: "NOTEMPTY", 69: "DQUOT", 70: "STALE", 71: "REMOTE", 10001: "BADHANDLE",
	10002: "NOT_SYNC", 10003: "BAD_COOKIE", 10004: "NOTSUPP", 10005: "TOOSMALL", 10006: "SERVERFAULT",
	10007: "BADTYPE", 10008: "JUKEBOX",
}

func (s nfsStat) String() string {
	if n, ok := statNames[s]; ok {
		return n
	}
	return fmt.Sprintf("nfsstat(%d)", uint32(s))
}

// File types (ftype3).
const (
	nf3Reg  = 1
	nf3Dir  = 2
	nf3Blk  = 3
	nf3Chr  = 4
	nf3Lnk  = 5
	nf3Sock = 6
	nf3Fifo = 7
)

// ACCESS bits.
const (
	accRead    = 0x01
	accLookup  = 0x02
	accModify  = 0x04
	accExtend  = 0x08
	accDelete  = 0x10
	accExecute = 0x20
)

// CREATE modes and stable_how.
const (
	createUnchecked = 0
	createGuarded   = 1
	createExclusive = 2

	unstable = 0
	dataSync = 1
	fileSync = 2
)

type nfsTime struct{ Sec, Nsec uint32 }

// fattr is fattr3.
type fattr struct {
	Type, Mode, Nlink, UID, GID uint32
	Size, Used                  uint64
	Major, Minor                uint32
	Fsid, Fileid                uint64
	Atime, Mtime, Ctime         nfsTime
}

// rootCred is AUTH_UNIX for uid 0.
var rootCred = &rpcwire.AuthUnix{Stamp: 1, Machine: "hanfs-test", UID: 0, GID: 0, GIDs: []uint32{0}}

// userCred returns AUTH_UNIX for a non-root user.
func userCred(uid uint32) *rpcwire.AuthUnix {
	return &rpcwire.AuthUnix{Stamp: 2, Machine: "hanfs-test", UID: uid, GID: uid, GIDs: []uint32{uid}}
}

var xidSeq atomic.Uint32

func init() { xidSeq.Store(uint32(time.Now().UnixNano()) & 0x0fffffff) }

// nextXID returns a fresh xid.
func nextXID() uint32 { return xidSeq.Add(1) }

// rpcConn is one TCP connection to the server.
type rpcConn struct {
	t    testing.TB
	c    net.Conn
	rr   *rpcwire.RecordReader
	Cred *rpcwire.AuthUnix // nil: AUTH_NONE
	wmu  *sync.Mutex
}

// on returns rc reporting failures to t (for use in subtests); it shares
// the connection.
func (rc *rpcConn) on(t testing.TB) *rpcConn {
	c := *rc
	c.t = t
	return &c
}

// dialRPC connects to addr with root credentials; the connection is closed at cleanup.
func dialRPC(t testing.TB, addr string) *rpcConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return &rpcConn{t: t, c: c, rr: rpcwire.NewRecordReader(c, 8<<20), Cred: rootCred, wmu: new(sync.Mutex)}
}

// withCred returns a new connection to the same server using cred.
func (rc *rpcConn) withCred(cred *rpcwire.AuthUnix) *rpcConn {
	n := dialRPC(rc.t, rc.c.RemoteAddr().String())
	n.Cred = cred
	return n
}

// sendRecord writes rec as one record.
func (rc *rpcConn) sendRecord(rec []byte) error {
	rc.wmu.Lock()
	defer rc.wmu.Unlock()
	rc.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return rpcwire.WriteRecord(rc.c, rec)
}

// sendRaw writes raw bytes (framing included).
func (rc *rpcConn) sendRaw(b []byte) error {
	rc.wmu.Lock()
	defer rc.wmu.Unlock()
	rc.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := rc.c.Write(b)
	return err
}

// recvRecord reads the next record within d.
func (rc *rpcConn) recvRecord(d time.Duration) ([]byte, error) {
	rc.c.SetReadDeadline(time.Now().Add(d))
	rec, err := rc.rr.Next()
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), rec...), nil
}

// recvReply reads and parses the next reply within d.
func (rc *rpcConn) recvReply(d time.Duration) (*rpcwire.Reply, error) {
	rec, err := rc.recvRecord(d)
	if err != nil {
		return nil, err
	}
	return rpcwire.ParseReply(rec)
}

// buildCall builds a call record with the connection's credential.
func (rc *rpcConn) buildCall(xid, prog, proc uint32, args []byte) []byte {
	return rpcwire.BuildCall(xid, prog, 3, proc, rc.Cred, args)
}

// roundTrip sends rec and returns the reply to its xid.
func (rc *rpcConn) roundTrip(rec []byte) (*rpcwire.Reply, error) {
	xid := uint32(rec[0])<<24 | uint32(rec[1])<<16 | uint32(rec[2])<<8 | uint32(rec[3])
	if err := rc.sendRecord(rec); err != nil {
		return nil, err
	}
	for {
		r, err := rc.recvReply(30 * time.Second)
		if err != nil {
			return nil, err
		}
		if r.XID == xid {
			return r, nil
		}
	}
}

// call sends a call with a fresh xid and returns a decoder over the results
// of a SUCCESS reply; anything else fails the test.
func (rc *rpcConn) call(prog, proc uint32, args []byte) *rpcwire.Decoder {
	rc.t.Helper()
	return rc.callXID(nextXID(), prog, proc, args)
}

// callXID is call with a chosen xid.
func (rc *rpcConn) callXID(xid, prog, proc uint32, args []byte) *rpcwire.Decoder {
	rc.t.Helper()
	r, err := rc.roundTrip(rc.buildCall(xid, prog, proc, args))
	if err != nil {
		rc.t.Fatalf("prog %d proc %d xid %#x: %v", prog, proc, xid, err)
	}
	if !r.Accepted || r.AcceptStat != rpcwire.Success {
		rc.t.Fatalf("prog %d proc %d xid %#x: accepted %v, accept_stat %v, reject %v, auth %v", prog, proc, xid,
			r.Accepted, r.AcceptStat, r.RejectStat, r.AuthStat)
	}
	return rpcwire.NewDecoder(r.Body)
}

// pipeline sends all calls of one procedure at once (each with a fresh xid)
// and returns the decoders of their results, in order.
func (rc *rpcConn) pipeline(prog, proc uint32, args [][]byte) []*rpcwire.Decoder {
	rc.t.Helper()
	xids := make(map[uint32]int, len(args))
	recs := make([][]byte, len(args))
	for i, a := range args {
		x := nextXID()
		xids[x] = i
		recs[i] = rc.buildCall(x, prog, proc, a)
	}
	werr := make(chan error, 1)
	go func() {
		for _, rec := range recs {
			if err := rc.sendRecord(rec); err != nil {
				werr <- err
				return
			}
		}
		werr <- nil
	}()
	out := make([]*rpcwire.Decoder, len(args))
	for range args {
		r, err := rc.recvReply(60 * time.Second)
		if err != nil {
			rc.t.Fatalf("pipelined proc %d: %v", proc, err)
		}
		i, ok := xids[r.XID]
		if !ok || out[i] != nil {
			rc.t.Fatalf("pipelined proc %d: unexpected reply xid %#x", proc, r.XID)
		}
		if !r.Accepted || r.AcceptStat != rpcwire.Success {
			rc.t.Fatalf("pipelined proc %d: accepted %v stat %v", proc, r.Accepted, r.AcceptStat)
		}
		out[i] = rpcwire.NewDecoder(r.Body)
	}
	if err := <-werr; err != nil {
		rc.t.Fatalf("pipelined proc %d: send: %v", proc, err)
	}
	return out
}

// --- XDR helpers ---

type enc = rpcwire.Encoder

func newEnc() *enc { return rpcwire.NewEncoder(nil) }

// dec wraps a Decoder and fails the test on the first decode error.
type dec struct {
	t testing.TB
	d *rpcwire.Decoder
}

func (x dec) u32() uint32 {
	x.t.Helper()
	v, err := x.d.Uint32()
	if err != nil {
		x.t.Fatalf("decode reply: %v", err)
	}
	return v
}

func (x dec) u64() uint64 {
	x.t.Helper()
	v, err := x.d.Uint64()
	if err != nil {
		x.t.Fatalf("decode reply: %v", err)
	}
	return v
}

func (x dec) boolean() bool {
	x.t.Helper()
	v, err := x.d.Bool()
	if err != nil {
		x.t.Fatalf("decode reply: %v", err)
	}
	return v
}

func (x dec) opaque(max int) []byte {
	x.t.Helper()
	v, err := x.d.Opaque(max)
	if err != nil {
		x.t.Fatalf("decode reply: %v", err)
	}
	return append([]byte(nil), v...)
}

func (x dec) fixed(n int) []byte {
	x.t.Helper()
	v, err := x.d.FixedOpaque(n)
	if err != nil {
		x.t.Fatalf("decode reply: %v", err)
	}
	return append([]byte(nil), v...)
}

func (x dec) time() nfsTime { return nfsTime{x.u32(), x.u32()} }

func (x dec) stat() nfsStat { x.t.Helper(); return nfsStat(x.u32()) }

func (x dec) fattr() *fattr {
	x.t.Helper()
	a := &fattr{}
	a.Type, a.Mode, a.Nlink, a.UID, a.GID = x.u32(), x.u32(), x.u32(), x.u32(), x.u32()
	a.Size, a.Used = x.u64(), x.u64()
	a.Major, a.Minor = x.u32(), x.u32()
	a.Fsid, a.Fileid = x.u64(), x.u64()
	a.Atime, a.Mtime, a.Ctime = x.time(), x.time(), x.time()
	return a
}

func (x dec) postOp() *fattr {
	x.t.Helper()
	if x.boolean() {
		return x.fattr()
	}
	return nil
}

type wccAttr struct {
	Size         uint64
	Mtime, Ctime nfsTime
}

func (x dec) wcc() (*wccAttr, *fattr) {
	x.t.Helper()
	var pre *wccAttr
	if x.boolean() {
		pre = &wccAttr{x.u64(), x.time(), x.time()}
	}
	return pre, x.postOp()
}

func (x dec) postOpFH() []byte {
	x.t.Helper()
	if x.boolean() {
		return x.opaque(64)
	}
	return nil
}

func (x dec) end() {
	x.t.Helper()
	if n := x.d.Remaining(); n != 0 {
		x.t.Fatalf("decode reply: %d bytes left over", n)
	}
}

// sattr is sattr3; nil fields are not set.
type sattr struct {
	Mode, UID, GID *uint32
	Size           *uint64
	Atime, Mtime   *nfsTime // set to client time
	AtimeNow       bool
	MtimeNow       bool
}

func u32p(v uint32) *uint32 { return &v }
func u64p(v uint64) *uint64 { return &v }

func putSattr(e *enc, s sattr) {
	for _, v := range []*uint32{s.Mode, s.UID, s.GID} {
		if v != nil {
			e.Bool(true)
			e.Uint32(*v)
		} else {
			e.Bool(false)
		}
	}
	if s.Size != nil {
		e.Bool(true)
		e.Uint64(*s.Size)
	} else {
		e.Bool(false)
	}
	for i, t := range []*nfsTime{s.Atime, s.Mtime} {
		now := s.AtimeNow
		if i == 1 {
			now = s.MtimeNow
		}
		switch {
		case t != nil:
			e.Uint32(2)
			e.Uint32(t.Sec)
			e.Uint32(t.Nsec)
		case now:
			e.Uint32(1)
		default:
			e.Uint32(0)
		}
	}
}

func putDirop(e *enc, dir []byte, name string) {
	e.Opaque(dir)
	e.String(name)
}

// --- argument builders (exported to the tests that retransmit exact bytes) ---

func argsFH(fh []byte) []byte { e := newEnc(); e.Opaque(fh); return e.Bytes() }

func argsDirop(dir []byte, name string) []byte {
	e := newEnc()
	putDirop(e, dir, name)
	return e.Bytes()
}

func argsCreate(dir []byte, name string, how uint32, s sattr, verf uint64) []byte {
	e := newEnc()
	putDirop(e, dir, name)
	e.Uint32(how)
	if how == createExclusive {
		e.Uint64(verf)
	} else {
		putSattr(e, s)
	}
	return e.Bytes()
}

func argsMkdir(dir []byte, name string, s sattr) []byte {
	e := newEnc()
	putDirop(e, dir, name)
	putSattr(e, s)
	return e.Bytes()
}

func argsSymlink(dir []byte, name, target string, s sattr) []byte {
	e := newEnc()
	putDirop(e, dir, name)
	putSattr(e, s)
	e.String(target)
	return e.Bytes()
}

func argsMknod(dir []byte, name string, typ uint32, s sattr, major, minor uint32) []byte {
	e := newEnc()
	putDirop(e, dir, name)
	e.Uint32(typ)
	switch typ {
	case nf3Chr, nf3Blk:
		putSattr(e, s)
		e.Uint32(major)
		e.Uint32(minor)
	case nf3Sock, nf3Fifo:
		putSattr(e, s)
	}
	return e.Bytes()
}

func argsRename(fromDir []byte, from string, toDir []byte, to string) []byte {
	e := newEnc()
	putDirop(e, fromDir, from)
	putDirop(e, toDir, to)
	return e.Bytes()
}

func argsLink(file, dir []byte, name string) []byte {
	e := newEnc()
	e.Opaque(file)
	putDirop(e, dir, name)
	return e.Bytes()
}

func argsSetattr(fh []byte, s sattr, guard *nfsTime) []byte {
	e := newEnc()
	e.Opaque(fh)
	putSattr(e, s)
	if guard != nil {
		e.Bool(true)
		e.Uint32(guard.Sec)
		e.Uint32(guard.Nsec)
	} else {
		e.Bool(false)
	}
	return e.Bytes()
}

func argsWrite(fh []byte, off uint64, data []byte, stable uint32) []byte {
	e := newEnc()
	e.Opaque(fh)
	e.Uint64(off)
	e.Uint32(uint32(len(data)))
	e.Uint32(stable)
	e.Opaque(data)
	return e.Bytes()
}

// --- NFSv3 procedures ---

func (rc *rpcConn) d(proc uint32, args []byte) dec {
	rc.t.Helper()
	return dec{rc.t, rc.call(progNFS, proc, args)}
}

func (rc *rpcConn) null() {
	rc.t.Helper()
	rc.d(procNull, nil).end()
}

func (rc *rpcConn) getattr(fh []byte) (nfsStat, *fattr) {
	rc.t.Helper()
	x := rc.d(procGetattr, argsFH(fh))
	st := x.stat()
	if st != nfsOK {
		return st, nil
	}
	a := x.fattr()
	x.end()
	return st, a
}

// mustGetattr returns the attributes of fh or fails.
func (rc *rpcConn) mustGetattr(fh []byte) *fattr {
	rc.t.Helper()
	st, a := rc.getattr(fh)
	if st != nfsOK {
		rc.t.Fatalf("GETATTR: %v", st)
	}
	return a
}

func decodeSetattr(x dec) (nfsStat, *fattr) {
	x.t.Helper()
	st := x.stat()
	_, post := x.wcc()
	x.end()
	return st, post
}

func (rc *rpcConn) setattr(fh []byte, s sattr, guard *nfsTime) (nfsStat, *fattr) {
	rc.t.Helper()
	return decodeSetattr(rc.d(procSetattr, argsSetattr(fh, s, guard)))
}

func decodeLookup(x dec) (nfsStat, []byte, *fattr, *fattr) {
	x.t.Helper()
	st := x.stat()
	if st != nfsOK {
		dir := x.postOp()
		x.end()
		return st, nil, nil, dir
	}
	fh := x.opaque(64)
	obj := x.postOp()
	dir := x.postOp()
	x.end()
	return st, fh, obj, dir
}

func (rc *rpcConn) lookup(dir []byte, name string) (nfsStat, []byte, *fattr) {
	rc.t.Helper()
	st, fh, obj, _ := decodeLookup(rc.d(procLookup, argsDirop(dir, name)))
	return st, fh, obj
}

// mustLookup returns the handle of dir/name or fails.
func (rc *rpcConn) mustLookup(dir []byte, name string) []byte {
	rc.t.Helper()
	st, fh, _ := rc.lookup(dir, name)
	if st != nfsOK {
		rc.t.Fatalf("LOOKUP %q: %v", name, st)
	}
	return fh
}

func (rc *rpcConn) access(fh []byte, want uint32) (nfsStat, uint32) {
	rc.t.Helper()
	e := newEnc()
	e.Opaque(fh)
	e.Uint32(want)
	x := rc.d(procAccess, e.Bytes())
	st := x.stat()
	x.postOp()
	if st != nfsOK {
		x.end()
		return st, 0
	}
	got := x.u32()
	x.end()
	return st, got
}

func (rc *rpcConn) readlink(fh []byte) (nfsStat, string) {
	rc.t.Helper()
	x := rc.d(procReadlink, argsFH(fh))
	st := x.stat()
	x.postOp()
	if st != nfsOK {
		x.end()
		return st, ""
	}
	s := string(x.opaque(-1))
	x.end()
	return st, s
}

func (rc *rpcConn) read(fh []byte, off uint64, count uint32) (nfsStat, []byte, bool) {
	rc.t.Helper()
	e := newEnc()
	e.Opaque(fh)
	e.Uint64(off)
	e.Uint32(count)
	x := rc.d(procRead, e.Bytes())
	st := x.stat()
	x.postOp()
	if st != nfsOK {
		x.end()
		return st, nil, false
	}
	n := x.u32()
	eof := x.boolean()
	data := x.opaque(-1)
	x.end()
	if int(n) != len(data) {
		rc.t.Fatalf("READ: count %d but %d data bytes", n, len(data))
	}
	return st, data, eof
}

// readAll reads a whole file in chunks.
func (rc *rpcConn) readAll(fh []byte) []byte {
	rc.t.Helper()
	var out []byte
	for {
		st, data, eof := rc.read(fh, uint64(len(out)), 64<<10)
		if st != nfsOK {
			rc.t.Fatalf("READ at %d: %v", len(out), st)
		}
		out = append(out, data...)
		if eof {
			return out
		}
		if len(data) == 0 {
			rc.t.Fatalf("READ at %d: no data and no EOF", len(out))
		}
	}
}

type writeRes struct {
	st        nfsStat
	count     uint32
	committed uint32
	verf      [8]byte
	post      *fattr
}

func decodeWrite(x dec) writeRes {
	x.t.Helper()
	var w writeRes
	w.st = x.stat()
	_, w.post = x.wcc()
	if w.st == nfsOK {
		w.count = x.u32()
		w.committed = x.u32()
		copy(w.verf[:], x.fixed(8))
	}
	x.end()
	return w
}

func (rc *rpcConn) write(fh []byte, off uint64, data []byte, stable uint32) writeRes {
	rc.t.Helper()
	return decodeWrite(rc.d(procWrite, argsWrite(fh, off, data, stable)))
}

// decodeCreated decodes CREATE3res, MKDIR3res, SYMLINK3res and MKNOD3res.
func decodeCreated(x dec) (nfsStat, []byte, *fattr) {
	x.t.Helper()
	st := x.stat()
	var fh []byte
	var a *fattr
	if st == nfsOK {
		fh = x.postOpFH()
		a = x.postOp()
	}
	x.wcc()
	x.end()
	return st, fh, a
}

func (rc *rpcConn) create(dir []byte, name string, how uint32, s sattr, verf uint64) (nfsStat, []byte, *fattr) {
	rc.t.Helper()
	return decodeCreated(rc.d(procCreate, argsCreate(dir, name, how, s, verf)))
}

// mustCreate creates a regular file (GUARDED, mode 0644) and returns its handle.
func (rc *rpcConn) mustCreate(dir []byte, name string) []byte {
	rc.t.Helper()
	st, fh, _ := rc.create(dir, name, createGuarded, sattr{Mode: u32p(0o644)}, 0)
	if st != nfsOK || fh == nil {
		rc.t.Fatalf("CREATE %q: %v (handle %v)", name, st, fh != nil)
	}
	return fh
}

func (rc *rpcConn) mkdir(dir []byte, name string, s sattr) (nfsStat, []byte, *fattr) {
	rc.t.Helper()
	return decodeCreated(rc.d(procMkdir, argsMkdir(dir, name, s)))
}

func (rc *rpcConn) mustMkdir(dir []byte, name string) []byte {
	rc.t.Helper()
	st, fh, _ := rc.mkdir(dir, name, sattr{Mode: u32p(0o755)})
	if st != nfsOK || fh == nil {
		rc.t.Fatalf("MKDIR %q: %v", name, st)
	}
	return fh
}

func (rc *rpcConn) symlink(dir []byte, name, target string) (nfsStat, []byte, *fattr) {
	rc.t.Helper()
	return decodeCreated(rc.d(procSymlink, argsSymlink(dir, name, target, sattr{})))
}

func (rc *rpcConn) mknod(dir []byte, name string, typ uint32, s sattr, major, minor uint32) (nfsStat, []byte, *fattr) {
	rc.t.Helper()
	return decodeCreated(rc.d(procMknod, argsMknod(dir, name, typ, s, major, minor)))
}

func decodeWccOnly(x dec) nfsStat {
	x.t.Helper()
	st := x.stat()
	x.wcc()
	x.end()
	return st
}

func (rc *rpcConn) remove(dir []byte, name string) nfsStat {
	rc.t.Helper()
	return decodeWccOnly(rc.d(procRemove, argsDirop(dir, name)))
}

func (rc *rpcConn) rmdir(dir []byte, name string) nfsStat {
	rc.t.Helper()
	return decodeWccOnly(rc.d(procRmdir, argsDirop(dir, name)))
}

func decodeRename(x dec) nfsStat {
	x.t.Helper()
	st := x.stat()
	x.wcc()
	x.wcc()
	x.end()
	return st
}

func (rc *rpcConn) rename(fromDir []byte, from string, toDir []byte, to string) nfsStat {
	rc.t.Helper()
	return decodeRename(rc.d(procRename, argsRename(fromDir, from, toDir, to)))
}

func decodeLink(x dec) nfsStat {
	x.t.Helper()
	st := x.stat()
	x.postOp()
	x.wcc()
	x.end()
	return st
}

func (rc *rpcConn) link(file, dir []byte, name string) nfsStat {
	rc.t.Helper()
	return decodeLink(rc.d(procLink, argsLink(file, dir, name)))
}

// dirEntry is an entry of READDIR or READDIRPLUS.
type dirEntry struct {
	Fileid uint64
	Name   string
	Cookie uint64
	Attr   *fattr // READDIRPLUS only
	FH     []byte // READDIRPLUS only
}

type readdirRes struct {
	st      nfsStat
	dirAttr *fattr
	verf    [8]byte
	ents    []dirEntry
	eof     bool
}

func decodeReaddir(x dec, plus bool) readdirRes {
	x.t.Helper()
	var r readdirRes
	r.st = x.stat()
	r.dirAttr = x.postOp()
	if r.st != nfsOK {
		x.end()
		return r
	}
	copy(r.verf[:], x.fixed(8))
	for x.boolean() {
		e := dirEntry{Fileid: x.u64(), Name: string(x.opaque(-1)), Cookie: x.u64()}
		if plus {
			e.Attr = x.postOp()
			e.FH = x.postOpFH()
		}
		r.ents = append(r.ents, e)
	}
	r.eof = x.boolean()
	x.end()
	return r
}

func (rc *rpcConn) readdir(dir []byte, cookie uint64, verf [8]byte, count uint32) readdirRes {
	rc.t.Helper()
	e := newEnc()
	e.Opaque(dir)
	e.Uint64(cookie)
	e.FixedOpaque(verf[:])
	e.Uint32(count)
	return decodeReaddir(rc.d(procReaddir, e.Bytes()), false)
}

func (rc *rpcConn) readdirplus(dir []byte, cookie uint64, verf [8]byte, dircount, maxcount uint32) readdirRes {
	rc.t.Helper()
	e := newEnc()
	e.Opaque(dir)
	e.Uint64(cookie)
	e.FixedOpaque(verf[:])
	e.Uint32(dircount)
	e.Uint32(maxcount)
	return decodeReaddir(rc.d(procReaddirplus, e.Bytes()), true)
}

// listDir lists a whole directory by cookie paging (READDIR with count, or
// READDIRPLUS with count as maxcount and count/2 as dircount), failing on
// an error or after too many calls. It returns the entries without "." and
// "..", and the number of calls.
func (rc *rpcConn) listDir(dir []byte, plus bool, count uint32) ([]dirEntry, int) {
	rc.t.Helper()
	var out []dirEntry
	var cookie uint64
	var verf [8]byte
	for calls := 1; ; calls++ {
		if calls > 100000 {
			rc.t.Fatal("directory listing does not end")
		}
		var r readdirRes
		if plus {
			r = rc.readdirplus(dir, cookie, verf, count/2, count)
		} else {
			r = rc.readdir(dir, cookie, verf, count)
		}
		if r.st != nfsOK {
			rc.t.Fatalf("READDIR(plus=%v) at cookie %#x: %v", plus, cookie, r.st)
		}
		for _, e := range r.ents {
			if e.Name != "." && e.Name != ".." {
				out = append(out, e)
			}
		}
		if r.eof {
			return out, calls
		}
		if len(r.ents) == 0 {
			rc.t.Fatalf("READDIR(plus=%v) at cookie %#x: no entries and no EOF", plus, cookie)
		}
		cookie = r.ents[len(r.ents)-1].Cookie
		verf = r.verf
	}
}

// fsinfo is FSINFO3resok.
type fsinfo struct {
	obj                           *fattr
	rtmax, rtpref, rtmult         uint32
	wtmax, wtpref, wtmult, dtpref uint32
	maxfilesize                   uint64
	timeDelta                     nfsTime
	properties                    uint32
}

func (rc *rpcConn) fsinfo(fh []byte) (nfsStat, fsinfo) {
	rc.t.Helper()
	x := rc.d(procFsinfo, argsFH(fh))
	var f fsinfo
	st := x.stat()
	f.obj = x.postOp()
	if st != nfsOK {
		x.end()
		return st, f
	}
	f.rtmax, f.rtpref, f.rtmult = x.u32(), x.u32(), x.u32()
	f.wtmax, f.wtpref, f.wtmult, f.dtpref = x.u32(), x.u32(), x.u32(), x.u32()
	f.maxfilesize = x.u64()
	f.timeDelta = x.time()
	f.properties = x.u32()
	x.end()
	return st, f
}

type fsstat struct {
	extra                  int // bytes after FSSTAT3resok
	obj                    *fattr
	tbytes, fbytes, abytes uint64
	tfiles, ffiles, afiles uint64
	invarsec               uint32
}

func (rc *rpcConn) fsstat(fh []byte) (nfsStat, fsstat) {
	rc.t.Helper()
	x := rc.d(procFsstat, argsFH(fh))
	var f fsstat
	st := x.stat()
	f.obj = x.postOp()
	if st != nfsOK {
		x.end()
		return st, f
	}
	f.tbytes, f.fbytes, f.abytes = x.u64(), x.u64(), x.u64()
	f.tfiles, f.ffiles, f.afiles = x.u64(), x.u64(), x.u64()
	f.invarsec = x.u32()
	f.extra = x.d.Remaining()
	return st, f
}

type pathconf struct {
	obj                                                       *fattr
	linkmax, namemax                                          uint32
	noTrunc, chownRestricted, caseInsensitive, casePreserving bool
}

func (rc *rpcConn) pathconf(fh []byte) (nfsStat, pathconf) {
	rc.t.Helper()
	x := rc.d(procPathconf, argsFH(fh))
	var p pathconf
	st := x.stat()
	p.obj = x.postOp()
	if st != nfsOK {
		x.end()
		return st, p
	}
	p.linkmax, p.namemax = x.u32(), x.u32()
	p.noTrunc, p.chownRestricted, p.caseInsensitive, p.casePreserving = x.boolean(), x.boolean(), x.boolean(), x.boolean()
	x.end()
	return st, p
}

func (rc *rpcConn) commit(fh []byte, off uint64, count uint32) (nfsStat, [8]byte) {
	rc.t.Helper()
	e := newEnc()
	e.Opaque(fh)
	e.Uint64(off)
	e.Uint32(count)
	x := rc.d(procCommit, e.Bytes())
	st := x.stat()
	x.wcc()
	var v [8]byte
	if st == nfsOK {
		copy(v[:], x.fixed(8))
	}
	x.end()
	return st, v
}

// --- MOUNT v3 ---

func (rc *rpcConn) mnt(path string) (nfsStat, []byte, []uint32) {
	rc.t.Helper()
	e := newEnc()
	e.String(path)
	x := dec{rc.t, rc.call(progMount, mntMnt, e.Bytes())}
	st := x.stat()
	if st != nfsOK {
		x.end()
		return st, nil, nil
	}
	fh := x.opaque(64)
	var flavors []uint32
	for n := x.u32(); n > 0; n-- {
		flavors = append(flavors, x.u32())
	}
	x.end()
	return st, fh, flavors
}

// mountRoot mounts "/" and returns the root handle.
func (rc *rpcConn) mountRoot() []byte {
	rc.t.Helper()
	st, fh, _ := rc.mnt("/")
	if st != nfsOK {
		rc.t.Fatalf("MNT /: mountstat3 %d", st)
	}
	return fh
}

func (rc *rpcConn) umnt(path string) {
	rc.t.Helper()
	e := newEnc()
	e.String(path)
	dec{rc.t, rc.call(progMount, mntUmnt, e.Bytes())}.end()
}

type mountBody struct{ host, dir string }

func (rc *rpcConn) dump() []mountBody {
	rc.t.Helper()
	x := dec{rc.t, rc.call(progMount, mntDump, nil)}
	var out []mountBody
	for x.boolean() {
		out = append(out, mountBody{string(x.opaque(-1)), string(x.opaque(-1))})
	}
	x.end()
	return out
}

type exportNode struct {
	dir    string
	groups []string
}

func (rc *rpcConn) exports() []exportNode {
	rc.t.Helper()
	x := dec{rc.t, rc.call(progMount, mntExport, nil)}
	var out []exportNode
	for x.boolean() {
		n := exportNode{dir: string(x.opaque(-1))}
		for x.boolean() {
			n.groups = append(n.groups, string(x.opaque(-1)))
		}
		out = append(out, n)
	}
	x.end()
	return out
}

// expectClosed waits up to d for the server to close the connection without
// sending anything more; it returns an error describing what happened otherwise.
func (rc *rpcConn) expectClosed(d time.Duration) error {
	rec, err := rc.recvRecord(d)
	if err == nil {
		r, perr := rpcwire.ParseReply(rec)
		if perr != nil {
			return fmt.Errorf("got a %d-byte record instead of a close", len(rec))
		}
		return fmt.Errorf("got a reply (xid %#x accepted %v stat %v) instead of a close", r.XID, r.Accepted, r.AcceptStat)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("connection still open after %v", d)
	}
	// io.EOF, a reset, or any other read error: the connection is closed.
	_ = io.EOF
	return nil
}

func rpcwireDecoder(b []byte) *rpcwire.Decoder { return rpcwire.NewDecoder(b) }

type rpcwireReply = rpcwire.Reply

// dialRPCFrom connects to addr from the local address ip (e.g. 127.0.0.2, to
// be another client), with root credentials.
func dialRPCFrom(t testing.TB, addr, ip string) *rpcConn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, ip, err)
	}
	t.Cleanup(func() { c.Close() })
	return &rpcConn{t: t, c: c, rr: rpcwire.NewRecordReader(c, 8<<20), Cred: rootCred, wmu: new(sync.Mutex)}
}
