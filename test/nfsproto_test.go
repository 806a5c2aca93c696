package test

// Every NFSv3 and MOUNT v3 procedure against a real `hanfsd serve` process,
// with the error cases of RFC 1813 that clients depend on.

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestProcedures(t *testing.T) {
	t.Parallel()
	srv := StartServer(t, newImage(t))
	rc := dialRPC(t, srv.Addr)
	root := rc.mountRoot()
	user := rc.withCred(userCred(1000))

	t.Run("NULL", func(t *testing.T) {
		rc := rc.on(t)
		rc.null()
		dec{t, rc.call(progMount, mntNull, nil)}.end()
	})

	t.Run("GETATTR", func(t *testing.T) {
		rc, user := rc.on(t), user.on(t)
		_ = user
		a := rc.mustGetattr(root)
		if a.Type != nf3Dir || a.Nlink < 2 || a.Fileid == 0 {
			t.Fatalf("root attributes %+v: want a directory with nlink >= 2 and a fileid", a)
		}
		if a.Mode&^0o7777 != 0 {
			t.Errorf("root mode %#o has bits outside 07777", a.Mode)
		}
	})

	t.Run("MOUNT", func(t *testing.T) {
		rc, user := rc.on(t), user.on(t)
		_ = user
		st, fh, flavors := rc.mnt("/")
		if st != nfsOK || !bytes.Equal(fh, root) {
			t.Fatalf("MNT / again: %v, same handle %v", st, bytes.Equal(fh, root))
		}
		if !slices.Contains(flavors, 1) {
			t.Errorf("MNT flavors %v: want AUTH_UNIX (1)", flavors)
		}
		rc.mustCreate(root, "mnt-file")
		rc.mustMkdir(root, "mnt-dir")
		if st, _, _ := rc.mnt("/no-such-dir"); st != errNoent {
			t.Errorf("MNT of a missing path: %v, want MNT3ERR_NOENT", st)
		}
		if st, _, _ := rc.mnt("/mnt-file"); st != errNotdir {
			t.Errorf("MNT of a file: %v, want MNT3ERR_NOTDIR", st)
		}
		st, sub, _ := rc.mnt("/mnt-dir")
		if st != nfsOK {
			t.Fatalf("MNT of a directory below the export: %v", st)
		}
		if a := rc.mustGetattr(sub); a.Type != nf3Dir {
			t.Errorf("MNT /mnt-dir handle is not a directory: %+v", a)
		}
		if d := rc.dump(); !slices.Contains(d, mountBody{"127.0.0.1", "/"}) || !slices.Contains(d, mountBody{"127.0.0.1", "/mnt-dir"}) {
			t.Errorf("DUMP %v: want 127.0.0.1:/ and 127.0.0.1:/mnt-dir", d)
		}
		rc.umnt("/mnt-dir")
		if d := rc.dump(); slices.Contains(d, mountBody{"127.0.0.1", "/mnt-dir"}) || !slices.Contains(d, mountBody{"127.0.0.1", "/"}) {
			t.Errorf("DUMP after UMNT /mnt-dir: %v", d)
		}
		ex := rc.exports()
		if len(ex) != 1 || ex[0].dir != "/" || !slices.Contains(ex[0].groups, "127.0.0.0/8") {
			t.Errorf("EXPORT %+v: want / to 127.0.0.0/8", ex)
		}
		// UMNTALL forgets every mount of this client.
		rc.mnt("/mnt-dir")
		dec{t, rc.call(progMount, 4, nil)}.end()
		for _, m := range rc.dump() {
			if m.host == "127.0.0.1" {
				t.Errorf("DUMP after UMNTALL still lists %v", m)
			}
		}
		rc.mountRoot()
		// Handles stay valid after UMNT (NFSv3 is stateless).
		rc.umnt("/")
		rc.mustGetattr(root)
		rc.mountRoot()
	})

	t.Run("LOOKUP", func(t *testing.T) {
		rc, user := rc.on(t), user.on(t)
		_ = user
		d := rc.mustMkdir(root, "lk")
		f := rc.mustCreate(d, "f")
		st, fh, obj := rc.lookup(root, "lk")
		if st != nfsOK || !bytes.Equal(fh, d) || obj == nil || obj.Type != nf3Dir {
			t.Fatalf("LOOKUP lk: %v, same handle as MKDIR %v, attr %+v", st, bytes.Equal(fh, d), obj)
		}
		if got := rc.mustLookup(d, "f"); !bytes.Equal(got, f) {
			t.Errorf("LOOKUP lk/f: handle differs from CREATE's")
		}
		rootAttr := rc.mustGetattr(root)
		st, up, upAttr := rc.lookup(d, "..")
		if st != nfsOK || upAttr == nil || upAttr.Fileid != rootAttr.Fileid {
			t.Errorf("LOOKUP lk/..: %v %+v, want the root (fileid %d)", st, upAttr, rootAttr.Fileid)
		} else if !bytes.Equal(up, root) {
			t.Errorf("LOOKUP lk/..: handle differs from the root handle")
		}
		st, up, upAttr = rc.lookup(root, "..")
		if st != nfsOK || !bytes.Equal(up, root) || upAttr.Fileid != rootAttr.Fileid {
			t.Errorf("LOOKUP .. at the export root: %v, root handle %v, attr %+v: want the root itself", st, bytes.Equal(up, root), upAttr)
		}
		if st, dot, _ := rc.lookup(d, "."); st != nfsOK || !bytes.Equal(dot, d) {
			t.Errorf("LOOKUP lk/.: %v, same handle %v", st, bytes.Equal(dot, d))
		}
		st, _, _, dirAttr := decodeLookup(rc.d(procLookup, argsDirop(d, "missing")))
		if st != errNoent {
			t.Errorf("LOOKUP missing: %v, want NOENT", st)
		}
		if dirAttr == nil || dirAttr.Type != nf3Dir {
			t.Errorf("LOOKUP missing: no directory attributes in the failure reply")
		}
		if st, _, _ := rc.lookup(f, "x"); st != errNotdir {
			t.Errorf("LOOKUP in a file: %v, want NOTDIR", st)
		}
		if st, _, _ := rc.lookup(d, strings.Repeat("n", 256)); st != errNametoolong && st != errNoent {
			t.Errorf("LOOKUP of a 256-byte name: %v, want NAMETOOLONG", st)
		}
	})

	t.Run("SETATTR", func(t *testing.T) {
		rc, user := rc.on(t), user.on(t)
		_ = user
		f := rc.mustCreate(root, "sa")
		if w := rc.write(f, 0, bytes.Repeat([]byte{7}, 5000), fileSync); w.st != nfsOK {
			t.Fatalf("WRITE: %v", w.st)
		}
		st, post := rc.setattr(f, sattr{Mode: u32p(0o600)}, nil)
		if st != nfsOK || post == nil || post.Mode != 0o600 {
			t.Fatalf("SETATTR mode 0600: %v, post %+v", st, post)
		}
		if st, post = rc.setattr(f, sattr{Size: u64p(100)}, nil); st != nfsOK || post.Size != 100 {
			t.Fatalf("SETATTR size 100: %v, post %+v", st, post)
		}
		if st, post = rc.setattr(f, sattr{Size: u64p(200)}, nil); st != nfsOK || post.Size != 200 {
			t.Fatalf("SETATTR size 200: %v, post %+v", st, post)
		}
		if data := rc.readAll(f); !bytes.Equal(data, append(bytes.Repeat([]byte{7}, 100), make([]byte, 100)...)) {
			t.Errorf("after truncate to 100 and extend to 200: contents wrong (%d bytes)", len(data))
		}
		mt := nfsTime{Sec: 1_600_000_000, Nsec: 123456789}
		at := nfsTime{Sec: 1_500_000_000, Nsec: 5}
		if st, post = rc.setattr(f, sattr{Atime: &at, Mtime: &mt}, nil); st != nfsOK || post.Mtime != mt || post.Atime != at {
			t.Errorf("SETATTR times: %v, post %+v", st, post)
		}
		if st, post = rc.setattr(f, sattr{UID: u32p(1234), GID: u32p(4321)}, nil); st != nfsOK || post.UID != 1234 || post.GID != 4321 {
			t.Errorf("SETATTR chown as root: %v, post %+v", st, post)
		}
		before := time.Now().Add(-time.Minute).Unix()
		if st, post = rc.setattr(f, sattr{MtimeNow: true}, nil); st != nfsOK || int64(post.Mtime.Sec) < before {
			t.Errorf("SETATTR mtime to server time: %v, post %+v", st, post)
		}
		// Guarded: the current ctime matches, another does not.
		a := rc.mustGetattr(f)
		if st, _ := rc.setattr(f, sattr{Mode: u32p(0o640)}, &a.Ctime); st != nfsOK {
			t.Errorf("guarded SETATTR with the current ctime: %v", st)
		}
		stale := a.Ctime // the ctime before the last change
		if st, _ := rc.setattr(f, sattr{Mode: u32p(0o644)}, &stale); st != errNotSync {
			t.Errorf("guarded SETATTR with an old ctime: %v, want NOT_SYNC", st)
		}
		if got := rc.mustGetattr(f); got.Mode != 0o640 {
			t.Errorf("mode after a refused guarded SETATTR: %#o, want 0640", got.Mode)
		}
		// A non-owner may not chmod.
		if st, _ := user.setattr(f, sattr{Mode: u32p(0o777)}, nil); st != errPerm {
			t.Errorf("SETATTR mode by a non-owner: %v, want PERM", st)
		}
	})

	t.Run("ACCESS", func(t *testing.T) {
		rc, user := rc.on(t), user.on(t)
		_ = user
		f := rc.mustCreate(root, "secret")
		if st, _ := rc.setattr(f, sattr{Mode: u32p(0o700)}, nil); st != nfsOK {
			t.Fatal(st)
		}
		all := uint32(accRead | accModify | accExtend | accExecute)
		if st, got := rc.access(f, all); st != nfsOK || got != all {
			t.Errorf("ACCESS as root on a 0700 root file: %v, granted %#x, want %#x", st, got, all)
		}
		if st, got := user.access(f, all); st != nfsOK || got != 0 {
			t.Errorf("ACCESS as uid 1000 on a 0700 root file: %v, granted %#x, want 0", st, got)
		}
		if st, got := user.access(root, accRead|accLookup|accModify|accExtend|accDelete); st != nfsOK || got != accRead|accLookup {
			t.Errorf("ACCESS as uid 1000 on the 0755 root directory: %v, granted %#x, want READ|LOOKUP", st, got)
		}
		// Even root may not execute a file with no execute bit (POSIX).
		nx := rc.mustCreate(root, "not-executable")
		rc.setattr(nx, sattr{Mode: u32p(0o644)}, nil)
		if st, got := rc.access(nx, accRead|accExecute); st != nfsOK || got != accRead {
			t.Errorf("ACCESS READ|EXECUTE as root on a 0644 file: %v, granted %#x, want READ only", st, got)
		}
		// The owner gets the bits the mode gives the owner.
		g := rc.mustCreate(root, "users-file")
		if st, _ := rc.setattr(g, sattr{UID: u32p(1000), GID: u32p(1000), Mode: u32p(0o600)}, nil); st != nfsOK {
			t.Fatal(st)
		}
		if st, got := user.access(g, all); st != nfsOK || got != accRead|accModify|accExtend {
			t.Errorf("ACCESS as the owner of a 0600 file: %v, granted %#x, want READ|MODIFY|EXTEND", st, got)
		}
	})

	t.Run("READ_WRITE_COMMIT", func(t *testing.T) {
		rc, user := rc.on(t), user.on(t)
		_ = user
		f := rc.mustCreate(root, "rw")
		data := make([]byte, 10000)
		for i := range data {
			data[i] = byte(i * 7)
		}
		w := rc.write(f, 0, data, fileSync)
		if w.st != nfsOK || w.count != uint32(len(data)) || w.committed != fileSync {
			t.Fatalf("WRITE FILE_SYNC: %v count %d committed %d", w.st, w.count, w.committed)
		}
		if w.post == nil || w.post.Size != uint64(len(data)) {
			t.Errorf("WRITE: post-op size %+v", w.post)
		}
		verf := w.verf
		w2 := rc.write(f, 10000, []byte("tail"), unstable)
		if w2.st != nfsOK || w2.count != 4 || w2.committed < unstable || w2.verf != verf {
			t.Errorf("WRITE UNSTABLE: %v count %d committed %d, verifier %x (first %x)", w2.st, w2.count, w2.committed, w2.verf, verf)
		}
		data = append(data, "tail"...)
		st, cv := rc.commit(f, 0, 0)
		if st != nfsOK || cv != verf {
			t.Errorf("COMMIT: %v verifier %x, want %x (the WRITE verifier)", st, cv, verf)
		}
		st, got, eof := rc.read(f, 0, 4096)
		if st != nfsOK || !bytes.Equal(got, data[:4096]) || eof {
			t.Errorf("READ 0+4096: %v, %d bytes, eof %v", st, len(got), eof)
		}
		st, got, eof = rc.read(f, 8192, 4096)
		if st != nfsOK || !bytes.Equal(got, data[8192:]) || !eof {
			t.Errorf("READ 8192+4096 of %d: %v, %d bytes, eof %v: want the last %d bytes and EOF", len(data), st, len(got), eof, len(data)-8192)
		}
		st, got, eof = rc.read(f, 0, uint32(len(data)))
		if st != nfsOK || !bytes.Equal(got, data) || !eof {
			t.Errorf("READ of exactly the whole file: %v, %d bytes, eof %v: want EOF", st, len(got), eof)
		}
		st, got, eof = rc.read(f, 1<<20, 10)
		if st != nfsOK || len(got) != 0 || !eof {
			t.Errorf("READ past EOF: %v, %d bytes, eof %v", st, len(got), eof)
		}
		// A write past EOF leaves a hole of zeros.
		if w := rc.write(f, 20000, []byte("x"), fileSync); w.st != nfsOK || w.post.Size != 20001 {
			t.Errorf("WRITE past EOF: %v post %+v", w.st, w.post)
		}
		all := rc.readAll(f)
		if len(all) != 20001 || !bytes.Equal(all[:len(data)], data) || !bytes.Equal(all[len(data):20000], make([]byte, 20000-len(data))) || all[20000] != 'x' {
			t.Errorf("file after a write past EOF: %d bytes, wrong contents", len(all))
		}
		// Offsets far past any file size: FBIG (or INVAL), and READ gives EOF.
		if w := rc.write(f, 1<<62, []byte("x"), fileSync); w.st == nfsOK {
			t.Errorf("WRITE at offset 2^62 succeeded")
		}
		if w := rc.write(f, 1<<64-2, []byte("xyz"), fileSync); w.st == nfsOK {
			t.Errorf("WRITE at offset 2^64-2 (past 2^64 at its end) succeeded")
		}
		if st, _ := rc.setattr(f, sattr{Size: u64p(1 << 62)}, nil); st == nfsOK {
			t.Errorf("SETATTR size 2^62 succeeded")
		}
		if st, got, eof := rc.read(f, 1<<40, 100); st != nfsOK || len(got) != 0 || !eof {
			t.Errorf("READ at offset 2^40: %v %d bytes eof %v, want OK, 0 bytes, EOF", st, len(got), eof)
		}
		if st, got, eof := rc.read(f, 1<<63, 100); st != errInval && (st != nfsOK || len(got) != 0 || !eof) {
			t.Errorf("READ at offset 2^63: %v %d bytes eof %v, want EOF (or INVAL)", st, len(got), eof)
		}
		// Concurrent WRITEs on one connection (pipelined): all durable, all there.
		pf := rc.mustCreate(root, "pipelined")
		var wargs [][]byte
		for i := 0; i < 128; i++ {
			wargs = append(wargs, argsWrite(pf, uint64(i)*4096, bytes.Repeat([]byte{byte(i)}, 4096), fileSync))
		}
		for i, d := range rc.pipeline(progNFS, procWrite, wargs) {
			if w := decodeWrite(dec{t, d}); w.st != nfsOK || w.count != 4096 || w.committed != fileSync {
				t.Fatalf("pipelined WRITE %d: %v count %d committed %d", i, w.st, w.count, w.committed)
			}
		}
		pdata := rc.readAll(pf)
		for i := 0; i < 128; i++ {
			if len(pdata) != 128*4096 || !bytes.Equal(pdata[i*4096:(i+1)*4096], bytes.Repeat([]byte{byte(i)}, 4096)) {
				t.Fatalf("after 128 pipelined WRITEs: %d bytes, block %d wrong", len(pdata), i)
			}
		}
		// 1 MiB in one WRITE.
		big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
		if w := rc.write(f, 0, big, fileSync); w.st != nfsOK || w.count != uint32(len(big)) {
			t.Errorf("1 MiB WRITE: %v count %d", w.st, w.count)
		}
		if st, got, _ := rc.read(f, 0, 1<<20); st != nfsOK || !bytes.Equal(got, big) {
			t.Errorf("1 MiB READ: %v %d bytes", st, len(got))
		}
	})

	t.Run("CREATE", func(t *testing.T) {
		rc, user := rc.on(t), user.on(t)
		_ = user
		d := rc.mustMkdir(root, "cr")
		st, fh, a := rc.create(d, "u", createUnchecked, sattr{Mode: u32p(0o640)}, 0)
		if st != nfsOK || fh == nil || a == nil || a.Type != nf3Reg || a.Mode != 0o640 || a.Size != 0 {
			t.Fatalf("CREATE UNCHECKED: %v attr %+v", st, a)
		}
		rc.write(fh, 0, []byte("some data"), fileSync)
		// UNCHECKED on an existing file succeeds, same object, and applies the size.
		st, fh2, a2 := rc.create(d, "u", createUnchecked, sattr{Size: u64p(0)}, 0)
		if st != nfsOK || !bytes.Equal(fh2, fh) || a2 == nil || a2.Size != 0 {
			t.Errorf("CREATE UNCHECKED over an existing file with size 0: %v, same handle %v, attr %+v", st, bytes.Equal(fh2, fh), a2)
		}
		if st, _, _ := rc.create(d, "g", createGuarded, sattr{}, 0); st != nfsOK {
			t.Errorf("CREATE GUARDED: %v", st)
		}
		if st, _, _ := rc.create(d, "g", createGuarded, sattr{}, 0); st != errExist {
			t.Errorf("CREATE GUARDED of an existing name: %v, want EXIST", st)
		}
		// EXCLUSIVE: the same verifier again (a retransmission the server may
		// not remember by xid) succeeds with the same object; another verifier
		// gets EXIST.
		const v1, v2 = 0x1122334455667788, 0x0102030405060708
		st, ex, _ := rc.create(d, "x", createExclusive, sattr{}, v1)
		if st != nfsOK || ex == nil {
			t.Fatalf("CREATE EXCLUSIVE: %v", st)
		}
		st, ex2, _ := rc.create(d, "x", createExclusive, sattr{}, v1)
		if st != nfsOK || !bytes.Equal(ex, ex2) {
			t.Errorf("CREATE EXCLUSIVE again with the same verifier: %v, same handle %v", st, bytes.Equal(ex, ex2))
		}
		if st, _, _ := rc.create(d, "x", createExclusive, sattr{}, v2); st != errExist {
			t.Errorf("CREATE EXCLUSIVE with another verifier: %v, want EXIST", st)
		}
		// The client then sets the attributes with SETATTR.
		if st, post := rc.setattr(ex, sattr{Mode: u32p(0o604)}, nil); st != nfsOK || post.Mode != 0o604 {
			t.Errorf("SETATTR after CREATE EXCLUSIVE: %v %+v", st, post)
		}
		if st, _, _ := rc.create(d, "g", createExclusive, sattr{}, v1); st != errExist {
			t.Errorf("CREATE EXCLUSIVE over a file created GUARDED: %v, want EXIST", st)
		}
		sub := rc.mustMkdir(d, "sub")
		_ = sub
		if st, _, _ := rc.create(d, "sub", createUnchecked, sattr{}, 0); st != errExist && st != errIsdir {
			t.Errorf("CREATE UNCHECKED over a directory: %v, want EXIST (or ISDIR)", st)
		}
		// Non-root users create files they own.
		if st, _ := rc.setattr(d, sattr{Mode: u32p(0o777)}, nil); st != nfsOK {
			t.Fatal(st)
		}
		if st, _, a := user.create(d, "users", createGuarded, sattr{Mode: u32p(0o600)}, 0); st != nfsOK || a.UID != 1000 || a.GID != 1000 {
			t.Errorf("CREATE as uid 1000: %v attr %+v", st, a)
		}
	})

	t.Run("MKDIR", func(t *testing.T) {
		rc, user := rc.on(t), user.on(t)
		_ = user
		st, fh, a := rc.mkdir(root, "md", sattr{Mode: u32p(0o750)})
		if st != nfsOK || fh == nil || a.Type != nf3Dir || a.Mode != 0o750 || a.Nlink != 2 {
			t.Fatalf("MKDIR: %v attr %+v", st, a)
		}
		if pa := rc.mustGetattr(root); pa.Nlink < 3 {
			t.Errorf("parent nlink %d after MKDIR", pa.Nlink)
		}
		if st, _, _ := rc.mkdir(root, "md", sattr{}); st != errExist {
			t.Errorf("MKDIR of an existing name: %v, want EXIST", st)
		}
		if st, _, _ := rc.mkdir(fh, "a/b", sattr{}); st == nfsOK {
			t.Errorf("MKDIR of a name with a slash succeeded")
		}
	})

	t.Run("SYMLINK_READLINK", func(t *testing.T) {
		rc, user := rc.on(t), user.on(t)
		_ = user
		st, fh, a := rc.symlink(root, "ln", "some/target/../path")
		if st != nfsOK || fh == nil || a.Type != nf3Lnk || a.Size != uint64(len("some/target/../path")) {
			t.Fatalf("SYMLINK: %v attr %+v", st, a)
		}
		if st, tgt := rc.readlink(fh); st != nfsOK || tgt != "some/target/../path" {
			t.Errorf("READLINK: %v %q", st, tgt)
		}
		if st, _, obj := rc.lookup(root, "ln"); st != nfsOK || obj.Type != nf3Lnk {
			t.Errorf("LOOKUP of a symlink: %v %+v (must not follow it)", st, obj)
		}
		f := rc.mustCreate(root, "not-a-link")
		if st, _ := rc.readlink(f); st != errInval {
			t.Errorf("READLINK of a regular file: %v, want INVAL", st)
		}
		if st, _, _ := rc.symlink(root, "ln", "x"); st != errExist {
			t.Errorf("SYMLINK over an existing name: %v, want EXIST", st)
		}
	})

	t.Run("MKNOD", func(t *testing.T) {
		rc, user := rc.on(t), user.on(t)
		_ = user
		st, fh, a := rc.mknod(root, "fifo", nf3Fifo, sattr{Mode: u32p(0o620)}, 0, 0)
		if st != nfsOK || fh == nil || a.Type != nf3Fifo || a.Mode != 0o620 {
			t.Fatalf("MKNOD fifo: %v attr %+v", st, a)
		}
		st, fh, a = rc.mknod(root, "chr", nf3Chr, sattr{Mode: u32p(0o600)}, 4, 64)
		if st != nfsOK || fh == nil || a.Type != nf3Chr || a.Major != 4 || a.Minor != 64 {
			t.Fatalf("MKNOD char device 4,64: %v attr %+v", st, a)
		}
		if g := rc.mustGetattr(fh); g.Type != nf3Chr || g.Major != 4 || g.Minor != 64 {
			t.Errorf("GETATTR of the char device: %+v", g)
		}
		if st, _, a := rc.mknod(root, "blk", nf3Blk, sattr{}, 8, 1); st != nfsOK || a.Type != nf3Blk || a.Major != 8 || a.Minor != 1 {
			t.Errorf("MKNOD block device: %v %+v", st, a)
		}
		if st, _, a := rc.mknod(root, "sock", nf3Sock, sattr{}, 0, 0); st != nfsOK || a.Type != nf3Sock {
			t.Errorf("MKNOD socket: %v %+v", st, a)
		}
		for _, typ := range []uint32{nf3Reg, nf3Dir, nf3Lnk} {
			if st, _, _ := rc.mknod(root, fmt.Sprintf("bad%d", typ), typ, sattr{}, 0, 0); st != errBadtype {
				t.Errorf("MKNOD of type %d: %v, want BADTYPE", typ, st)
			}
		}
		if st, _, _ := rc.mknod(root, "fifo", nf3Fifo, sattr{}, 0, 0); st != errExist {
			t.Errorf("MKNOD over an existing name: %v, want EXIST", st)
		}
		if st, _, _ := user.mknod(root, "users-fifo", nf3Fifo, sattr{}, 0, 0); st != errAcces {
			t.Errorf("MKNOD as uid 1000 in a 0755 root directory: %v, want ACCES", st)
		}
	})

	t.Run("REMOVE_RMDIR_RENAME_LINK", func(t *testing.T) {
		rc, user := rc.on(t), user.on(t)
		_ = user
		d := rc.mustMkdir(root, "ns")
		f := rc.mustCreate(d, "f")
		fa := rc.mustGetattr(f)
		// LINK
		if st := rc.link(f, d, "f2"); st != nfsOK {
			t.Fatalf("LINK: %v", st)
		}
		if a := rc.mustGetattr(f); a.Nlink != 2 {
			t.Errorf("nlink after LINK: %d", a.Nlink)
		}
		if st, _, obj := rc.lookup(d, "f2"); st != nfsOK || obj.Fileid != fa.Fileid {
			t.Errorf("LOOKUP of the link: %v %+v", st, obj)
		}
		if st := rc.link(f, d, "f2"); st != errExist {
			t.Errorf("LINK over an existing name: %v, want EXIST", st)
		}
		if st := rc.link(d, root, "dirlink"); st == nfsOK {
			t.Errorf("LINK of a directory succeeded")
		}
		// RENAME
		if st := rc.rename(d, "f2", root, "moved"); st != nfsOK {
			t.Fatalf("RENAME to another directory: %v", st)
		}
		if st, _, _ := rc.lookup(d, "f2"); st != errNoent {
			t.Errorf("old name after RENAME: %v, want NOENT", st)
		}
		if st, _, obj := rc.lookup(root, "moved"); st != nfsOK || obj.Fileid != fa.Fileid {
			t.Errorf("new name after RENAME: %v %+v", st, obj)
		}
		g := rc.mustCreate(d, "g")
		ga := rc.mustGetattr(g)
		if st := rc.rename(d, "g", root, "moved"); st != nfsOK {
			t.Fatalf("RENAME over an existing file: %v", st)
		}
		if st, _, obj := rc.lookup(root, "moved"); st != nfsOK || obj.Fileid != ga.Fileid {
			t.Errorf("RENAME over an existing file: target is %+v, want fileid %d", obj, ga.Fileid)
		}
		if a := rc.mustGetattr(f); a.Nlink != 1 {
			t.Errorf("nlink of the replaced link target: %d, want 1", a.Nlink)
		}
		if st := rc.rename(d, "nope", d, "x"); st != errNoent {
			t.Errorf("RENAME of a missing name: %v, want NOENT", st)
		}
		if st := rc.rename(root, "moved", root, "moved"); st != nfsOK {
			t.Errorf("RENAME onto itself: %v, want OK", st)
		}
		e := rc.mustMkdir(d, "e")
		rc.mustMkdir(d, "full")
		rc.mustCreate(rc.mustLookup(d, "full"), "x")
		if st := rc.rename(d, "e", d, "full"); st != errNotempty && st != errExist {
			t.Errorf("RENAME of a directory over a non-empty one: %v, want NOTEMPTY (or EXIST)", st)
		}
		if st := rc.rename(d, "e", e, "inside"); st != errInval {
			t.Errorf("RENAME of a directory into itself: %v, want INVAL", st)
		}
		if st := rc.rename(root, "moved", d, "e"); st != errIsdir && st != errExist {
			t.Errorf("RENAME of a file over a directory: %v, want ISDIR (or EXIST)", st)
		}
		if st := rc.rename(d, "e", root, "moved"); st != errNotdir && st != errExist {
			t.Errorf("RENAME of a directory over a file: %v, want NOTDIR (or EXIST)", st)
		}
		if st := rc.rename(d, "e", root, "e-moved"); st != nfsOK {
			t.Errorf("RENAME of an empty directory: %v", st)
		}
		if st, _, obj := rc.lookup(e, ".."); st != nfsOK || obj.Fileid != rc.mustGetattr(root).Fileid {
			t.Errorf("LOOKUP .. of a moved directory: %v %+v, want the new parent", st, obj)
		}
		// Both names are links to the same file: RENAME does nothing (POSIX rename).
		h := rc.mustCreate(d, "h1")
		if st := rc.link(h, d, "h2"); st != nfsOK {
			t.Fatal(st)
		}
		if st := rc.rename(d, "h1", d, "h2"); st != nfsOK {
			t.Errorf("RENAME between two links of one file: %v, want OK", st)
		}
		for _, n := range []string{"h1", "h2"} {
			if st, _, _ := rc.lookup(d, n); st != nfsOK {
				t.Errorf("after RENAME between two links of one file: %s is %v, want both names kept", n, st)
			}
		}
		if a := rc.mustGetattr(h); a.Nlink != 2 {
			t.Errorf("after RENAME between two links of one file: nlink %d, want 2", a.Nlink)
		}
		// "." and ".." are never created, removed or renamed; nor is "".
		for _, n := range []string{".", "..", ""} {
			if st, _, _ := rc.create(d, n, createGuarded, sattr{}, 0); st == nfsOK {
				t.Errorf("CREATE %q succeeded", n)
			}
			if st, _, _ := rc.mkdir(d, n, sattr{}); st == nfsOK {
				t.Errorf("MKDIR %q succeeded", n)
			}
			if st := rc.remove(d, n); st == nfsOK {
				t.Errorf("REMOVE %q succeeded", n)
			}
			if st := rc.rmdir(d, n); st == nfsOK {
				t.Errorf("RMDIR %q succeeded", n)
			}
			if st := rc.rename(d, n, d, "renamed-dot"); st == nfsOK {
				t.Errorf("RENAME from %q succeeded", n)
			}
			if st := rc.rename(d, "h1", d, n); st == nfsOK {
				t.Errorf("RENAME to %q succeeded", n)
			}
			if st := rc.link(h, d, n); st == nfsOK {
				t.Errorf("LINK to %q succeeded", n)
			}
		}
		if st, _, _ := rc.lookup(root, "ns"); st != nfsOK {
			t.Fatalf("ns after the dot-name calls: %v", st)
		}
		long := strings.Repeat("l", 256)
		if st, _, _ := rc.create(d, long, createGuarded, sattr{}, 0); st != errNametoolong {
			t.Errorf("CREATE of a 256-byte name: %v, want NAMETOOLONG", st)
		}
		if st, _, _ := rc.create(d, long[:255], createGuarded, sattr{}, 0); st != nfsOK {
			t.Errorf("CREATE of a 255-byte name: %v, want OK", st)
		}
		// REMOVE and RMDIR
		if st := rc.remove(d, "f"); st != nfsOK {
			t.Errorf("REMOVE: %v", st)
		}
		if st := rc.remove(d, "f"); st != errNoent {
			t.Errorf("REMOVE again: %v, want NOENT", st)
		}
		if st := rc.remove(d, "full"); st != errIsdir && st != errPerm && st != errAcces {
			t.Errorf("REMOVE of a directory: %v, want ISDIR", st)
		}
		if st := rc.rmdir(d, "full"); st != errNotempty {
			t.Errorf("RMDIR of a non-empty directory: %v, want NOTEMPTY", st)
		}
		if st := rc.rmdir(root, "moved"); st != errNotdir {
			t.Errorf("RMDIR of a file: %v, want NOTDIR", st)
		}
		if st := rc.remove(rc.mustLookup(d, "full"), "x"); st != nfsOK {
			t.Errorf("REMOVE full/x: %v", st)
		}
		if st := rc.rmdir(d, "full"); st != nfsOK {
			t.Errorf("RMDIR of an emptied directory: %v", st)
		}
		if st := rc.rmdir(d, "nope"); st != errNoent {
			t.Errorf("RMDIR of a missing name: %v, want NOENT", st)
		}
		if st := rc.rmdir(d, "."); st == nfsOK {
			t.Errorf("RMDIR of \".\" succeeded")
		}
	})

	t.Run("errors", func(t *testing.T) {
		rc, user := rc.on(t), user.on(t)
		_ = user
		d := rc.mustMkdir(root, "errs")
		f := rc.mustCreate(d, "f")
		// NOTDIR: a file used as a directory.
		if st, _, _ := rc.create(f, "x", createGuarded, sattr{}, 0); st != errNotdir {
			t.Errorf("CREATE in a file: %v, want NOTDIR", st)
		}
		if r := rc.readdir(f, 0, [8]byte{}, 4096); r.st != errNotdir {
			t.Errorf("READDIR of a file: %v, want NOTDIR", r.st)
		}
		// ISDIR: data operations on a directory.
		if st, _, _ := rc.read(d, 0, 10); st != errIsdir {
			t.Errorf("READ of a directory: %v, want ISDIR", st)
		}
		if w := rc.write(d, 0, []byte("x"), fileSync); w.st != errIsdir {
			t.Errorf("WRITE to a directory: %v, want ISDIR", w.st)
		}
		// ACCES as a non-root user.
		priv := rc.mustMkdir(d, "private")
		if st, _ := rc.setattr(priv, sattr{Mode: u32p(0o700)}, nil); st != nfsOK {
			t.Fatal(st)
		}
		rc.mustCreate(priv, "inside")
		if st, _ := rc.setattr(f, sattr{Mode: u32p(0o600)}, nil); st != nfsOK {
			t.Fatal(st)
		}
		if st, _, _ := user.read(f, 0, 10); st != errAcces {
			t.Errorf("READ of a 0600 root file as uid 1000: %v, want ACCES", st)
		}
		if w := user.write(f, 0, []byte("x"), fileSync); w.st != errAcces {
			t.Errorf("WRITE to a 0600 root file as uid 1000: %v, want ACCES", w.st)
		}
		if st, _, _ := user.lookup(priv, "inside"); st != errAcces {
			t.Errorf("LOOKUP in a 0700 root directory as uid 1000: %v, want ACCES", st)
		}
		if r := user.readdir(priv, 0, [8]byte{}, 4096); r.st != errAcces {
			t.Errorf("READDIR of a 0700 root directory as uid 1000: %v, want ACCES", r.st)
		}
		if st, _, _ := user.create(d, "u", createGuarded, sattr{}, 0); st != errAcces {
			t.Errorf("CREATE in a 0755 root directory as uid 1000: %v, want ACCES", st)
		}
		if st := user.remove(d, "f"); st != errAcces {
			t.Errorf("REMOVE in a 0755 root directory as uid 1000: %v, want ACCES", st)
		}
		// STALE: the handle of a removed object.
		gone := rc.mustCreate(d, "gone")
		goneDir := rc.mustMkdir(d, "gonedir")
		rc.remove(d, "gone")
		rc.rmdir(d, "gonedir")
		if st, _ := rc.getattr(gone); st != errStale {
			t.Errorf("GETATTR of a removed file: %v, want STALE", st)
		}
		if st, _, _ := rc.read(gone, 0, 10); st != errStale {
			t.Errorf("READ of a removed file: %v, want STALE", st)
		}
		if st, _, _ := rc.lookup(goneDir, "x"); st != errStale {
			t.Errorf("LOOKUP in a removed directory: %v, want STALE", st)
		}
		if st, _, _ := rc.create(goneDir, "x", createGuarded, sattr{}, 0); st != errStale {
			t.Errorf("CREATE in a removed directory: %v, want STALE", st)
		}
		// BADHANDLE: garbage bytes, and valid handles with a bit flipped.
		for _, h := range [][]byte{{}, {1, 2, 3, 4, 5, 6, 7, 8}, bytes.Repeat([]byte{0xa5}, len(f)), bytes.Repeat([]byte{0}, 64), f[:len(f)-1], append(slices.Clone(f), 0)} {
			if st, _ := rc.getattr(h); st != errBadhandle {
				t.Errorf("GETATTR of a %d-byte garbage handle: %v, want BADHANDLE", len(h), st)
			}
		}
		bad := 0
		for i := 0; i < len(f)*8; i++ {
			h := slices.Clone(f)
			h[i/8] ^= 1 << (i % 8)
			st, _ := rc.getattr(h)
			switch {
			case st == errBadhandle:
				bad++
			case st == errStale:
				// A changed file-system id is "another file system": STALE is right.
			default:
				t.Errorf("GETATTR of a handle with bit %d flipped: %v, want BADHANDLE", i, st)
			}
		}
		if bad < len(f)*8/2 {
			t.Errorf("only %d of %d bit flips gave BADHANDLE", bad, len(f)*8)
		}
		if st, _, _ := rc.lookup(bytes.Repeat([]byte{0xa5}, len(f)), "x"); st != errBadhandle {
			t.Errorf("LOOKUP with a garbage directory handle: %v, want BADHANDLE", st)
		}
	})

	t.Run("FSSTAT_FSINFO_PATHCONF", func(t *testing.T) {
		rc, user := rc.on(t), user.on(t)
		_ = user
		st, fs := rc.fsstat(root)
		if st != nfsOK || fs.tbytes < 900<<20 || fs.tbytes > 1<<30 || fs.fbytes > fs.tbytes || fs.abytes > fs.fbytes || fs.tfiles == 0 || fs.ffiles > fs.tfiles {
			t.Errorf("FSSTAT: %v %+v", st, fs)
		}
		f := rc.mustCreate(root, "space")
		rc.write(f, 0, make([]byte, 1<<20), fileSync)
		if st, fs2 := rc.fsstat(root); st != nfsOK || fs2.fbytes > fs.fbytes-(1<<20) || fs2.ffiles >= fs.ffiles {
			t.Errorf("FSSTAT after writing 1 MiB to a new file: free %d -> %d bytes, free files %d -> %d", fs.fbytes, fs2.fbytes, fs.ffiles, fs2.ffiles)
		}
		st, fi := rc.fsinfo(root)
		if st != nfsOK || fi.rtmax == 0 || fi.wtmax == 0 || fi.rtpref == 0 || fi.wtpref == 0 || fi.dtpref == 0 || fi.maxfilesize == 0 {
			t.Errorf("FSINFO: %v %+v", st, fi)
		}
		if fi.properties&0x1 == 0 || fi.properties&0x2 == 0 || fi.properties&0x8 == 0 {
			t.Errorf("FSINFO properties %#x: want FSF3_LINK, FSF3_SYMLINK and FSF3_HOMOGENEOUS", fi.properties)
		}
		st, pc := rc.pathconf(root)
		if st != nfsOK || pc.namemax != 255 || !pc.noTrunc || pc.caseInsensitive || !pc.casePreserving {
			t.Errorf("PATHCONF: %v %+v", st, pc)
		}
		// On objects other than the root too.
		if st, _ := rc.fsstat(f); st != nfsOK {
			t.Errorf("FSSTAT of a file: %v", st)
		}
		if st, _ := rc.pathconf(f); st != nfsOK {
			t.Errorf("PATHCONF of a file: %v", st)
		}
		// A removed object or a garbage handle is refused.
		rc.remove(root, "space")
		if st, _ := rc.fsstat(f); st != errStale {
			t.Errorf("FSSTAT of a removed file: %v, want STALE", st)
		}
		if st, _ := rc.fsinfo(bytes.Repeat([]byte{9}, 45)); st != errBadhandle {
			t.Errorf("FSINFO of a garbage handle: %v, want BADHANDLE", st)
		}
	})

	t.Run("READDIR", func(t *testing.T) {
		rc, user := rc.on(t), user.on(t)
		_ = user
		d := rc.mustMkdir(root, "rd")
		want := map[string]uint64{}
		for i := 0; i < 30; i++ {
			n := fmt.Sprintf("entry-%02d", i)
			rc.mustCreate(d, n)
			want[n] = rc.mustGetattr(rc.mustLookup(d, n)).Fileid
		}
		r := rc.readdir(d, 0, [8]byte{}, 64<<10)
		if r.st != nfsOK || !r.eof {
			t.Fatalf("READDIR: %v eof %v", r.st, r.eof)
		}
		got := map[string]uint64{}
		for _, e := range r.ents {
			got[e.Name] = e.Fileid
		}
		dAttr := rc.mustGetattr(d)
		if got["."] != dAttr.Fileid || got[".."] != rc.mustGetattr(root).Fileid {
			t.Errorf("READDIR . and ..: %d %d, want %d and the root", got["."], got[".."], dAttr.Fileid)
		}
		delete(got, ".")
		delete(got, "..")
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("READDIR entries %v, want %v", got, want)
		}
		p := rc.readdirplus(d, 0, [8]byte{}, 64<<10, 256<<10)
		if p.st != nfsOK || !p.eof || len(p.ents) != len(want)+2 {
			t.Fatalf("READDIRPLUS: %v eof %v, %d entries", p.st, p.eof, len(p.ents))
		}
		for _, e := range p.ents {
			if e.Name == "." || e.Name == ".." {
				continue
			}
			if e.Attr == nil || e.FH == nil || e.Attr.Fileid != e.Fileid || e.Attr.Type != nf3Reg {
				t.Errorf("READDIRPLUS entry %q: attr %+v, handle %v", e.Name, e.Attr, e.FH != nil)
				continue
			}
			if !bytes.Equal(e.FH, rc.mustLookup(d, e.Name)) {
				t.Errorf("READDIRPLUS entry %q: handle differs from LOOKUP's", e.Name)
			}
		}
		// The root's ".." is the root itself.
		rr := rc.readdir(root, 0, [8]byte{}, 64<<10)
		for _, e := range rr.ents {
			if e.Name == ".." && e.Fileid != rc.mustGetattr(root).Fileid {
				t.Errorf("READDIR of the export root: .. is fileid %d, want the root", e.Fileid)
			}
		}
		// A count too small for one entry: TOOSMALL.
		if r := rc.readdirplus(d, 0, [8]byte{}, 10, 100); r.st != errToosmall {
			t.Errorf("READDIRPLUS with maxcount 100: %v, want TOOSMALL", r.st)
		}
	})
}

