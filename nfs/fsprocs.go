package nfs

import "github.com/hanfs/hanfs/fsstore"

// FSSTAT, FSINFO and PATHCONF. go-nfs answered these once; its replies
// carried a 1 GiB wtmax (the front refuses records over MaxRecord), an 8-byte
// invarsec where RFC 1813 has 4 bytes, and attributes that disagree with
// GETATTR (ctime = mtime, Go's mode bits), so the front answers them.

// FSINFO properties (RFC 1813 3.3.19).
const (
	fsfLink        = 0x01
	fsfSymlink     = 0x02
	fsfHomogeneous = 0x08
	fsfCanSetTime  = 0x10
)

func (r *request) fsstat() nfsstat {
	a, st := r.fh()
	if st == statGarbage {
		return st
	}
	r.e.Uint32(uint32(st))
	if st != nfsOK {
		r.s.putPostOp(r.e, nil)
		return st
	}
	fs := r.s.store.StatFS()
	r.s.putPostOp(r.e, &a)
	bs := uint64(fs.BlockSize)
	r.e.Uint64(fs.TotalBlocks * bs)
	r.e.Uint64(fs.FreeBlocks * bs)
	r.e.Uint64(fs.FreeBlocks * bs)
	r.e.Uint64(fs.Files + fs.FreeFiles)
	r.e.Uint64(fs.FreeFiles)
	r.e.Uint64(fs.FreeFiles)
	r.e.Uint32(0) // invarsec: the file system changes at any time
	return st
}

func (r *request) fsinfo() nfsstat {
	a, st := r.fh()
	if st == statGarbage {
		return st
	}
	r.e.Uint32(uint32(st))
	if st != nfsOK {
		r.s.putPostOp(r.e, nil)
		return st
	}
	r.s.putPostOp(r.e, &a)
	r.e.Uint32(MaxIO)   // rtmax
	r.e.Uint32(MaxIO)   // rtpref
	r.e.Uint32(4096)    // rtmult
	r.e.Uint32(MaxIO)   // wtmax
	r.e.Uint32(MaxIO)   // wtpref
	r.e.Uint32(4096)    // wtmult
	r.e.Uint32(1 << 16) // dtpref
	r.e.Uint64(fsstore.MaxFileSize)
	r.e.Uint32(0) // time_delta: nanoseconds
	r.e.Uint32(1)
	r.e.Uint32(fsfLink | fsfSymlink | fsfHomogeneous | fsfCanSetTime)
	return st
}

func (r *request) pathconf() nfsstat {
	a, st := r.fh()
	if st == statGarbage {
		return st
	}
	r.e.Uint32(uint32(st))
	if st != nfsOK {
		r.s.putPostOp(r.e, nil)
		return st
	}
	r.s.putPostOp(r.e, &a)
	r.e.Uint32(fsstore.MaxLinks)
	r.e.Uint32(fsstore.MaxNameLen)
	r.e.Bool(true)  // no_trunc: long names are refused, not truncated
	r.e.Bool(true)  // chown_restricted
	r.e.Bool(false) // case_insensitive
	r.e.Bool(true)  // case_preserving
	return st
}
