package billyfs

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"os"
	"path"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-git/go-billy/v5"
	"github.com/go-git/go-billy/v5/util"
	"github.com/hanfs/hanfs/fsstore"
	"github.com/hanfs/hanfs/shareddisk"
)

func newFS(t *testing.T) (*FS, *shareddisk.Mem) {
	t.Helper()
	d := shareddisk.NewMem(128 << 20)
	if _, err := fsstore.Format(d, fsstore.FormatOptions{}); err != nil {
		t.Fatal(err)
	}
	s, err := fsstore.Open(d, fsstore.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return New(s, fsstore.RootIno, nil), d
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErrno(t *testing.T, err error, want syscall.Errno) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error %v, want %v", err, want)
	}
	var pe *os.PathError
	var le *os.LinkError
	if !errors.As(err, &pe) && !errors.As(err, &le) {
		t.Fatalf("error %T %v is neither *os.PathError nor *os.LinkError", err, err)
	}
}

func readAll(t *testing.T, fsys billy.Basic, name string) string {
	t.Helper()
	b, err := util.ReadFile(fsys, name)
	must(t, err)
	return string(b)
}

func TestBillyInterfaces(t *testing.T) {
	f, _ := newFS(t)
	var _ billy.Filesystem = f
	var _ billy.Change = f
	want := billy.WriteCapability | billy.ReadCapability | billy.ReadAndWriteCapability |
		billy.SeekCapability | billy.TruncateCapability
	if got := billy.Capabilities(f); got != want {
		t.Fatalf("capabilities %b, want %b", got, want)
	}
	if billy.CapabilityCheck(f, billy.LockCapability) {
		t.Fatal("claims LockCapability")
	}
}

func TestBillyCreateReadWriteSeek(t *testing.T) {
	f, _ := newFS(t)
	fl, err := f.Create("a/b/c.txt") // parents are created
	must(t, err)
	if fl.Name() != "a/b/c.txt" {
		t.Fatalf("name %q", fl.Name())
	}
	n, err := fl.Write([]byte("hello world"))
	if err != nil || n != 11 {
		t.Fatalf("write %d %v", n, err)
	}
	if _, err := fl.Seek(6, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	n, err = fl.Read(buf)
	if err != nil || string(buf[:n]) != "world" {
		t.Fatalf("read %q %v", buf[:n], err)
	}
	if n, err = fl.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("read at EOF: %d %v", n, err)
	}
	if pos, err := fl.Seek(-5, io.SeekEnd); err != nil || pos != 6 {
		t.Fatalf("seek end: %d %v", pos, err)
	}
	if pos, err := fl.Seek(-1, io.SeekCurrent); err != nil || pos != 5 {
		t.Fatalf("seek cur: %d %v", pos, err)
	}
	if _, err := fl.Seek(-100, io.SeekCurrent); !errors.Is(err, syscall.EINVAL) {
		t.Fatalf("negative seek: %v", err)
	}
	wa := fl.(io.WriterAt)
	if _, err := wa.WriteAt([]byte("W"), 6); err != nil {
		t.Fatal(err)
	}
	n, err = fl.ReadAt(buf, 4)
	if n != 7 || err != io.EOF || string(buf[:n]) != "o World" {
		t.Fatalf("readat %d %q %v", n, buf[:n], err)
	}
	// Sparse write beyond EOF.
	if _, err := wa.WriteAt([]byte("end"), 1<<20); err != nil {
		t.Fatal(err)
	}
	must(t, fl.Truncate(1<<20+1))
	must(t, fl.Close())
	if err := fl.Close(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("second close: %v", err)
	}
	if _, err := fl.Write([]byte("x")); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
	got := readAll(t, f, "/a/b/c.txt")
	want := "hello World" + strings.Repeat("\x00", 1<<20-11) + "e"
	if got != want {
		t.Fatalf("content mismatch: len %d want %d", len(got), len(want))
	}
	st, err := f.Stat("a/b/c.txt")
	must(t, err)
	if st.Size() != 1<<20+1 || st.Mode() != 0o666 || st.IsDir() || st.Name() != "c.txt" {
		t.Fatalf("stat %v %v %v %q", st.Size(), st.Mode(), st.IsDir(), st.Name())
	}
	a, ok := st.Sys().(fsstore.Attr)
	if !ok || a.Ino == 0 || a.Size != 1<<20+1 || a.Nlink != 1 {
		t.Fatalf("sys %#v", st.Sys())
	}
	ro, err := f.Open("a/b/c.txt")
	must(t, err)
	if _, err := ro.Write([]byte("x")); !errors.Is(err, syscall.EBADF) {
		t.Fatalf("write to read-only file: %v", err)
	}
	if err := ro.Truncate(0); !errors.Is(err, syscall.EBADF) {
		t.Fatalf("truncate read-only file: %v", err)
	}
	must(t, ro.Close())
	wo, err := f.OpenFile("a/b/c.txt", os.O_WRONLY, 0)
	must(t, err)
	if _, err := wo.Read(buf); !errors.Is(err, syscall.EBADF) {
		t.Fatalf("read of write-only file: %v", err)
	}
	must(t, wo.Close())
}