// TestReaddirPaging lists a directory of 5,000 entries through small pages:
// complete, no duplicates, cookies stable across listings and across a
// restart of the server (kill -9 and a new process on the same disk).
func TestReaddirPaging(t *testing.T) {
	t.Parallel()
	srv := StartServer(t, newImage(t))
	rc := dialRPC(t, srv.Addr)
	root := rc.mountRoot()
	dir := rc.mustMkdir(root, "big")
	const n = 5000
	names := make([]string, n)
	args := make([][]byte, n)
	for i := range names {
		names[i] = fmt.Sprintf("file-%05d-%s", i, strings.Repeat("x", i%23))
		args[i] = argsCreate(dir, names[i], createGuarded, sattr{Mode: u32p(0o644)}, 0)
	}
	start := time.Now()
	for i, d := range rc.pipeline(progNFS, procCreate, args) {
		if st, _, _ := decodeCreated(dec{t, d}); st != nfsOK {
			t.Fatalf("CREATE %s: %v", names[i], st)
		}
	}
	t.Logf("created %d files in %v", n, time.Since(start).Round(time.Millisecond))

	check := func(what string, ents []dirEntry, calls int) map[string]uint64 {
		t.Helper()
		cookies := make(map[string]uint64, n)
		seenCookie := make(map[uint64]string, n)
		for _, e := range ents {
			if _, dup := cookies[e.Name]; dup {
				t.Fatalf("%s: %q listed twice", what, e.Name)
			}
			if other, dup := seenCookie[e.Cookie]; dup {
				t.Fatalf("%s: cookie %#x for both %q and %q", what, e.Cookie, other, e.Name)
			}
			cookies[e.Name] = e.Cookie
			seenCookie[e.Cookie] = e.Name
		}
		if len(cookies) != n {
			t.Fatalf("%s: %d entries, want %d", what, len(cookies), n)
		}
		for _, nm := range names {
			if _, ok := cookies[nm]; !ok {
				t.Fatalf("%s: %q missing", what, nm)
			}
		}
		if calls < 50 {
			t.Fatalf("%s: only %d calls: the pages are not small", what, calls)
		}
		return cookies
	}
	list := func(what string, plus bool) map[string]uint64 {
		t.Helper()
		ents, calls := rc.listDir(dir, plus, 2048)
		if plus {
			for _, e := range ents {
				if e.Attr == nil || e.FH == nil || e.Attr.Fileid != e.Fileid {
					t.Fatalf("%s: entry %q without attributes or handle", what, e.Name)
				}
			}
		}
		return check(what, ents, calls)
	}
	first := list("READDIR", false)
	second := list("READDIR again", false)
	plus := list("READDIRPLUS", true)
	for _, m := range []map[string]uint64{second, plus} {
		if fmt.Sprint(m) != fmt.Sprint(first) {
			t.Fatal("cookies differ between two listings of an unchanged directory")
		}
	}
	// Resuming from a cookie in the middle gives exactly the rest.
	ents, _ := rc.listDir(dir, false, 2048)
	mid := ents[n/2-1].Cookie
	var rest []string
	var verf [8]byte
	for cookie := mid; ; {
		r := rc.readdir(dir, cookie, verf, 2048)
		if r.st != nfsOK {
			t.Fatalf("READDIR from cookie %#x: %v", cookie, r.st)
		}
		for _, e := range r.ents {
			rest = append(rest, e.Name)
		}
		if r.eof {
			break
		}
		cookie = r.ents[len(r.ents)-1].Cookie
	}
	var wantRest []string
	for _, e := range ents[n/2:] {
		wantRest = append(wantRest, e.Name)
	}
	if !slices.Equal(rest, wantRest) {
		t.Fatalf("READDIR from a middle cookie: %d entries, want the %d after it", len(rest), len(wantRest))
	}

	srv.Restart()
	rc2 := dialRPC(t, srv.Addr)
	after := check("READDIR after a restart", func() []dirEntry { e, _ := rc2.listDir(dir, false, 2048); return e }(), 100)
	if fmt.Sprint(after) != fmt.Sprint(first) {
		t.Fatal("cookies differ after a restart")
	}
	// A cookie from the old process resumes at the same place in the new one.
	r := rc2.readdir(dir, mid, verf, 2048)
	if r.st != nfsOK || len(r.ents) == 0 || r.ents[0].Name != wantRest[0] {
		t.Fatalf("READDIR from an old process's cookie: %v, first %v, want %q", r.st, r.ents, wantRest[0])
	}
}

