package nfs

import (
	"errors"

	"github.com/hanfs/hanfs/fsstore"
	"github.com/hanfs/hanfs/shareddisk"
)

func (r *request) getattr() nfsstat {
	a, st := r.fh()
	if st == statGarbage {
		return st
	}
	r.e.Uint32(uint32(st))
	if st == nfsOK {
		r.s.putFattr(r.e, &a)
	}
	return st
}

func (r *request) setattr() nfsstat {
	a, st := r.fh()
	if st == statGarbage {
		return st
	}
	sa, err := readSattr(r.d)
	if err != nil {
		return statGarbage
	}
	guarded, err := r.d.Bool()
	if err != nil {
		return statGarbage
	}
	if guarded {
		t, err := readTime(r.d)
		if err != nil {
			return statGarbage
		}
		sa.set.Guard = &t
	}
	pre := preOp(&a)
	if st == nfsOK {
		st = r.writable()
	}
	if st != nfsOK {
		r.e.Uint32(uint32(st))
		r.s.putWcc(r.e, wcc{}, nil)
		return st
	}
	post, err := r.mutate(func() (fsstore.Attr, error) { return r.s.store.Setattr(r.op(), a.Ino, sa.set) })
	st = statusOf(err)
	r.e.Uint32(uint32(st))
	if err != nil {
		r.s.putWccIno(r.e, pre, a.Ino)
		return st
	}
	r.s.putWccIno(r.e, pre, post.Ino)
	return st
}

func (r *request) lookup() nfsstat {
	dir, name, st := r.diropargs()
	if st == statGarbage {
		return st
	}
	var obj fsstore.Attr
	if st == nfsOK {
		var err error
		if name == ".." && dir.Ino == r.exp.root {
			obj = dir // never leave the export
		} else {
			obj, err = r.s.store.Lookup(r.cred, dir.Ino, name)
		}
		st = statusOf(err)
	}
	r.e.Uint32(uint32(st))
	if st != nfsOK {
		if dir.Ino != 0 {
			r.s.putPostOp(r.e, &dir)
		} else {
			r.s.putPostOp(r.e, nil)
		}
		return st
	}
	r.e.Opaque(r.s.h.Make(r.exp.id, obj.Ino, obj.Gen))
	r.s.putPostOp(r.e, &obj)
	r.s.putPostOp(r.e, &dir)
	return st
}

// ACCESS bits (RFC 1813 3.3.4).
const (
	access3Read    = 0x01
	access3Lookup  = 0x02
	access3Modify  = 0x04
	access3Extend  = 0x08
	access3Delete  = 0x10
	access3Execute = 0x20
)

func (r *request) access() nfsstat {
	a, st := r.fh()
	if st == statGarbage {
		return st
	}
	want, err := r.d.Uint32()
	if err != nil {
		return statGarbage
	}
	r.e.Uint32(uint32(st))
	if st != nfsOK {
		r.s.putPostOp(r.e, nil)
		return st
	}
	got := uint32(0)
	check := func(bit, mask uint32) {
		if want&bit != 0 && r.s.store.Access(r.cred, a.Ino, mask) == nil {
			got |= bit
		}
	}
	check(access3Read, fsstore.AccessRead)
	if a.IsDir() {
		check(access3Lookup, fsstore.AccessExec)
		check(access3Delete, fsstore.AccessWrite|fsstore.AccessExec)
	} else {
		check(access3Execute, fsstore.AccessExec)
	}
	check(access3Modify, fsstore.AccessWrite)
	check(access3Extend, fsstore.AccessWrite)
	if r.exp.ReadOnly {
		got &^= access3Modify | access3Extend | access3Delete
	}
	r.s.putPostOp(r.e, &a)
	r.e.Uint32(got)
	return st
}

func (r *request) readlink() nfsstat {
	a, st := r.fh()
	if st == statGarbage {
		return st
	}
	var target string
	if st == nfsOK {
		if !a.IsSymlink() {
			st = nfsErrInval
		} else {
			var err error
			target, err = r.s.store.Readlink(a.Ino)
			st = statusOf(err)
		}
	}
	r.e.Uint32(uint32(st))
	if st != nfsOK {
		r.s.putPostOp(r.e, nil)
		return st
	}
	r.s.putPostOp(r.e, &a)
	r.e.String(target)
	return st
}

// ioCred applies the owner override of NFS servers: the owner of a file may
// read and write it whatever its mode bits (a file created read-only is
// still written by the program that created it, as it would be locally).
func (r *request) ioCred(a *fsstore.Attr) *fsstore.Cred {
	if r.cred != nil && r.cred.UID == a.UID {
		return nil
	}
	return r.cred
}