func TestBillyOpenFlags(t *testing.T) {
	f, _ := newFS(t)
	must(t, util.WriteFile(f, "f", []byte("0123456789"), 0o640))
	st, err := f.Stat("f")
	must(t, err)
	if st.Mode() != 0o640 {
		t.Fatalf("mode %v", st.Mode())
	}
	if _, err := f.OpenFile("f", os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600); !os.IsExist(err) {
		t.Fatalf("O_EXCL on existing: %v", err)
	}
	wantErrno(t, func() error { _, err := f.OpenFile("f", os.O_CREATE|os.O_EXCL, 0); return err }(), syscall.EEXIST)
	if _, err := f.Open("missing"); !os.IsNotExist(err) {
		t.Fatalf("open missing: %v", err)
	}
	// O_APPEND writes at the end whatever the offset.
	ap, err := f.OpenFile("f", os.O_WRONLY|os.O_APPEND, 0)
	must(t, err)
	_, err = ap.Write([]byte("ab"))
	must(t, err)
	_, _ = ap.Seek(0, io.SeekStart)
	_, err = ap.Write([]byte("cd"))
	must(t, err)
	if _, err := ap.(io.WriterAt).WriteAt([]byte("x"), 0); err == nil {
		t.Fatal("WriteAt on O_APPEND file succeeded")
	}
	must(t, ap.Close())
	if got := readAll(t, f, "f"); got != "0123456789abcd" {
		t.Fatalf("after append: %q", got)
	}
	// O_TRUNC empties it.
	tr, err := f.OpenFile("f", os.O_RDWR|os.O_TRUNC, 0)
	must(t, err)
	st, err = tr.(interface{ Stat() (os.FileInfo, error) }).Stat()
	must(t, err)
	if st.Size() != 0 {
		t.Fatalf("size after O_TRUNC %d", st.Size())
	}
	must(t, tr.Close())
	// O_CREATE without O_EXCL opens an existing file without truncating.
	must(t, util.WriteFile(f, "g", []byte("keep"), 0o644))
	g, err := f.OpenFile("g", os.O_CREATE|os.O_RDWR, 0o600)
	must(t, err)
	must(t, g.Close())
	if got := readAll(t, f, "g"); got != "keep" {
		t.Fatalf("O_CREATE truncated: %q", got)
	}
	// Directories.
	must(t, f.MkdirAll("d", 0o755))
	wantErrno(t, func() error { _, err := f.OpenFile("d", os.O_RDWR, 0); return err }(), syscall.EISDIR)
	dh, err := f.Open("d")
	must(t, err)
	if _, err := dh.Read(make([]byte, 1)); !errors.Is(err, syscall.EISDIR) {
		t.Fatalf("read dir: %v", err)
	}
	must(t, dh.Close())
	// A file as a parent.
	wantErrno(t, func() error { _, err := f.Open("g/x"); return err }(), syscall.ENOTDIR)
	wantErrno(t, func() error { _, err := f.Create("g/x"); return err }(), syscall.ENOTDIR)
	// O_CREATE through a dangling symlink creates its target, O_EXCL refuses.
	must(t, f.Symlink("d/target", "dangling"))
	wantErrno(t, func() error { _, err := f.OpenFile("dangling", os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o644); return err }(), syscall.EEXIST)
	c, err := f.OpenFile("dangling", os.O_CREATE|os.O_RDWR, 0o644)
	must(t, err)
	must(t, c.Close())
	if _, err := f.Lstat("d/target"); err != nil {
		t.Fatalf("target not created: %v", err)
	}
}