// TestReadOnlyExport: every change through an ro export gets ROFS; reads work.
func TestReadOnlyExport(t *testing.T) {
	t.Parallel()
	img := newImage(t)
	srv := StartServer(t, img)
	rc := dialRPC(t, srv.Addr)
	root := rc.mountRoot()
	d := rc.mustMkdir(root, "d")
	f := rc.mustCreate(root, "f")
	rc.write(f, 0, []byte("read-only data"), fileSync)
	srv.Stop()

	ro := StartServer(t, img, WithExport("/ 127.0.0.0/8 ro,no_root_squash"))
	rc = dialRPC(t, ro.Addr)
	if got := rc.mountRoot(); !bytes.Equal(got, root) {
		t.Errorf("root handle differs between rw and ro servers of the same export")
	}
	if got := rc.readAll(f); string(got) != "read-only data" {
		t.Errorf("READ through an ro export: %q", got)
	}
	if st, got := rc.access(f, accRead|accModify|accExtend); st != nfsOK || got != accRead {
		t.Errorf("ACCESS through an ro export: %v granted %#x, want READ only", st, got)
	}
	checks := []struct {
		what string
		st   nfsStat
	}{
		{"WRITE", rc.write(f, 0, []byte("x"), fileSync).st},
		{"SETATTR", func() nfsStat { s, _ := rc.setattr(f, sattr{Mode: u32p(0o600)}, nil); return s }()},
		{"CREATE", func() nfsStat { s, _, _ := rc.create(root, "new", createGuarded, sattr{}, 0); return s }()},
		{"MKDIR", func() nfsStat { s, _, _ := rc.mkdir(root, "newdir", sattr{}); return s }()},
		{"SYMLINK", func() nfsStat { s, _, _ := rc.symlink(root, "newlink", "f"); return s }()},
		{"MKNOD", func() nfsStat { s, _, _ := rc.mknod(root, "newfifo", nf3Fifo, sattr{}, 0, 0); return s }()},
		{"REMOVE", rc.remove(root, "f")},
		{"RMDIR", rc.rmdir(root, "d")},
		{"RENAME", rc.rename(root, "f", root, "g")},
		{"LINK", rc.link(f, d, "f2")},
	}
	for _, c := range checks {
		if c.st != errRofs {
			t.Errorf("%s through an ro export: %v, want ROFS", c.what, c.st)
		}
	}
	if st, _, _ := rc.lookup(root, "f"); st != nfsOK {
		t.Errorf("f after the refused changes: %v", st)
	}
}

