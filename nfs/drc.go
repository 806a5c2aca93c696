package nfs

import (
	"container/list"
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"time"

	"github.com/hanfs/hanfs/fsstore"
)

// The duplicate-request cache. A non-idempotent request is identified by the
// client's address (not its port: a client reconnects from another port after
// a failover), its xid and a hash of the call (program, version, procedure
// and arguments), so a reused xid with other arguments is a new request.
//
// Three layers answer a retransmission:
//  1. in memory, while the original is still running: the retransmission
//     waits for the original's reply;
//  2. in memory, once it finished: the cached reply bytes;
//  3. on the disk: the outcome record written in the same journal transaction
//     as the effect. A fresh process (after a restart or a failover) rebuilds
//     the reply from it, without executing the request again.

type drcEntry struct {
	done  chan struct{}
	reply []byte
	elem  *list.Element
	key   [16]byte
}

type drc struct {
	mu      sync.Mutex
	max     int
	entries map[[16]byte]*drcEntry
	lru     list.List
}

func newDRC(max int) *drc {
	return &drc{max: max, entries: make(map[[16]byte]*drcEntry)}
}

func (r *request) drcKey() [16]byte {
	h := sha256.New()
	ip := r.c.ip.As16()
	h.Write(ip[:])
	var b [16]byte
	binary.BigEndian.PutUint32(b[0:], r.call.XID)
	binary.BigEndian.PutUint32(b[4:], r.call.Prog)
	binary.BigEndian.PutUint32(b[8:], r.call.Vers)
	binary.BigEndian.PutUint32(b[12:], r.call.Proc)
	h.Write(b[:])
	h.Write(r.call.Args)
	var k [16]byte
	copy(k[:], h.Sum(nil))
	return k
}

// begin returns the entry for key and whether this caller owns it (must run
// the request and call finish).
func (c *drc) begin(key [16]byte) (*drcEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[key]; ok {
		return e, false
	}
	e := &drcEntry{done: make(chan struct{}), key: key}
	e.elem = c.lru.PushFront(e)
	c.entries[key] = e
	for c.lru.Len() > c.max {
		old := c.lru.Back().Value.(*drcEntry)
		select {
		case <-old.done:
		default:
			// Still running: keep it, stop evicting.
			c.lru.MoveToFront(old.elem)
			return e, true
		}
		c.lru.Remove(old.elem)
		delete(c.entries, old.key)
	}
	return e, true
}

func (c *drc) finish(e *drcEntry, reply []byte) {
	c.mu.Lock()
	e.reply = reply
	c.mu.Unlock()
	close(e.done)
}

// withDRC runs a non-idempotent request at most once.
func (r *request) withDRC() ([]byte, nfsstat) {
	key := r.drcKey()
	e, owner := r.s.drc.begin(key)
	if !owner {
		select {
		case <-e.done:
		case <-time.After(60 * time.Second):
			return nil, nfsErrJukebox
		}
		r.s.m.drcHits.WithLabelValues("memory").Inc()
		if e.reply == nil {
			return nil, nfsErrJukebox
		}
		return fixXID(e.reply, r.call.XID), nfsOK
	}
	var reply []byte
	var st nfsstat
	defer func() { r.s.drc.finish(e, reply) }()
	v, found, err := r.s.store.LookupRecord(key)
	if err != nil {
		reply = nil
		return nil, nfsErrIO
	}
	if found {
		o, err := decodeOutcome(v)
		if err == nil && o.proc == r.call.Proc {
			r.outcome = o
			r.s.m.drcHits.WithLabelValues("disk").Inc()
		}
	}
	r.record = &fsstore.Record{Key: key, Encode: encodeOutcome(r.call.Proc)}
	reply, st = r.run()
	if hook := r.s.cfg.AfterCommit; hook != nil && st == nfsOK && r.outcome == nil {
		hook(procNames[r.call.Proc])
	}
	return reply, st
}

// fixXID returns reply with its xid set (the same request always has the same
// xid, so this is a copy for safety).
func fixXID(reply []byte, xid uint32) []byte {
	out := append([]byte(nil), reply...)
	if len(out) >= 4 {
		binary.BigEndian.PutUint32(out, xid)
	}
	return out
}
