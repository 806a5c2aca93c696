package nfs

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/hanfs/hanfs/fsstore"
	"github.com/hanfs/hanfs/nfs/rpcwire"
)

// statGarbage is returned by a procedure whose arguments do not decode; the
// reply becomes GARBAGE_ARGS.
const statGarbage nfsstat = 0xffffffff

// request is one NFS call being served.
type request struct {
	c    *conn
	s    *Server
	call *rpcwire.Call
	rec  []byte
	d    *rpcwire.Decoder
	e    *rpcwire.Encoder
	raw  *fsstore.Cred // as the client sent it
	cred *fsstore.Cred // after the export's squashing
	exp  *Export
	// For non-idempotent procedures: the duplicate-request record to write
	// with the effect, and the outcome recorded by an earlier execution.
	record  *fsstore.Record
	outcome *outcome
	// reply, when set, is the reply, built by READ in a pooled buffer that
	// release gives back once the reply is sent; tail, if any, is sent
	// after it (the data, from the store's read-ahead cache).
	reply   []byte
	tail    [][]byte
	release func()
}

// nonIdempotent lists the procedures covered by the duplicate-request cache.
var nonIdempotent = [numProcs]bool{
	procSetattr: true, procCreate: true, procMkdir: true, procSymlink: true, procMknod: true,
	procRemove: true, procRmdir: true, procRename: true, procLink: true,
}

// nfsCall runs an NFS call. A non-nil out says the reply goes on with
// out.tail, and out.release must be called once it is written or dropped.
func (c *conn) nfsCall(call *rpcwire.Call, rec []byte) (reply []byte, out *pooled) {
	s := c.s
	if call.Proc >= numProcs {
		s.m.rejects.WithLabelValues("proc_unavail").Inc()
		return rpcwire.AcceptedReply(call.XID, rpcwire.ProcUnavail, nil), nil
	}
	raw, ok := credOf(call)
	if !ok {
		s.m.rejects.WithLabelValues("auth_flavor").Inc()
		return rpcwire.DeniedAuth(call.XID, rpcwire.AuthTooWeak), nil
	}
	start := time.Now()
	r := &request{c: c, s: s, call: call, rec: rec, d: rpcwire.NewDecoder(call.Args), raw: raw, cred: raw,
		e: newReplyEncoder(call.XID)}
	var st nfsstat
	if nonIdempotent[call.Proc] && !faultNoDRC {
		reply, st = r.withDRC()
	} else {
		reply, st = r.run()
	}
	s.m.observe(call.Proc, st, time.Since(start))
	if r.release != nil {
		out = &pooled{tail: r.tail, release: r.release}
	}
	return reply, out
}

// run executes the procedure and returns the reply.
func (r *request) run() ([]byte, nfsstat) {
	var st nfsstat
	switch r.call.Proc {
	case procNull:
		return r.forward()
	case procGetattr:
		st = r.getattr()
	case procSetattr:
		st = r.setattr()
	case procLookup:
		st = r.lookup()
	case procAccess:
		st = r.access()
	case procReadlink:
		st = r.readlink()
	case procRead:
		st = r.read()
	case procWrite:
		st = r.write()
	case procCreate:
		st = r.create()
	case procMkdir, procSymlink, procMknod:
		st = r.makeNode()
	case procRemove, procRmdir:
		st = r.remove()
	case procRename:
		st = r.rename()
	case procLink:
		st = r.link()
	case procReaddir:
		st = r.readdir(false)
	case procReaddirplus:
		st = r.readdir(true)
	case procCommit:
		st = r.commit()
	case procFsstat:
		st = r.fsstat()
	case procFsinfo:
		st = r.fsinfo()
	case procPathconf:
		st = r.pathconf()
	}
	if st == statGarbage {
		r.s.m.rejects.WithLabelValues("garbage_args").Inc()
		return rpcwire.AcceptedReply(r.call.XID, rpcwire.GarbageArgs, nil), st
	}
	if r.reply != nil {
		return r.reply, st
	}
	return r.e.Bytes(), st
}