// TestExportNetworkDenied: a client outside the export's networks gets
// MNT3ERR_ACCES, and NFS3ERR_ACCES for handles it obtained elsewhere.
func TestExportNetworkDenied(t *testing.T) {
	t.Parallel()
	img := newImage(t)
	srv := StartServer(t, img)
	rc := dialRPC(t, srv.Addr)
	root := rc.mountRoot()
	f := rc.mustCreate(root, "f")
	srv.Kill()

	denied := StartServer(t, img, WithExport("/ 10.9.9.0/24 rw,no_root_squash"))
	rc = dialRPC(t, denied.Addr)
	rc.null() // NULL needs no export
	if st, fh, _ := rc.mnt("/"); st != errAcces || fh != nil {
		t.Errorf("MNT from 127.0.0.1 of an export for 10.9.9.0/24: %v, want MNT3ERR_ACCES", st)
	}
	if st, _ := rc.getattr(root); st != errAcces {
		t.Errorf("GETATTR from a client outside the export: %v, want ACCES", st)
	}
	if st, _, _ := rc.read(f, 0, 10); st != errAcces {
		t.Errorf("READ from a client outside the export: %v, want ACCES", st)
	}
	if st, _, _ := rc.create(root, "x", createGuarded, sattr{}, 0); st != errAcces {
		t.Errorf("CREATE from a client outside the export: %v, want ACCES", st)
	}
	if st, _ := rc.fsstat(root); st != errAcces {
		t.Errorf("FSSTAT from a client outside the export: %v, want ACCES", st)
	}
	ex := rc.exports()
	if len(ex) != 1 || !slices.Equal(ex[0].groups, []string{"10.9.9.0/24"}) {
		t.Errorf("EXPORT: %+v, want / to 10.9.9.0/24", ex)
	}
}