func TestBillyDirsAndRemove(t *testing.T) {
	f, _ := newFS(t)
	must(t, f.MkdirAll("x/y/z", 0o750))
	must(t, f.MkdirAll("x/y/z", 0o750)) // again: nothing to do
	must(t, util.WriteFile(f, "x/f", nil, 0o644))
	wantErrno(t, f.MkdirAll("x/f/sub", 0o755), syscall.ENOTDIR)
	wantErrno(t, f.MkdirAll("x/f", 0o755), syscall.ENOTDIR)
	for _, name := range []string{"c", "a", "b"} {
		must(t, util.WriteFile(f, "x/y/"+name, []byte(name), 0o600))
	}
	infos, err := f.ReadDir("x/y")
	must(t, err)
	var names []string
	for _, fi := range infos {
		names = append(names, fi.Name())
	}
	if strings.Join(names, ",") != "a,b,c,z" {
		t.Fatalf("readdir %v", names)
	}
	if !infos[3].IsDir() || infos[3].Mode() != os.ModeDir|0o750 {
		t.Fatalf("z: %v", infos[3].Mode())
	}
	wantErrno(t, func() error { _, err := f.ReadDir("x/f"); return err }(), syscall.ENOTDIR)
	wantErrno(t, f.Remove("x/y"), syscall.ENOTEMPTY)
	wantErrno(t, f.Remove("nope"), syscall.ENOENT)
	if err := f.Remove("x/nope"); !os.IsNotExist(err) {
		t.Fatalf("remove missing: %v", err)
	}
	wantErrno(t, f.Remove("/"), syscall.EBUSY)
	must(t, util.RemoveAll(f, "x/y"))
	if _, err := f.Stat("x/y"); !os.IsNotExist(err) {
		t.Fatalf("after RemoveAll: %v", err)
	}
	must(t, f.Remove("x/f"))
	must(t, f.Remove("x"))
	st := f.Store().StatFS()
	if st.Files != 1 {
		t.Fatalf("%d inodes left", st.Files)
	}
}

func TestBillyRename(t *testing.T) {
	f, _ := newFS(t)
	must(t, util.WriteFile(f, "a", []byte("A"), 0o644))
	must(t, util.WriteFile(f, "b", []byte("B"), 0o644))
	must(t, f.Rename("a", "b")) // over an existing file
	if got := readAll(t, f, "b"); got != "A" {
		t.Fatalf("b = %q", got)
	}
	if _, err := f.Stat("a"); !os.IsNotExist(err) {
		t.Fatalf("a still there: %v", err)
	}
	must(t, f.Rename("b", "new/dir/c")) // parents are created
	if got := readAll(t, f, "new/dir/c"); got != "A" {
		t.Fatalf("c = %q", got)
	}
	must(t, f.MkdirAll("d1/sub", 0o755))
	err := f.Rename("d1", "d1/sub/inside")
	wantErrno(t, err, syscall.EINVAL)
	var le *os.LinkError
	if !errors.As(err, &le) || le.Old != "d1" {
		t.Fatalf("not a LinkError: %#v", err)
	}
	must(t, f.MkdirAll("d2", 0o755))
	wantErrno(t, f.Rename("new", "d1"), syscall.ENOTEMPTY)
	must(t, f.Rename("d1/sub", "d2")) // over an empty directory
	wantErrno(t, f.Rename("missing", "zz"), syscall.ENOENT)
	wantErrno(t, f.Rename("new/dir/c", "d2"), syscall.EISDIR)
	wantErrno(t, f.Rename("d2", "new/dir/c"), syscall.ENOTDIR)
}