func (r *request) read() nfsstat {
	a, st := r.fh()
	if st == statGarbage {
		return st
	}
	off, err1 := r.d.Uint64()
	count, err2 := r.d.Uint32()
	if err1 != nil || err2 != nil {
		return statGarbage
	}
	if st == nfsOK && a.IsDir() {
		st = nfsErrIsdir
	} else if st == nfsOK && !a.IsRegular() {
		st = nfsErrInval
	}
	if count > MaxIO {
		count = MaxIO
	}
	if st != nfsOK {
		r.e.Uint32(uint32(st))
		r.s.putPostOp(r.e, nil)
		return st
	}
	// The data goes from the disk into a pooled buffer, after room for the
	// headers, and the reply is sent from that buffer: no per-request
	// allocation and no copy of the data in this process (when the request
	// is block-aligned). Blocks that the store read ahead are sent from the
	// store's cache, without a copy either. The store reads whole blocks, so
	// p is rounded up.
	buf, putBuf := getReadBuf()
	p := buf[readHead : readHead+(int(count)+shareddisk.BlockSize-1)/shareddisk.BlockSize*shareddisk.BlockSize]
	data, n, eof, unref, err := r.s.store.ReadRefs(r.ioCred(&a), a.Ino, p, int64(off))
	release := func() {
		unref()
		putBuf()
	}
	if err == nil && n > int(count) {
		// Only the rounding filled more: the file goes on after count bytes.
		n, eof = int(count), false
		data = trimBufs(data, n)
	}
	st = statusOf(err)
	r.e.Uint32(uint32(st))
	if st != nfsOK {
		release()
		r.s.putPostOp(r.e, nil)
		return st
	}
	r.s.putPostOpIno(r.e, a.Ino)
	r.e.Uint32(uint32(n))
	r.e.Bool(eof)
	r.e.Uint32(uint32(n)) // the opaque data's length; the data follows in buf
	head := r.e.Bytes()   // about 130 bytes: fattr3 has a fixed size
	start := readHead - len(head)
	copy(buf[start:], head)
	pad := -n & 3
	if len(data) == 1 && n > 0 && &data[0][0] == &buf[readHead] {
		// All of it was read into buf, right after the headers.
		clear(buf[readHead+n : readHead+n+pad])
		r.reply, r.release = buf[start:readHead+n+pad], release
		return st
	}
	r.reply, r.release = buf[start:readHead], release
	r.tail = data
	if pad > 0 {
		r.tail = append(r.tail, zeros[:pad])
	}
	return st
}

// zeros pads XDR opaque data sent from buffers that have no room for it.
var zeros [4]byte

// trimBufs cuts bufs to their first n bytes.
func trimBufs(bufs [][]byte, n int) [][]byte {
	for i, b := range bufs {
		if len(b) >= n {
			bufs[i] = b[:n]
			return bufs[:i+1]
		}
		n -= len(b)
	}
	return bufs
}

// stable_how values.
const fileSync = 2

func (r *request) write() nfsstat {
	a, st := r.fh()
	if st == statGarbage {
		return st
	}
	off, err1 := r.d.Uint64()
	count, err2 := r.d.Uint32()
	_, err3 := r.d.Uint32() // stable: every write is FILE_SYNC
	data, err4 := r.d.Opaque(MaxIO)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
		return statGarbage
	}
	pre := preOp(&a)
	if st == nfsOK {
		st = r.writable()
	}
	if st == nfsOK && a.IsDir() {
		st = nfsErrIsdir
	} else if st == nfsOK && !a.IsRegular() {
		st = nfsErrInval
	}
	if st == nfsOK && int(count) > len(data) {
		st = nfsErrInval
	}
	var post fsstore.Attr
	if st == nfsOK {
		var err error
		post, err = r.s.store.Write(&fsstore.Op{Cred: r.ioCred(&a)}, a.Ino, data[:count], int64(off))
		st = statusOf(err)
	}
	r.e.Uint32(uint32(st))
	if st != nfsOK {
		if a.Ino != 0 {
			r.s.putWccIno(r.e, pre, a.Ino)
		} else {
			r.s.putWcc(r.e, wcc{}, nil)
		}
		return st
	}
	r.s.putWcc(r.e, pre, &post)
	r.e.Uint32(count)
	r.e.Uint32(fileSync)
	r.e.FixedOpaque(r.s.verf[:])
	return st
}