// TestRootSquash: root_squash (the default) maps uid 0 to 65534.
func TestRootSquash(t *testing.T) {
	t.Parallel()
	img := newImage(t)
	srv := StartServer(t, img)
	rc := dialRPC(t, srv.Addr)
	root := rc.mountRoot()
	if st, _ := rc.setattr(root, sattr{Mode: u32p(0o777)}, nil); st != nfsOK {
		t.Fatal(st)
	}
	priv := rc.mustCreate(root, "private")
	rc.setattr(priv, sattr{Mode: u32p(0o600)}, nil)
	srv.Kill()

	sq := StartServer(t, img, WithExport("/ 127.0.0.0/8 rw,root_squash"))
	rc = dialRPC(t, sq.Addr)
	root = rc.mountRoot()
	st, _, a := rc.create(root, "by-root", createGuarded, sattr{}, 0)
	if st != nfsOK || a.UID != 65534 || a.GID != 65534 {
		t.Errorf("CREATE as squashed root: %v attr %+v, want owner 65534:65534", st, a)
	}
	if st, _, _ := rc.read(priv, 0, 1); st != errAcces {
		t.Errorf("READ of a 0600 root file as squashed root: %v, want ACCES", st)
	}
}

// FSSTAT, FSINFO and PATHCONF are answered by go-nfs behind the RPC front
// (nfs/gonfs.go). What they return must agree with the rest of the server
// and with RFC 1813. Each test starts its own server.