func TestBillySymlinks(t *testing.T) {
	f, _ := newFS(t)
	must(t, util.WriteFile(f, "dir/file", []byte("data"), 0o644))
	must(t, f.Symlink("dir", "rel"))
	must(t, f.Symlink("/dir/file", "abs"))
	must(t, f.Symlink("../../../dir", "dir/up")) // ".." stops at the root
	must(t, f.Symlink("loop", "loop"))
	must(t, f.Symlink("l/x/y", "links/l")) // parents created
	if got := readAll(t, f, "rel/file"); got != "data" {
		t.Fatalf("rel/file %q", got)
	}
	if got := readAll(t, f, "abs"); got != "data" {
		t.Fatalf("abs %q", got)
	}
	if got := readAll(t, f, "dir/up/up/up/file"); got != "data" {
		t.Fatalf("up %q", got)
	}
	st, err := f.Lstat("abs")
	must(t, err)
	if st.Mode()&os.ModeSymlink == 0 || st.Size() != int64(len("/dir/file")) || st.Name() != "abs" {
		t.Fatalf("lstat %v %d", st.Mode(), st.Size())
	}
	st, err = f.Stat("abs")
	must(t, err)
	if !st.Mode().IsRegular() || st.Size() != 4 {
		t.Fatalf("stat %v", st.Mode())
	}
	if tgt, err := f.Readlink("abs"); err != nil || tgt != "/dir/file" {
		t.Fatalf("readlink %q %v", tgt, err)
	}
	wantErrno(t, func() error { _, err := f.Readlink("dir"); return err }(), syscall.EINVAL)
	wantErrno(t, func() error { _, err := f.Stat("loop"); return err }(), syscall.ELOOP)
	wantErrno(t, func() error { _, err := f.Open("loop/x"); return err }(), syscall.ELOOP)
	if _, err := f.Lstat("loop"); err != nil {
		t.Fatal(err)
	}
	wantErrno(t, f.Symlink("x", "rel"), syscall.EEXIST)
	// A chain of exactly MaxSymlinks links resolves; one more fails.
	prev := "dir/file"
	for i := 0; i <= MaxSymlinks; i++ {
		name := "chain" + string(rune('A'+i/26)) + string(rune('a'+i%26))
		must(t, f.Symlink(prev, name))
		prev = name
		_, err := f.Stat(name)
		if i < MaxSymlinks && err != nil {
			t.Fatalf("chain of %d: %v", i+1, err)
		}
		if i == MaxSymlinks {
			wantErrno(t, err, syscall.ELOOP)
		}
	}
	// Remove and Rename act on the link, not its target.
	must(t, f.Rename("rel", "rel2"))
	must(t, f.Remove("rel2"))
	if _, err := f.Stat("dir/file"); err != nil {
		t.Fatal(err)
	}
	// Lchown changes the link, Chown the target.
	must(t, f.Lchown("abs", 7, 8))
	must(t, f.Chown("abs", 9, -1))
	la, _ := f.Lstat("abs")
	ta, _ := f.Stat("abs")
	if a := la.Sys().(fsstore.Attr); a.UID != 7 || a.GID != 8 {
		t.Fatalf("lchown: %d %d", a.UID, a.GID)
	}
	if a := ta.Sys().(fsstore.Attr); a.UID != 9 || a.GID != 0 {
		t.Fatalf("chown: %d %d", a.UID, a.GID)
	}
}

func TestBillyChangeAndChroot(t *testing.T) {
	f, _ := newFS(t)
	must(t, util.WriteFile(f, "top/sub/f", []byte("x"), 0o644))
	must(t, f.Chmod("top/sub/f", 0o600|os.ModeSetgid|os.ModeSticky))
	st, _ := f.Stat("top/sub/f")
	if st.Mode() != 0o600|os.ModeSetgid|os.ModeSticky {
		t.Fatalf("chmod: %v", st.Mode())
	}
	at := time.Date(2001, 2, 3, 4, 5, 6, 789, time.UTC)
	mt := time.Date(2002, 2, 3, 4, 5, 6, 123456789, time.UTC)
	must(t, f.Chtimes("top/sub/f", at, mt))
	st, _ = f.Stat("top/sub/f")
	a := st.Sys().(fsstore.Attr)
	if !st.ModTime().Equal(mt) || !a.Atime.Equal(at) {
		t.Fatalf("chtimes: %v %v", st.ModTime(), a.Atime)
	}
	wantErrno(t, f.Chmod("nope", 0o644), syscall.ENOENT)

	c, err := f.Chroot("top")
	must(t, err)
	if c.Root() != "/top" {
		t.Fatalf("root %q", c.Root())
	}
	if got := readAll(t, c, "sub/f"); got != "x" {
		t.Fatalf("chroot read %q", got)
	}
	// ".." and absolute symlinks stay inside the chroot.
	must(t, util.WriteFile(f, "secret", []byte("s"), 0o600))
	if _, err := c.Stat("../secret"); !os.IsNotExist(err) {
		t.Fatalf("../secret visible in chroot: %v", err)
	}
	must(t, c.Symlink("/sub/f", "abs"))
	if got := readAll(t, c, "abs"); got != "x" {
		t.Fatalf("abs in chroot %q", got)
	}
	must(t, c.Symlink("/secret", "esc"))
	if _, err := c.Stat("esc"); !os.IsNotExist(err) {
		t.Fatalf("escape via symlink: %v", err)
	}
	cc, err := c.Chroot("sub")
	must(t, err)
	if cc.Root() != "/top/sub" {
		t.Fatalf("nested root %q", cc.Root())
	}
	if _, err := f.Chroot("secret"); !errors.Is(err, syscall.ENOTDIR) {
		t.Fatalf("chroot to a file: %v", err)
	}
	tf, err := c.TempFile("tmp", "pre-")
	must(t, err)
	if !strings.HasPrefix(tf.Name(), "tmp/pre-") {
		t.Fatalf("temp name %q", tf.Name())
	}
	_, err = tf.Write([]byte("temp"))
	must(t, err)
	must(t, tf.Close())
	st, err = f.Stat(path.Join("top", tf.Name()))
	must(t, err)
	if st.Mode() != 0o600 || st.Size() != 4 {
		t.Fatalf("temp file %v %d", st.Mode(), st.Size())
	}
	if c.Join("a", "b/../c") != "a/c" {
		t.Fatal("join")
	}
}