func (r *request) commit() nfsstat {
	a, st := r.fh()
	if st == statGarbage {
		return st
	}
	if _, err := r.d.Uint64(); err != nil {
		return statGarbage
	}
	if _, err := r.d.Uint32(); err != nil {
		return statGarbage
	}
	r.e.Uint32(uint32(st))
	if st != nfsOK {
		r.s.putWcc(r.e, wcc{}, nil)
		return st
	}
	// Every WRITE was durable before its reply: nothing is left to commit.
	r.s.putWcc(r.e, preOp(&a), &a)
	r.e.FixedOpaque(r.s.verf[:])
	return st
}

// replyCreated encodes the result of CREATE, MKDIR, SYMLINK and MKNOD.
func (r *request) replyCreated(st nfsstat, obj *fsstore.Attr, dir fsstore.Attr, pre wcc) nfsstat {
	r.e.Uint32(uint32(st))
	if st == nfsOK {
		putPostOpFH(r.e, r.s.h.Make(r.exp.id, obj.Ino, obj.Gen))
		if obj.Mode != 0 {
			r.s.putPostOp(r.e, obj)
		} else {
			r.s.putPostOp(r.e, nil)
		}
	}
	if dir.Ino != 0 {
		r.s.putWccIno(r.e, pre, dir.Ino)
	} else {
		r.s.putWcc(r.e, wcc{}, nil)
	}
	return st
}

// Create modes.
const (
	createUnchecked = 0
	createGuarded   = 1
	createExclusive = 2
)

func (r *request) create() nfsstat {
	dir, name, st := r.diropargs()
	if st == statGarbage {
		return st
	}
	how, err := r.d.Uint32()
	if err != nil {
		return statGarbage
	}
	var sa sattr
	var verf uint64
	switch how {
	case createUnchecked, createGuarded:
		if sa, err = readSattr(r.d); err != nil {
			return statGarbage
		}
	case createExclusive:
		if verf, err = r.d.Uint64(); err != nil {
			return statGarbage
		}
	default:
		return statGarbage
	}
	pre := preOp(&dir)
	if st == nfsOK {
		st = r.writable()
	}
	if st != nfsOK {
		return r.replyCreated(st, nil, dir, pre)
	}
	mode := uint32(0o644)
	if how == createExclusive {
		mode = 0o600
	} else if sa.set.Mode != nil {
		mode = *sa.set.Mode
		sa.set.Mode = nil
	}
	cm := []fsstore.CreateMode{fsstore.CreateUnchecked, fsstore.CreateGuarded, fsstore.CreateExclusive}[how]
	obj, err := r.mutate(func() (fsstore.Attr, error) {
		return r.s.store.Create(r.op(), dir.Ino, name, mode, cm, verf)
	})
	if err == nil && how != createExclusive && (sa.set.Size != nil || sa.set.UID != nil || sa.set.GID != nil ||
		sa.set.Atime != nil || sa.set.Mtime != nil || sa.set.AtimeNow || sa.set.MtimeNow) {
		obj, err = r.s.store.Setattr(&fsstore.Op{Cred: r.cred}, obj.Ino, sa.set)
	}
	return r.replyCreated(statusOf(err), &obj, dir, pre)
}