// forwardedSetup starts a server with a root and a file f whose
// mtime and ctime differ.
func forwardedSetup(t *testing.T) (rc *rpcConn, root, f []byte) {
	t.Helper()
	img := newImage(t)
	srv := StartServer(t, img)
	rc = dialRPC(t, srv.Addr)
	root = rc.mountRoot()
	f = rc.mustCreate(root, "f")
	rc.write(f, 0, make([]byte, 5000), fileSync)
	rc.setattr(f, sattr{Mtime: &nfsTime{Sec: 1_000_000_000}}, nil)
	return rc, root, f
}

// TestForwardedProcsObjAttributes: the obj_attributes of FSSTAT, FSINFO and
// PATHCONF are a fattr3 of the object, the same as GETATTR's (mode holds
// only the bits 07777; ctime is the ctime).
func TestForwardedProcsObjAttributes(t *testing.T) {
	t.Parallel()
	rc, root, f := forwardedSetup(t)
	for _, obj := range []struct {
		name string
		fh   []byte
	}{{"root directory", root}, {"file", f}} {
		want := rc.mustGetattr(obj.fh)
		_, fs := rc.fsstat(obj.fh)
		_, fi := rc.fsinfo(obj.fh)
		_, pc := rc.pathconf(obj.fh)
		for _, got := range []struct {
			proc string
			a    *fattr
		}{{"FSSTAT", fs.obj}, {"FSINFO", fi.obj}, {"PATHCONF", pc.obj}} {
			if got.a == nil {
				continue // post_op_attr may be absent
			}
			if got.a.Mode != want.Mode || got.a.Type != want.Type || got.a.Fileid != want.Fileid ||
				got.a.Nlink != want.Nlink || got.a.Ctime != want.Ctime || got.a.Fsid != want.Fsid {
				t.Errorf("%s of the %s: obj_attributes differ from GETATTR:\n got  type %d mode %#o nlink %d fsid %d fileid %d ctime %v\n want type %d mode %#o nlink %d fsid %d fileid %d ctime %v",
					got.proc, obj.name, got.a.Type, got.a.Mode, got.a.Nlink, got.a.Fsid, got.a.Fileid, got.a.Ctime,
					want.Type, want.Mode, want.Nlink, want.Fsid, want.Fileid, want.Ctime)
			}
		}
	}
}