func TestBillyPermissions(t *testing.T) {
	root, _ := newFS(t)
	must(t, root.MkdirAll("pub", 0o777))
	must(t, util.WriteFile(root, "private", []byte("p"), 0o600))
	user := New(root.Store(), fsstore.RootIno, &fsstore.Cred{UID: 1000, GID: 1000})
	if _, err := user.Open("private"); !os.IsPermission(err) {
		t.Fatalf("open private as user: %v", err)
	}
	if _, err := user.Create("f"); !os.IsPermission(err) {
		t.Fatalf("create in root-owned 0755 dir: %v", err)
	}
	must(t, util.WriteFile(user, "pub/mine", []byte("m"), 0o600))
	st, _ := root.Stat("pub/mine")
	if a := st.Sys().(fsstore.Attr); a.UID != 1000 || a.GID != 1000 {
		t.Fatalf("owner %d:%d", a.UID, a.GID)
	}
	wantErrno(t, user.Chown("pub/mine", 0, -1), syscall.EPERM)
	wantErrno(t, user.Chmod("private", 0o777), syscall.EPERM)
}

// An open file keeps its data after its last name goes, until Close.
func TestBillyOpenUnlinked(t *testing.T) {
	f, d := newFS(t)
	must(t, util.WriteFile(f, "f", bytes.Repeat([]byte("z"), 10000), 0o644))
	fl, err := f.OpenFile("f", os.O_RDWR, 0)
	must(t, err)
	must(t, f.Remove("f"))
	if _, err := f.Stat("f"); !os.IsNotExist(err) {
		t.Fatal(err)
	}
	_, err = fl.(io.WriterAt).WriteAt([]byte("tail"), 20000)
	must(t, err)
	b, err := io.ReadAll(fl)
	must(t, err)
	if len(b) != 20004 || b[0] != 'z' || string(b[20000:]) != "tail" {
		t.Fatalf("read %d bytes", len(b))
	}
	if st := f.Store().StatFS(); st.Files != 2 {
		t.Fatalf("inodes while open: %d", st.Files)
	}
	must(t, fl.Close())
	if st := f.Store().StatFS(); st.Files != 1 {
		t.Fatalf("inodes after close: %d", st.Files)
	}
	// A crash while open leaves an orphan that the next Open frees.
	must(t, util.WriteFile(f, "g", []byte("g"), 0o644))
	g, err := f.Open("g")
	must(t, err)
	must(t, f.Remove("g"))
	f.Store().Kill(errors.New("test crash"))
	_ = g
	s2, err := fsstore.Open(d, fsstore.Options{Logger: slog.New(slog.DiscardHandler)})
	must(t, err)
	defer s2.Close()
	if st := s2.StatFS(); st.Files != 1 {
		t.Fatalf("inodes after reopen: %d", st.Files)
	}
}

func TestBillyConcurrent(t *testing.T) {
	f, _ := newFS(t)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dir := path.Join("shared", "w"+string(rune('0'+w)))
			for i := 0; i < 20; i++ {
				name := path.Join(dir, "f"+string(rune('a'+i)))
				if err := util.WriteFile(f, name, []byte(name), 0o644); err != nil {
					errs <- err
					return
				}
				if b, err := util.ReadFile(f, name); err != nil || string(b) != name {
					errs <- errors.Join(err, errors.New("content "+string(b)))
					return
				}
			}
			if err := util.RemoveAll(f, dir); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	infos, err := f.ReadDir("shared")
	must(t, err)
	if len(infos) != 0 {
		t.Fatalf("%d left", len(infos))
	}
	if st, _ := f.Stat("shared"); st.(interface{ Sys() any }).Sys().(fsstore.Attr).Nlink != 2 {
		t.Fatal("nlink of shared")
	}
}