func (r *request) makeNode() nfsstat {
	dir, name, st := r.diropargs()
	if st == statGarbage {
		return st
	}
	var sa sattr
	var err error
	var target string
	var mode uint32
	var rdev uint64
	switch r.call.Proc {
	case procMkdir:
		if sa, err = readSattr(r.d); err != nil {
			return statGarbage
		}
		mode = fsstore.ModeDir | 0o755
	case procSymlink:
		if sa, err = readSattr(r.d); err != nil {
			return statGarbage
		}
		if target, err = r.d.String(maxPathLen); err != nil {
			return statGarbage
		}
		mode = fsstore.ModeSymlink
	case procMknod:
		typ, err := r.d.Uint32()
		if err != nil {
			return statGarbage
		}
		switch typ {
		case nf3Chr, nf3Blk:
			if sa, err = readSattr(r.d); err != nil {
				return statGarbage
			}
			major, err1 := r.d.Uint32()
			minor, err2 := r.d.Uint32()
			if err1 != nil || err2 != nil {
				return statGarbage
			}
			rdev = uint64(major)<<32 | uint64(minor)
			mode = fsstore.ModeChar
			if typ == nf3Blk {
				mode = fsstore.ModeBlock
			}
		case nf3Sock, nf3Fifo:
			if sa, err = readSattr(r.d); err != nil {
				return statGarbage
			}
			mode = fsstore.ModeSocket
			if typ == nf3Fifo {
				mode = fsstore.ModeFIFO
			}
		default:
			if st == nfsOK {
				st = nfsErrBadtype
			}
		}
		mode |= 0o644
	}
	pre := preOp(&dir)
	if st == nfsOK {
		st = r.writable()
	}
	if st != nfsOK {
		return r.replyCreated(st, nil, dir, pre)
	}
	if sa.set.Mode != nil {
		mode = mode&fsstore.ModeType | *sa.set.Mode&fsstore.ModePerm
		sa.set.Mode = nil
	}
	obj, err := r.mutate(func() (fsstore.Attr, error) {
		switch r.call.Proc {
		case procMkdir:
			return r.s.store.Mkdir(r.op(), dir.Ino, name, mode)
		case procSymlink:
			return r.s.store.Symlink(r.op(), dir.Ino, name, target)
		}
		return r.s.store.Mknod(r.op(), dir.Ino, name, mode, rdev)
	})
	if err == nil && (sa.set.UID != nil || sa.set.GID != nil || sa.set.Atime != nil || sa.set.Mtime != nil) && r.call.Proc != procSymlink {
		sa.set.Size = nil
		obj, err = r.s.store.Setattr(&fsstore.Op{Cred: r.cred}, obj.Ino, sa.set)
	}
	return r.replyCreated(statusOf(err), &obj, dir, pre)
}

func (r *request) remove() nfsstat {
	dir, name, st := r.diropargs()
	if st == statGarbage {
		return st
	}
	pre := preOp(&dir)
	if st == nfsOK {
		st = r.writable()
	}
	if st == nfsOK {
		_, err := r.mutate(func() (fsstore.Attr, error) {
			if r.call.Proc == procRmdir {
				return fsstore.Attr{}, r.s.store.Rmdir(r.op(), dir.Ino, name)
			}
			return fsstore.Attr{}, r.s.store.Unlink(r.op(), dir.Ino, name)
		})
		st = statusOf(err)
		if r.call.Proc == procRemove && errors.Is(err, fsstore.ErrIsDir) {
			st = nfsErrIsdir
		}
	}
	r.e.Uint32(uint32(st))
	if dir.Ino != 0 {
		r.s.putWccIno(r.e, pre, dir.Ino)
	} else {
		r.s.putWcc(r.e, wcc{}, nil)
	}
	return st
}

func (r *request) rename() nfsstat {
	from, oname, st := r.diropargs()
	if st == statGarbage {
		return st
	}
	to, nname, st2 := r.diropargs()
	if st2 == statGarbage {
		return st2
	}
	if st == nfsOK {
		st = st2
	}
	fpre, tpre := preOp(&from), preOp(&to)
	if st == nfsOK {
		st = r.writable()
	}
	if st == nfsOK {
		_, err := r.mutate(func() (fsstore.Attr, error) {
			return fsstore.Attr{}, r.s.store.Rename(r.op(), from.Ino, oname, to.Ino, nname)
		})
		st = statusOf(err)
	}
	r.e.Uint32(uint32(st))
	for _, d := range []struct {
		pre wcc
		ino fsstore.Ino
	}{{fpre, from.Ino}, {tpre, to.Ino}} {
		if d.ino != 0 {
			r.s.putWccIno(r.e, d.pre, d.ino)
		} else {
			r.s.putWcc(r.e, wcc{}, nil)
		}
	}
	return st
}

func (r *request) link() nfsstat {
	file, st := r.fh()
	if st == statGarbage {
		return st
	}
	dir, name, st2 := r.diropargs()
	if st2 == statGarbage {
		return st2
	}
	if st == nfsOK {
		st = st2
	}
	pre := preOp(&dir)
	if st == nfsOK {
		st = r.writable()
	}
	if st == nfsOK {
		_, err := r.mutate(func() (fsstore.Attr, error) {
			return r.s.store.Link(r.op(), file.Ino, dir.Ino, name)
		})
		st = statusOf(err)
	}
	r.e.Uint32(uint32(st))
	if file.Ino != 0 {
		r.s.putPostOpIno(r.e, file.Ino)
	} else {
		r.s.putPostOp(r.e, nil)
	}
	if dir.Ino != 0 {
		r.s.putWccIno(r.e, pre, dir.Ino)
	} else {
		r.s.putWcc(r.e, wcc{}, nil)
	}
	return st
}
