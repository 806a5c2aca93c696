package nfs

import (
	"path"
	"sort"

	"github.com/hanfs/hanfs/nfs/rpcwire"
)

// MOUNT v3 procedures (RFC 1813 appendix I).
const (
	mntNull    = 0
	mntMnt     = 1
	mntDump    = 2
	mntUmnt    = 3
	mntUmntall = 4
	mntExport  = 5
)

// mountstat3 values.
const (
	mnt3OK             = 0
	mnt3ErrNoent       = 2
	mnt3ErrIO          = 5
	mnt3ErrAcces       = 13
	mnt3ErrNotdir      = 20
	mnt3ErrNametoolong = 63
)

type mountEntry struct {
	host, dir string
}

func (c *conn) mountCall(call *rpcwire.Call) []byte {
	s := c.s
	d := rpcwire.NewDecoder(call.Args)
	e := newReplyEncoder(call.XID)
	switch call.Proc {
	case mntNull:
	case mntMnt:
		dir, err := d.String(4096)
		if err != nil {
			return rpcwire.AcceptedReply(call.XID, rpcwire.GarbageArgs, nil)
		}
		st, fh := c.mnt(dir)
		e.Uint32(st)
		if st == mnt3OK {
			e.Opaque(fh)
			e.Uint32(1) // one flavor:
			e.Uint32(1) // AUTH_UNIX
		}
		s.log.Info("mount", "client", c.ip, "dir", dir, "status", st)
	case mntDump:
		s.mu.Lock()
		var ms []mountEntry
		for m := range s.mounts {
			ms = append(ms, m)
		}
		s.mu.Unlock()
		sort.Slice(ms, func(i, j int) bool { return ms[i].host+ms[i].dir < ms[j].host+ms[j].dir })
		for _, m := range ms {
			e.Bool(true)
			e.String(m.host)
			e.String(m.dir)
		}
		e.Bool(false)
	case mntUmnt:
		dir, err := d.String(4096)
		if err != nil {
			return rpcwire.AcceptedReply(call.XID, rpcwire.GarbageArgs, nil)
		}
		s.mu.Lock()
		delete(s.mounts, mountEntry{c.ip.String(), dir})
		s.mu.Unlock()
	case mntUmntall:
		s.mu.Lock()
		for m := range s.mounts {
			if m.host == c.ip.String() {
				delete(s.mounts, m)
			}
		}
		s.mu.Unlock()
	case mntExport:
		for _, x := range s.exports {
			e.Bool(true)
			e.String(x.Path)
			for _, p := range x.Clients {
				e.Bool(true)
				e.String(p.String())
			}
			e.Bool(false)
		}
		e.Bool(false)
	default:
		return rpcwire.AcceptedReply(call.XID, rpcwire.ProcUnavail, nil)
	}
	return e.Bytes()
}

// mnt resolves a MNT request for dir: an export path or a directory below one.
func (c *conn) mnt(dir string) (uint32, []byte) {
	s := c.s
	if len(dir) > 1024 {
		return mnt3ErrNametoolong, nil
	}
	clean := path.Clean("/" + dir)
	var best *Export
	for _, x := range s.exports {
		if clean == x.Path || x.Path == "/" || len(clean) > len(x.Path) && clean[:len(x.Path)] == x.Path && clean[len(x.Path)] == '/' {
			if best == nil || len(x.Path) > len(best.Path) {
				best = x
			}
		}
	}
	if best == nil {
		return mnt3ErrNoent, nil
	}
	if !best.Allows(c.ip) {
		s.log.Warn("mount refused: client not allowed by the export", "client", c.ip, "export", best.Path)
		return mnt3ErrAcces, nil
	}
	a, err := s.resolve(clean)
	if err != nil {
		st := statusOf(err)
		if st == nfsErrNoent || st == nfsErrNotdir {
			return uint32(st), nil
		}
		return mnt3ErrIO, nil
	}
	if !a.IsDir() {
		return mnt3ErrNotdir, nil
	}
	s.mu.Lock()
	s.mounts[mountEntry{c.ip.String(), dir}] = struct{}{}
	s.mu.Unlock()
	return mnt3OK, s.h.Make(best.id, a.Ino, a.Gen)
}