// op returns the store operation context for a mutation.
func (r *request) op() *fsstore.Op {
	return &fsstore.Op{Cred: r.cred, Record: r.record}
}

// mutate runs fn unless an earlier execution of this very request is
// recorded, in which case it returns the recorded object instead.
func (r *request) mutate(fn func() (fsstore.Attr, error)) (fsstore.Attr, error) {
	if r.outcome != nil {
		a, err := r.s.store.Getattr(r.outcome.ino)
		if err != nil || a.Gen != r.outcome.gen {
			return fsstore.Attr{Ino: r.outcome.ino, Gen: r.outcome.gen}, nil
		}
		return a, nil
	}
	return fn()
}

// fh decodes a file handle argument, checks the export and the client, and
// returns the object's current attributes.
func (r *request) fh() (fsstore.Attr, nfsstat) {
	b, err := r.d.Opaque(maxHandle)
	if err != nil {
		return fsstore.Attr{}, statGarbage
	}
	expID, ino, gen, err := r.s.h.Parse(b)
	if err != nil {
		return fsstore.Attr{}, statusOf(err)
	}
	e := r.s.byID[expID]
	if e == nil {
		return fsstore.Attr{}, nfsErrStale
	}
	if !e.Allows(r.c.ip) {
		return fsstore.Attr{}, nfsErrAcces
	}
	if r.exp == nil {
		r.exp, r.cred = e, e.squash(r.raw)
	} else if r.exp != e {
		return fsstore.Attr{}, nfsErrXdev
	}
	a, err := r.s.store.Check(ino, gen)
	if err != nil {
		return fsstore.Attr{}, statusOf(err)
	}
	return a, nfsOK
}

// name decodes a file name argument.
func (r *request) name() (string, nfsstat) {
	n, err := r.d.String(4096)
	if err != nil {
		return "", statGarbage
	}
	if len(n) > maxNameLen {
		return "", nfsErrNametoolong
	}
	return n, nfsOK
}

// diropargs decodes (dir handle, name).
func (r *request) diropargs() (fsstore.Attr, string, nfsstat) {
	dir, st := r.fh()
	if st == statGarbage {
		return dir, "", st
	}
	name, st2 := r.name()
	if st2 == statGarbage {
		return dir, "", st2
	}
	if st != nfsOK {
		return dir, name, st
	}
	if !dir.IsDir() {
		return dir, name, nfsErrNotdir
	}
	return dir, name, st2
}

// writable says whether the request may change the export.
func (r *request) writable() nfsstat {
	if r.exp != nil && r.exp.ReadOnly {
		return nfsErrRofs
	}
	return nfsOK
}

// outcome is what the duplicate-request cache records of a mutation: enough
// to rebuild the reply of a retransmission (the object made, if any).
type outcome struct {
	proc uint32
	ino  fsstore.Ino
	gen  uint64
}

// Outcome record layout: [0] version 1, [1] procedure, [2:10) inode,
// [10:18) generation.
func encodeOutcome(proc uint32) func(a fsstore.Attr) []byte {
	return func(a fsstore.Attr) []byte {
		b := make([]byte, 18)
		b[0], b[1] = 1, byte(proc)
		binary.BigEndian.PutUint64(b[2:10], uint64(a.Ino))
		binary.BigEndian.PutUint64(b[10:18], a.Gen)
		return b
	}
}

func decodeOutcome(b []byte) (*outcome, error) {
	if len(b) != 18 || b[0] != 1 {
		return nil, errors.New("malformed duplicate-request record")
	}
	return &outcome{proc: uint32(b[1]), ino: fsstore.Ino(binary.BigEndian.Uint64(b[2:10])), gen: binary.BigEndian.Uint64(b[10:18])}, nil
}

// newReplyEncoder starts a SUCCESS reply for xid.
func newReplyEncoder(xid uint32) *rpcwire.Encoder {
	return rpcwire.NewEncoder(rpcwire.AppendAcceptedHeader(make([]byte, 0, 256), xid))
}
