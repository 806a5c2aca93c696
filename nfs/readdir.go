package nfs

import (
	"github.com/hanfs/hanfs/fsstore"
)

// READDIR and READDIRPLUS. Cookies come from the store: hash of the name and
// index within its hash bucket, so they depend only on the names in the
// directory and are the same on every node and across restarts. "." and
// ".." have cookies 1 and 2; store cookies are never below 257. The cookie
// verifier is always zero: a cookie never goes bad, it only points between
// names, so BAD_COOKIE is never returned.

type dirEnt struct {
	name   string
	ino    fsstore.Ino
	cookie uint64
}

const (
	cookieDot    = 1
	cookieDotDot = 2
)

func xdrLen(s string) int { return 4 + (len(s)+3)&^3 }

func (r *request) readdir(plus bool) nfsstat {
	dir, st := r.fh()
	if st == statGarbage {
		return st
	}
	cookie, err1 := r.d.Uint64()
	_, err2 := r.d.FixedOpaque(8)
	dircount, err3 := r.d.Uint32()
	maxcount := dircount
	var err4 error
	if plus {
		maxcount, err4 = r.d.Uint32()
	}
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
		return statGarbage
	}
	if st == nfsOK && !dir.IsDir() {
		st = nfsErrNotdir
	}
	if st == nfsOK {
		if err := r.s.store.Access(r.cred, dir.Ino, fsstore.AccessRead); err != nil {
			st = statusOf(err)
		}
	}
	if st != nfsOK {
		r.e.Uint32(uint32(st))
		r.s.putPostOp(r.e, nil)
		return st
	}
	if maxcount > 1<<20 {
		maxcount = 1 << 20
	}
	// Collect candidate entries; sizes are checked while encoding.
	perEntry := 24
	if plus {
		perEntry = 24 + 88 + 56
	}
	limit := int(maxcount)/perEntry + 2
	var ents []dirEnt
	if cookie == 0 {
		ents = append(ents, dirEnt{".", dir.Ino, cookieDot})
	}
	if cookie <= cookieDot {
		parent := dir.Parent
		if dir.Ino == r.exp.root {
			parent = dir.Ino
		}
		ents = append(ents, dirEnt{"..", parent, cookieDotDot})
	}
	from := cookie
	if cookie <= cookieDotDot {
		from = 0
	}
	eof := true
	err := r.s.store.ReadDir(r.cred, dir.Ino, from, func(e fsstore.DirEntry) bool {
		if len(ents) >= limit {
			eof = false
			return false
		}
		ents = append(ents, dirEnt{e.Name, e.Ino, e.Cookie})
		return true
	})
	if err != nil {
		st = statusOf(err)
		r.e.Uint32(uint32(st))
		r.s.putPostOp(r.e, nil)
		return st
	}
	r.e.Uint32(uint32(nfsOK))
	r.s.putPostOp(r.e, &dir)
	r.e.FixedOpaque(make([]byte, 8))
	used := r.e.Len() + 8 // the closing "no more entries" and eof
	names := 0
	n := 0
	for _, ent := range ents {
		size := 4 + 8 + xdrLen(ent.name) + 8
		nameSize := 8 + xdrLen(ent.name) + 8
		var attr fsstore.Attr
		var fh []byte
		if plus {
			a, err := r.s.store.Getattr(ent.ino)
			if err == nil {
				attr = a
				fh = r.s.h.Make(r.exp.id, a.Ino, a.Gen)
			}
			size += 4 + 84 + 4 + 4 + len(fh) + 3
		}
		if used+size > int(maxcount)-8 || (plus && names+nameSize > int(dircount)) {
			eof = false
			break
		}
		used += size
		names += nameSize
		r.e.Bool(true)
		r.e.Uint64(uint64(ent.ino))
		r.e.String(ent.name)
		r.e.Uint64(ent.cookie)
		if plus {
			if fh != nil {
				r.s.putPostOp(r.e, &attr)
			} else {
				r.s.putPostOp(r.e, nil)
			}
			putPostOpFH(r.e, fh)
		}
		n++
	}
	if n == 0 && len(ents) > 0 {
		// Not even one entry fits in what the client allows.
		return r.tooSmall()
	}
	r.e.Bool(false)
	r.e.Bool(eof && n == len(ents))
	return nfsOK
}

// tooSmall rebuilds the reply as NFS3ERR_TOOSMALL.
func (r *request) tooSmall() nfsstat {
	r.e = newReplyEncoder(r.call.XID)
	r.e.Uint32(uint32(nfsErrToosmall))
	r.s.putPostOp(r.e, nil)
	return nfsErrToosmall
}