// TestFSStatReplyLength: FSSTAT3resok ends with invarsec, a uint32 (RFC 1813
// 3.3.18); nothing follows it.
func TestFSStatReplyLength(t *testing.T) {
	t.Parallel()
	rc, root, _ := forwardedSetup(t)
	if _, fs := rc.fsstat(root); fs.extra != 0 {
		t.Errorf("FSSTAT reply has %d bytes after FSSTAT3resok (invarsec encoded as a 64-bit value)", fs.extra)
	}
}

// TestFSInfoProperties: PATHCONF linkmax and FSINFO properties describe what
// the server does: LINK makes several hard links, SETATTR sets times.
func TestFSInfoProperties(t *testing.T) {
	t.Parallel()
	rc, root, f := forwardedSetup(t)
	if st := rc.link(f, root, "f2"); st != nfsOK {
		t.Fatalf("LINK: %v", st)
	}
	if _, pc := rc.pathconf(root); pc.linkmax < 2 {
		t.Errorf("PATHCONF linkmax %d, but LINK made a second hard link", pc.linkmax)
	}
	if _, fi := rc.fsinfo(root); fi.properties&0x10 == 0 {
		t.Errorf("FSINFO properties %#x lack FSF3_CANSETTIME, but SETATTR sets times", fi.properties)
	}
}

// TestFSInfoWtmaxAccepted: RFC 1813 FSINFO wtmax is "the maximum size of a
// WRITE request supported by the server". A WRITE of min(wtmax, 4 MiB)
// bytes must get a reply, not a closed connection (go-nfs-client, for one,
// writes min(wtpref, len) bytes per WRITE).
func TestFSInfoWtmaxAccepted(t *testing.T) {
	t.Parallel()
	rc, root, f := forwardedSetup(t)
	_, fi := rc.fsinfo(root)
	if fi.wtpref > fi.wtmax || fi.rtpref > fi.rtmax {
		t.Errorf("FSINFO: wtpref %d > wtmax %d or rtpref %d > rtmax %d", fi.wtpref, fi.wtmax, fi.rtpref, fi.rtmax)
	}
	size := min(fi.wtmax, 4<<20)
	wc := dialRPC(t, rc.c.RemoteAddr().String())
	rec := wc.buildCall(nextXID(), progNFS, procWrite, argsWrite(f, 0, make([]byte, size), fileSync))
	var r *rpcwireReply
	err := wc.sendRecord(rec)
	if err == nil {
		r, err = wc.recvReply(20 * time.Second)
	}
	if err != nil {
		t.Errorf("WRITE of %d bytes (FSINFO wtmax %d, wtpref %d, rtmax %d): no reply: %v: the server advertises transfer sizes it does not accept",
			size, fi.wtmax, fi.wtpref, fi.rtmax, err)
	} else if r.Accepted && r.AcceptStat == 0 {
		w := decodeWrite(dec{t, rpcwireDecoder(r.Body)})
		if w.st != nfsOK || w.count == 0 {
			t.Errorf("WRITE of %d bytes (wtmax %d): %v count %d", size, fi.wtmax, w.st, w.count)
		}
	}
	rc.null()
}

// TestSubdirExport: an export of a subdirectory is its own root: MNT of
// paths outside it fails, LOOKUP ".." at its root stays there, READDIR's ".."
// at its root is the root itself, and handles of the whole store's export
// are not accepted through it.
func TestSubdirExport(t *testing.T) {
	t.Parallel()
	img := newImage(t)
	srv := StartServer(t, img)
	rc := dialRPC(t, srv.Addr)
	root := rc.mountRoot()
	a := rc.mustMkdir(root, "a")
	inside := rc.mustCreate(a, "inside")
	insideID := rc.mustGetattr(inside).Fileid
	b := rc.mustMkdir(root, "b")
	outside := rc.mustCreate(b, "outside")
	srv.Stop()

	sub := StartServer(t, img, WithExport("/a 127.0.0.0/8 rw,no_root_squash"))
	rc = dialRPC(t, sub.Addr)
	if st, _, _ := rc.mnt("/"); st == nfsOK {
		t.Errorf("MNT / with only /a exported succeeded")
	}
	if st, _, _ := rc.mnt("/b"); st == nfsOK {
		t.Errorf("MNT /b with only /a exported succeeded")
	}
	st, aRoot, _ := rc.mnt("/a")
	if st != nfsOK {
		t.Fatalf("MNT /a: %v", st)
	}
	aAttr := rc.mustGetattr(aRoot)
	st, up, upAttr := rc.lookup(aRoot, "..")
	if st != nfsOK || upAttr.Fileid != aAttr.Fileid || !bytes.Equal(up, aRoot) {
		t.Errorf("LOOKUP .. at the root of export /a: %v fileid %v, want /a itself (fileid %d)", st, upAttr, aAttr.Fileid)
	}
	r := rc.readdir(aRoot, 0, [8]byte{}, 8192)
	for _, e := range r.ents {
		if e.Name == ".." && e.Fileid != aAttr.Fileid {
			t.Errorf("READDIR of export /a: .. is fileid %d, want /a itself (%d)", e.Fileid, aAttr.Fileid)
		}
	}
	if st, fh, _ := rc.lookup(aRoot, "inside"); st != nfsOK || rc.mustGetattr(fh).Fileid != insideID {
		t.Errorf("LOOKUP inside export /a: %v", st)
	}
	// Handles made for the export of / name an export this server does not have.
	for name, h := range map[string][]byte{"/": root, "/b": b, "/b/outside": outside, "/a/inside via /": inside} {
		if st, _ := rc.getattr(h); st != errStale && st != errAcces && st != errBadhandle {
			t.Errorf("GETATTR of %s with a handle of the / export through a server exporting only /a: %v, want STALE", name, st)
		}
	}
}

// TestWccData: weak cache consistency data (RFC 1813 2.6) is exact for
// sequential requests: the pre-operation attributes are the object's
// attributes just before the change, the post-operation ones just after.
// Clients use them to keep their caches without refetching.
func TestWccData(t *testing.T) {
	t.Parallel()
	srv := StartServer(t, newImage(t))
	rc := dialRPC(t, srv.Addr)
	root := rc.mustMkdir(rc.mountRoot(), "wcc")
	other := rc.mustMkdir(root, "other")
	f := rc.mustCreate(root, "f")
	time.Sleep(5 * time.Millisecond) // let mtimes move

	checkWcc := func(what string, pre *wccAttr, post *fattr, before, after *fattr) {
		t.Helper()
		if pre == nil {
			t.Errorf("%s: no pre-operation attributes", what)
		} else if pre.Size != before.Size || pre.Mtime != before.Mtime || pre.Ctime != before.Ctime {
			t.Errorf("%s: pre-operation attributes %+v, but GETATTR just before said size %d mtime %v ctime %v",
				what, *pre, before.Size, before.Mtime, before.Ctime)
		}
		if post == nil {
			t.Errorf("%s: no post-operation attributes", what)
		} else if *post != *after {
			t.Errorf("%s: post-operation attributes\n %+v\nbut GETATTR just after said\n %+v", what, *post, *after)
		}
	}
	call := func(proc uint32, args []byte) dec {
		t.Helper()
		return rc.d(proc, args)
	}

	// WRITE: the file's wcc.
	before := rc.mustGetattr(f)
	x := call(procWrite, argsWrite(f, 0, []byte("hello"), fileSync))
	if st := x.stat(); st != nfsOK {
		t.Fatal(st)
	}
	pre, post := x.wcc()
	checkWcc("WRITE", pre, post, before, rc.mustGetattr(f))

	// SETATTR: the file's wcc.
	before = rc.mustGetattr(f)
	x = call(procSetattr, argsSetattr(f, sattr{Mode: u32p(0o600)}, nil))
	x.stat()
	pre, post = x.wcc()
	checkWcc("SETATTR", pre, post, before, rc.mustGetattr(f))

	// CREATE, MKDIR, SYMLINK, MKNOD: the directory's wcc after the new object.
	for _, c := range []struct {
		what string
		proc uint32
		args []byte
	}{
		{"CREATE", procCreate, argsCreate(root, "c", createGuarded, sattr{}, 0)},
		{"MKDIR", procMkdir, argsMkdir(root, "m", sattr{})},
		{"SYMLINK", procSymlink, argsSymlink(root, "s", "f", sattr{})},
		{"MKNOD", procMknod, argsMknod(root, "n", nf3Fifo, sattr{}, 0, 0)},
	} {
		time.Sleep(2 * time.Millisecond)
		before := rc.mustGetattr(root)
		x := call(c.proc, c.args)
		if st := x.stat(); st != nfsOK {
			t.Fatalf("%s: %v", c.what, st)
		}
		x.postOpFH()
		x.postOp()
		pre, post := x.wcc()
		checkWcc(c.what+" (directory)", pre, post, before, rc.mustGetattr(root))
	}

	// REMOVE and RMDIR: the directory's wcc.
	for _, c := range []struct {
		what string
		proc uint32
		name string
	}{{"REMOVE", procRemove, "c"}, {"RMDIR", procRmdir, "m"}} {
		time.Sleep(2 * time.Millisecond)
		before := rc.mustGetattr(root)
		x := call(c.proc, argsDirop(root, c.name))
		if st := x.stat(); st != nfsOK {
			t.Fatalf("%s: %v", c.what, st)
		}
		pre, post := x.wcc()
		checkWcc(c.what+" (directory)", pre, post, before, rc.mustGetattr(root))
	}

	// RENAME: both directories.
	time.Sleep(2 * time.Millisecond)
	fromBefore, toBefore := rc.mustGetattr(root), rc.mustGetattr(other)
	x = call(procRename, argsRename(root, "s", other, "s2"))
	if st := x.stat(); st != nfsOK {
		t.Fatal(st)
	}
	fpre, fpost := x.wcc()
	tpre, tpost := x.wcc()
	checkWcc("RENAME (from directory)", fpre, fpost, fromBefore, rc.mustGetattr(root))
	checkWcc("RENAME (to directory)", tpre, tpost, toBefore, rc.mustGetattr(other))

	// LINK: the file's post-op attributes and the directory's wcc.
	time.Sleep(2 * time.Millisecond)
	dirBefore := rc.mustGetattr(other)
	x = call(procLink, argsLink(f, other, "f2"))
	if st := x.stat(); st != nfsOK {
		t.Fatal(st)
	}
	fileAttr := x.postOp()
	pre, post = x.wcc()
	if after := rc.mustGetattr(f); fileAttr == nil || *fileAttr != *after {
		t.Errorf("LINK: file post-op attributes %+v, GETATTR says %+v", fileAttr, after)
	}
	checkWcc("LINK (directory)", pre, post, dirBefore, rc.mustGetattr(other))
}

// TestForwardedProcsOnMovedObjects: FSSTAT, FSINFO and PATHCONF (forwarded
// to go-nfs, which rebuilds a path from the handle) work on any live
// object: one in a renamed directory, and a hard-linked file whose first
// name and directory were removed.
func TestForwardedProcsOnMovedObjects(t *testing.T) {
	t.Parallel()
	srv := StartServer(t, newImage(t))
	rc := dialRPC(t, srv.Addr)
	root := rc.mountRoot()
	d1 := rc.mustMkdir(root, "d1")
	deep := rc.mustMkdir(d1, "deep")
	f := rc.mustCreate(deep, "f")
	if st := rc.rename(root, "d1", root, "d1-renamed"); st != nfsOK {
		t.Fatal(st)
	}
	d2 := rc.mustMkdir(root, "d2")
	g := rc.mustCreate(d2, "g")
	d3 := rc.mustMkdir(root, "d3")
	if st := rc.link(g, d3, "g-link"); st != nfsOK {
		t.Fatal(st)
	}
	if st := rc.remove(d2, "g"); st != nfsOK {
		t.Fatal(st)
	}
	if st := rc.rmdir(root, "d2"); st != nfsOK {
		t.Fatal(st)
	}
	for name, fh := range map[string][]byte{"a file in a renamed directory": f, "a file whose first name and directory are gone": g} {
		if st, a := rc.getattr(fh); st != nfsOK {
			t.Fatalf("GETATTR of %s: %v %+v", name, st, a)
		}
		if st, _ := rc.fsstat(fh); st != nfsOK {
			t.Errorf("FSSTAT of %s: %v, want OK", name, st)
		}
		if st, _ := rc.fsinfo(fh); st != nfsOK {
			t.Errorf("FSINFO of %s: %v, want OK", name, st)
		}
		if st, _ := rc.pathconf(fh); st != nfsOK {
			t.Errorf("PATHCONF of %s: %v, want OK", name, st)
		}
	}
}
