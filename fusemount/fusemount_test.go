package fusemount_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hanfs/hanfs/fsstore"
	"github.com/hanfs/hanfs/fusemount"
	"github.com/hanfs/hanfs/shareddisk"
)

// fuseSuperMagic is statfs(2)'s f_type of a FUSE mount.
const fuseSuperMagic = 0x65735546

// requireFUSE skips the test unless it can mount FUSE file systems.
func requireFUSE(t *testing.T) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("FUSE mount tests need Linux")
	}
	if os.Geteuid() != 0 {
		t.Skip("FUSE mount tests need root (mount(2) without fusermount) and /dev/fuse")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("FUSE mount tests need /dev/fuse: %v", err)
	}
}

// testLogger logs through t.
func testLogger(t *testing.T) *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("HANFS_FUSE_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: level}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// mounted is a store mounted for a test.
type mounted struct {
	img   string
	dir   string
	store *fsstore.Store
	srv   *fusemount.Server
}

// mountFresh formats a sparse image of size bytes in a temporary directory
// and mounts it. Cleanup unmounts it and runs fsck on the image.
func mountFresh(t *testing.T, size int64) *mounted {
	t.Helper()
	requireFUSE(t)
	tmp := t.TempDir()
	m := &mounted{img: filepath.Join(tmp, "disk.img"), dir: filepath.Join(tmp, "mnt")}
	if err := os.Mkdir(m.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := shareddisk.CreateImage(m.img, size); err != nil {
		t.Fatal(err)
	}
	d, err := shareddisk.OpenFile(m.img, shareddisk.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fsstore.Format(d, fsstore.FormatOptions{}); err != nil {
		t.Fatal(err)
	}
	m.store, err = fsstore.Open(d, fsstore.Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	m.srv, err = fusemount.Mount(m.store, m.dir, fusemount.Options{Logger: testLogger(t), Debug: os.Getenv("HANFS_FUSE_DEBUG") != ""})
	if err != nil {
		m.store.Close()
		d.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if m.srv != nil {
			if err := unmountRetry(m.srv); err != nil {
				t.Errorf("unmount: %v", err)
				m.srv.UnmountLazy()
			}
			m.srv.Wait()
		}
		if err := m.store.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
		checkFsck(t, d)
		d.Close()
	})
	return m
}

// unmountRetry unmounts, retrying while the kernel still holds files that
// a test just closed.
func unmountRetry(srv *fusemount.Server) error {
	var err error
	for range 50 {
		if err = srv.Unmount(); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

// checkFsck fails the test unless fsck finds d clean.
func checkFsck(t *testing.T, d shareddisk.Disk) {
	t.Helper()
	rep, err := fsstore.Fsck(d)
	if err != nil {
		t.Errorf("fsck: %v", err)
		return
	}
	if !rep.OK() {
		t.Errorf("fsck found problems:\n%s", rep)
	}
}

func (m *mounted) path(elem ...string) string {
	return filepath.Join(append([]string{m.dir}, elem...)...)
}

// run runs a program in dir and fails the test if it fails.
func run(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s (in %s): %v\n%s", name, strings.Join(args, " "), dir, err, out.String())
	}
	return out.String()
}

// goSrc returns the Go source tree to copy: all of GOROOT/src with
// HANFS_TEST_FULL_GOROOT=1, else GOROOT/src/net.
func goSrc(t *testing.T) (parent, name string) {
	t.Helper()
	goroot := runtime.GOROOT()
	if out, err := exec.Command("go", "env", "GOROOT").Output(); err == nil {
		goroot = strings.TrimSpace(string(out))
	}
	if os.Getenv("HANFS_TEST_FULL_GOROOT") == "1" {
		return goroot, "src"
	}
	return filepath.Join(goroot, "src"), "net"
}

// TestTarCopyDiff extracts a real source tree into the mount with tar,
// copies it back out with cp -a, and compares all three trees.
func TestTarCopyDiff(t *testing.T) {
	m := mountFresh(t, 4<<30)
	parent, name := goSrc(t)
	tmp := t.TempDir()
	tarball := filepath.Join(tmp, "src.tar")
	run(t, parent, "tar", "-cf", tarball, name)

	start := time.Now()
	run(t, m.dir, "tar", "-xf", tarball)
	t.Logf("tar -x of %s/%s into the mount: %v", parent, name, time.Since(start))

	start = time.Now()
	out := filepath.Join(tmp, "out")
	run(t, tmp, "cp", "-a", m.path(name), out)
	t.Logf("cp -a out of the mount: %v", time.Since(start))

	start = time.Now()
	run(t, tmp, "diff", "-r", filepath.Join(parent, name), m.path(name))
	run(t, tmp, "diff", "-r", filepath.Join(parent, name), out)
	t.Logf("diff -r twice: %v", time.Since(start))

	compareTrees(t, filepath.Join(parent, name), m.path(name))
	compareTrees(t, m.path(name), out)
}

// compareTrees checks that two trees hold the same names, types,
// permissions, sizes, modification times (to the second) and symlink
// targets.
func compareTrees(t *testing.T, a, b string) {
	t.Helper()
	type info struct {
		mode  fs.FileMode
		size  int64
		mtime int64
		link  string
	}
	walk := func(root string) map[string]info {
		res := make(map[string]info)
		err := filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := de.Info()
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			in := info{mode: fi.Mode(), mtime: fi.ModTime().Unix()}
			switch {
			case fi.Mode().IsRegular():
				in.size = fi.Size()
			case fi.Mode()&fs.ModeSymlink != 0:
				in.link, _ = os.Readlink(p)
			case fi.IsDir():
				in.mtime = 0 // changed by the extraction itself
			}
			res[rel] = in
			return nil
		})
		if err != nil {
			t.Fatalf("walk %s: %v", root, err)
		}
		return res
	}
	ta, tb := walk(a), walk(b)
	if len(ta) != len(tb) {
		t.Errorf("%s has %d entries, %s has %d", a, len(ta), b, len(tb))
	}
	bad := 0
	for p, ia := range ta {
		ib, ok := tb[p]
		switch {
		case !ok:
			t.Errorf("%s: missing from %s", p, b)
		case ia != ib:
			t.Errorf("%s: %+v in %s, %+v in %s", p, ia, a, ib, b)
		default:
			continue
		}
		if bad++; bad > 20 {
			t.Fatal("too many differences")
		}
	}
}

// TestGit runs git init, add, commit and fsck inside the mount.
func TestGit(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("needs git")
	}
	m := mountFresh(t, 1<<30)
	repo := m.path("repo")
	if err := os.Mkdir(repo, 0o755); err != nil {
		t.Fatal(err)
	}
	git := func(args ...string) string {
		t.Helper()
		return run(t, repo, "git", append([]string{"-c", "user.name=hanfs test", "-c", "user.email=test@hanfs.invalid",
			"-c", "init.defaultBranch=main", "-c", "safe.directory=*"}, args...)...)
	}
	git("init")
	for i := range 50 {
		dir := filepath.Join(repo, fmt.Sprintf("dir%d", i%5))
		os.MkdirAll(dir, 0o755)
		content := bytes.Repeat([]byte(fmt.Sprintf("file %d line\n", i)), 100*(i+1))
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d.txt", i)), content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git("add", ".")
	git("commit", "-q", "-m", "first commit")
	if err := os.WriteFile(filepath.Join(repo, "dir0", "f0.txt"), []byte("changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	git("commit", "-q", "-a", "-m", "second commit")
	if got := git("log", "--format=%s"); got != "second commit\nfirst commit\n" {
		t.Errorf("git log: %q", got)
	}
	if got := git("status", "--porcelain"); got != "" {
		t.Errorf("git status after commit: %q", got)
	}
	git("fsck", "--strict")
	git("gc", "-q")
	git("fsck", "--strict")
	if got := git("show", "HEAD:dir0/f0.txt"); got != "changed\n" {
		t.Errorf("git show: %q", got)
	}
}

// TestSparseLargeFile writes at the end of a 5 GiB sparse file and across
// the 4 GiB boundary, and reads both back.
func TestSparseLargeFile(t *testing.T) {
	m := mountFresh(t, 1<<30)
	p := m.path("sparse")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	const size = 5 << 30
	tail := randBytes(t, 1<<20)
	if _, err := f.WriteAt(tail, size-int64(len(tail))); err != nil {
		t.Fatal(err)
	}
	straddle := randBytes(t, 8192)
	if _, err := f.WriteAt(straddle, 4<<30-4096); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	if st.Size != size {
		t.Errorf("size %d, want %d", st.Size, size)
	}
	if used := st.Blocks * 512; used > 16<<20 {
		t.Errorf("sparse file uses %d bytes on the disk", used)
	}
	f, err = os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := make([]byte, len(tail))
	if _, err := f.ReadAt(got, size-int64(len(tail))); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, tail) {
		t.Error("tail of the sparse file differs")
	}
	got = make([]byte, len(straddle))
	if _, err := f.ReadAt(got, 4<<30-4096); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, straddle) {
		t.Error("data across the 4 GiB boundary differs")
	}
	hole := make([]byte, 1<<20)
	if _, err := f.ReadAt(hole, 3<<30); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(hole, make([]byte, len(hole))) {
		t.Error("hole does not read as zeroes")
	}
	if n, err := f.ReadAt(got, size); n != 0 || err != io.EOF {
		t.Errorf("read at EOF: %d, %v", n, err)
	}
}

func randBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func stat(t *testing.T, p string) *unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return &st
}

func mustWrite(t *testing.T, p, content string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustRead(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestNamespace covers renames, hard links, symlinks, chmod, chown,
// truncate, utimes, mknod and inode numbers.
func TestNamespace(t *testing.T) {
	m := mountFresh(t, 256<<20)

	t.Run("inode numbers", func(t *testing.T) {
		mustWrite(t, m.path("ino"), "x")
		a, err := m.store.Lookup(nil, fsstore.RootIno, "ino")
		if err != nil {
			t.Fatal(err)
		}
		if st := stat(t, m.path("ino")); st.Ino != uint64(a.Ino) {
			t.Errorf("stat ino %d, store ino %d", st.Ino, a.Ino)
		}
		if st := stat(t, m.dir); st.Ino != uint64(fsstore.RootIno) {
			t.Errorf("root ino %d", st.Ino)
		}
	})

	t.Run("children do not inherit /dev/fuse", func(t *testing.T) {
		out := run(t, m.dir, "sh", "-c", "ls -l /proc/$$/fd")
		if strings.Contains(out, "/dev/fuse") {
			t.Errorf("a child process holds the FUSE connection open:\n%s", out)
		}
	})

	t.Run("rename over existing", func(t *testing.T) {
		mustWrite(t, m.path("a"), "content of a")
		mustWrite(t, m.path("b"), "content of b")
		ino := stat(t, m.path("a")).Ino
		if err := os.Rename(m.path("a"), m.path("b")); err != nil {
			t.Fatal(err)
		}
		if got := mustRead(t, m.path("b")); got != "content of a" {
			t.Errorf("b holds %q", got)
		}
		if _, err := os.Lstat(m.path("a")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("a after rename: %v", err)
		}
		if st := stat(t, m.path("b")); st.Ino != ino {
			t.Errorf("b has inode %d, want %d", st.Ino, ino)
		}
		// Across directories, over an existing file.
		os.Mkdir(m.path("d1"), 0o755)
		os.Mkdir(m.path("d2"), 0o755)
		mustWrite(t, m.path("d1", "x"), "x1")
		mustWrite(t, m.path("d2", "x"), "x2")
		if err := os.Rename(m.path("d1", "x"), m.path("d2", "x")); err != nil {
			t.Fatal(err)
		}
		if got := mustRead(t, m.path("d2", "x")); got != "x1" {
			t.Errorf("d2/x holds %q", got)
		}
		// A directory over an empty directory, and not over a non-empty one.
		os.Mkdir(m.path("d3"), 0o755)
		// (os.Rename refuses a directory target itself.)
		if err := unix.Rename(m.path("d3"), m.path("d1")); err != nil {
			t.Errorf("rename dir over empty dir: %v", err)
		}
		if err := unix.Rename(m.path("d1"), m.path("d2")); !errors.Is(err, syscall.ENOTEMPTY) && !errors.Is(err, syscall.EEXIST) {
			t.Errorf("rename dir over non-empty dir: %v", err)
		}
		mustWrite(t, m.path("c"), "c")
		err := unix.Renameat2(unix.AT_FDCWD, m.path("c"), unix.AT_FDCWD, m.path("b"), unix.RENAME_NOREPLACE)
		if !errors.Is(err, syscall.EEXIST) {
			t.Errorf("RENAME_NOREPLACE over existing: %v", err)
		}
		if err := unix.Renameat2(unix.AT_FDCWD, m.path("c"), unix.AT_FDCWD, m.path("c2"), unix.RENAME_NOREPLACE); err != nil {
			t.Errorf("RENAME_NOREPLACE to a new name: %v", err)
		}
	})

	t.Run("hard links", func(t *testing.T) {
		mustWrite(t, m.path("h1"), "linked")
		if err := os.Link(m.path("h1"), m.path("h2")); err != nil {
			t.Fatal(err)
		}
		os.Mkdir(m.path("hd"), 0o755)
		if err := os.Link(m.path("h1"), m.path("hd", "h3")); err != nil {
			t.Fatal(err)
		}
		s1, s2, s3 := stat(t, m.path("h1")), stat(t, m.path("h2")), stat(t, m.path("hd", "h3"))
		if s1.Ino != s2.Ino || s1.Ino != s3.Ino {
			t.Errorf("inodes %d %d %d", s1.Ino, s2.Ino, s3.Ino)
		}
		if s1.Nlink != 3 {
			t.Errorf("nlink %d, want 3", s1.Nlink)
		}
		if err := os.Remove(m.path("h1")); err != nil {
			t.Fatal(err)
		}
		if st := stat(t, m.path("h2")); st.Nlink != 2 {
			t.Errorf("nlink after unlink %d, want 2", st.Nlink)
		}
		if got := mustRead(t, m.path("hd", "h3")); got != "linked" {
			t.Errorf("h3 holds %q", got)
		}
		if err := os.Link(m.path("hd"), m.path("hdlink")); err == nil {
			t.Error("hard link to a directory succeeded")
		}
		if st := stat(t, m.path("hd")); st.Nlink != 2 {
			t.Errorf("directory nlink %d, want 2", st.Nlink)
		}
		os.Mkdir(m.path("hd", "sub"), 0o755)
		if st := stat(t, m.path("hd")); st.Nlink != 3 {
			t.Errorf("directory with a subdirectory: nlink %d, want 3", st.Nlink)
		}
	})

	t.Run("symlinks", func(t *testing.T) {
		mustWrite(t, m.path("target"), "pointed at")
		if err := os.Symlink("target", m.path("link")); err != nil {
			t.Fatal(err)
		}
		if got, err := os.Readlink(m.path("link")); err != nil || got != "target" {
			t.Errorf("readlink: %q, %v", got, err)
		}
		if st := stat(t, m.path("link")); st.Mode&unix.S_IFMT != unix.S_IFLNK || st.Size != int64(len("target")) {
			t.Errorf("lstat: mode %o size %d", st.Mode, st.Size)
		}
		if got := mustRead(t, m.path("link")); got != "pointed at" {
			t.Errorf("read through symlink: %q", got)
		}
		long := strings.Repeat("x/", 500)
		if err := os.Symlink(long, m.path("longlink")); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.Readlink(m.path("longlink")); got != long {
			t.Errorf("long symlink target %d bytes, want %d", len(got), len(long))
		}
		os.Symlink("nowhere", m.path("dangling"))
		if _, err := os.Stat(m.path("dangling")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("stat dangling: %v", err)
		}
	})

	t.Run("chmod chown truncate utimes", func(t *testing.T) {
		p := m.path("attrs")
		mustWrite(t, p, "0123456789")
		if err := unix.Chmod(p, 0o4751); err != nil { // os.Chmod would need os.ModeSetuid
			t.Fatal(err)
		}
		if st := stat(t, p); st.Mode != unix.S_IFREG|0o4751 {
			t.Errorf("mode %o", st.Mode)
		}
		if err := os.Chown(p, 1234, 5678); err != nil {
			t.Fatal(err)
		}
		if st := stat(t, p); st.Uid != 1234 || st.Gid != 5678 {
			t.Errorf("owner %d:%d", st.Uid, st.Gid)
		}
		if err := os.Truncate(p, 4); err != nil {
			t.Fatal(err)
		}
		if got := mustRead(t, p); got != "0123" {
			t.Errorf("after truncate: %q", got)
		}
		if err := os.Truncate(p, 8192); err != nil {
			t.Fatal(err)
		}
		if got := mustRead(t, p); got != "0123"+string(make([]byte, 8188)) {
			t.Errorf("after extending truncate: %d bytes", len(got))
		}
		mtime := time.Date(2001, 2, 3, 4, 5, 6, 789, time.UTC)
		atime := time.Date(1999, 1, 1, 0, 0, 0, 123456789, time.UTC)
		if err := os.Chtimes(p, atime, mtime); err != nil {
			t.Fatal(err)
		}
		st := stat(t, p)
		if got := time.Unix(st.Mtim.Unix()); !got.Equal(mtime) {
			t.Errorf("mtime %v, want %v", got, mtime)
		}
		if got := time.Unix(st.Atim.Unix()); !got.Equal(atime) {
			t.Errorf("atime %v, want %v", got, atime)
		}
		if err := os.Chmod(m.path("hd"), 0o700); err != nil {
			t.Fatal(err)
		}
		if st := stat(t, m.path("hd")); st.Mode != unix.S_IFDIR|0o700 {
			t.Errorf("dir mode %o", st.Mode)
		}
	})

	t.Run("append", func(t *testing.T) {
		p := m.path("appended")
		for _, line := range []string{"one\n", "two\n", "three\n"} {
			f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteString(line); err != nil {
				t.Fatal(err)
			}
			f.Close()
		}
		if got := mustRead(t, p); got != "one\ntwo\nthree\n" {
			t.Errorf("appended file holds %q", got)
		}
	})

	t.Run("mknod", func(t *testing.T) {
		old := unix.Umask(0)
		defer unix.Umask(old)
		if err := unix.Mkfifo(m.path("fifo"), 0o600); err != nil {
			t.Fatal(err)
		}
		if st := stat(t, m.path("fifo")); st.Mode != unix.S_IFIFO|0o600 {
			t.Errorf("fifo mode %o", st.Mode)
		}
		dev := unix.Mkdev(1, 3)
		if err := unix.Mknod(m.path("null"), unix.S_IFCHR|0o666, int(dev)); err != nil {
			t.Fatal(err)
		}
		if st := stat(t, m.path("null")); st.Mode != unix.S_IFCHR|0o666 || st.Rdev != dev {
			t.Errorf("char device mode %o rdev %x, want rdev %x", st.Mode, st.Rdev, dev)
		}
	})

	t.Run("errors", func(t *testing.T) {
		if err := os.Mkdir(m.path("hd"), 0o755); !errors.Is(err, fs.ErrExist) {
			t.Errorf("mkdir existing: %v", err)
		}
		if err := os.Remove(m.path("hd")); !errors.Is(err, syscall.ENOTEMPTY) {
			t.Errorf("rmdir non-empty: %v", err)
		}
		if _, err := os.Stat(m.path("no", "such")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("stat missing: %v", err)
		}
		if err := os.WriteFile(m.path(strings.Repeat("n", 256)), nil, 0o644); !errors.Is(err, syscall.ENAMETOOLONG) {
			t.Errorf("long name: %v", err)
		}
		f, err := os.OpenFile(m.path("excl"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		if _, err := os.OpenFile(m.path("excl"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644); !errors.Is(err, fs.ErrExist) {
			t.Errorf("O_EXCL on existing: %v", err)
		}
	})
}

// TestUnlinkOpenFile checks that an unlinked file stays readable and
// writable through open descriptors until the last close.
func TestUnlinkOpenFile(t *testing.T) {
	m := mountFresh(t, 256<<20)
	p := m.path("doomed")
	data := randBytes(t, 3<<20)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	before := statfs(t, m.dir)
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stat after unlink: %v", err)
	}
	got, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Error("content of the unlinked file differs")
	}
	if _, err := f.WriteAt([]byte("still here"), 0); err != nil {
		t.Errorf("write to unlinked file: %v", err)
	}
	buf := make([]byte, 10)
	if _, err := f.ReadAt(buf, 0); err != nil || string(buf) != "still here" {
		t.Errorf("read back from unlinked file: %q, %v", buf, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Errorf("fstat unlinked file: %v", err)
	} else if st.Nlink != 0 {
		t.Errorf("nlink of unlinked file %d", st.Nlink)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	// The release reaches the store asynchronously; its blocks come back.
	deadline := time.Now().Add(5 * time.Second)
	for {
		after := statfs(t, m.dir)
		if after.Bfree >= before.Bfree+uint64(len(data))/4096 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("free blocks %d before the last close, %d after: the orphan was not freed", before.Bfree, after.Bfree)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func statfs(t *testing.T, p string) *unix.Statfs_t {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(p, &st); err != nil {
		t.Fatal(err)
	}
	return &st
}

// TestReaddirLarge lists a directory of thousands of entries, in several
// FUSE READDIR batches, with ls and with a seekdir in the middle.
func TestReaddirLarge(t *testing.T) {
	m := mountFresh(t, 256<<20)
	dir := m.path("big")
	os.Mkdir(dir, 0o755)
	const n = 3000
	want := make([]string, 0, n)
	for i := range n {
		name := fmt.Sprintf("entry-%05d-%s", i, strings.Repeat("z", i%40))
		want = append(want, name)
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	sort.Strings(want)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]string, 0, len(ents))
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("ReadDir: %d names, want %d", len(got), len(want))
	}
	ls := strings.Fields(run(t, dir, "ls", "-a"))
	if len(ls) != n+2 {
		t.Errorf("ls -a lists %d names, want %d", len(ls), n+2)
	}
	if st := statfs(t, m.dir); st.Files < n {
		t.Errorf("statfs: %d files", st.Files)
	}
	// Remove every other entry while listing: each remaining name is seen once.
	seen := make(map[string]int)
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i := 0; ; i++ {
		names, err := f.Readdirnames(100)
		for _, nm := range names {
			seen[nm]++
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if i == 3 {
			for j := 0; j < n; j += 2 {
				os.Remove(filepath.Join(dir, want[j]))
			}
		}
	}
	for j := 1; j < n; j += 2 {
		if seen[want[j]] != 1 {
			t.Errorf("%s seen %d times", want[j], seen[want[j]])
			break
		}
	}
}

// TestSeekdir checks that every directory offset the kernel hands out is
// positive and that seeking back to one (telldir/seekdir) continues the
// listing right after the entry it was taken from.
func TestSeekdir(t *testing.T) {
	m := mountFresh(t, 256<<20)
	for i := range 500 {
		mustWrite(t, m.path(fmt.Sprintf("file-%d", i)), "")
	}
	fd, err := unix.Open(m.dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	type dent struct {
		name string
		off  int64
	}
	readAll := func() []dent {
		var res []dent
		buf := make([]byte, 1024) // small: many getdents calls
		for {
			n, err := unix.Getdents(fd, buf)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				return res
			}
			for b := buf[:n]; len(b) > 0; {
				off := int64(binary.NativeEndian.Uint64(b[8:16]))
				reclen := binary.NativeEndian.Uint16(b[16:18])
				name := b[19:reclen]
				name = name[:bytes.IndexByte(name, 0)]
				res = append(res, dent{string(name), off})
				b = b[reclen:]
			}
		}
	}
	all := readAll()
	if len(all) != 502 {
		t.Fatalf("%d entries, want 502", len(all))
	}
	for _, d := range all {
		if d.off <= 0 {
			t.Fatalf("entry %q has offset %d", d.name, d.off)
		}
	}
	for _, k := range []int{0, 1, 2, 99, 250, 500, 501} {
		if _, err := unix.Seek(fd, all[k].off, io.SeekStart); err != nil {
			t.Fatalf("seek to offset %d of entry %d: %v", all[k].off, k, err)
		}
		rest := readAll()
		if len(rest) != len(all)-k-1 || (len(rest) > 0 && rest[0] != all[k+1]) {
			t.Errorf("after seeking to entry %d (%q): %d entries, want %d", k, all[k].name, len(rest), len(all)-k-1)
		}
	}
	if _, err := unix.Seek(fd, 0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if again := readAll(); len(again) != len(all) {
		t.Errorf("after rewinding: %d entries, want %d", len(again), len(all))
	}
}

// TestConcurrentWriters runs several writers and readers at once.
func TestConcurrentWriters(t *testing.T) {
	m := mountFresh(t, 512<<20)
	const writers = 8
	errs := make(chan error, writers)
	for w := range writers {
		go func() {
			r := mrand.New(mrand.NewPCG(uint64(w), 1))
			for i := range 20 {
				p := m.path(fmt.Sprintf("w%d-%d", w, i))
				data := make([]byte, r.IntN(256<<10))
				for j := range data {
					data[j] = byte(r.Uint32())
				}
				if err := os.WriteFile(p, data, 0o644); err != nil {
					errs <- err
					return
				}
				got, err := os.ReadFile(p)
				if err != nil {
					errs <- err
					return
				}
				if sha256.Sum256(got) != sha256.Sum256(data) {
					errs <- fmt.Errorf("%s: content differs", p)
					return
				}
			}
			errs <- nil
		}()
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// buildHanfsd builds cmd/hanfsd into a temporary directory.
func buildHanfsd(t *testing.T) string {
	t.Helper()
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		if goBin, err = exec.LookPath("go"); err != nil {
			t.Skip("needs the go command to build hanfsd")
		}
	}
	bin := filepath.Join(t.TempDir(), "hanfsd")
	cmd := exec.Command(goBin, "build", "-o", bin, "github.com/hanfs/hanfs/cmd/hanfsd")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build hanfsd: %v\n%s", err, out)
	}
	return bin
}

// child is a running "hanfsd mount".
type child struct {
	cmd    *exec.Cmd
	exited chan error // receives cmd.Wait's result
}

// startMount runs "hanfsd mount" as a child process and waits until the
// mount is up.
func startMount(t *testing.T, bin, img, dir string, log io.Writer) *child {
	t.Helper()
	// Generous lease timing: this test loads the machine heavily, and
	// fdatasync of an image file under load can exceed the default io-timeout.
	cmd := exec.Command(bin, "mount", "--disk", img, "--lease-period", "3s", "--io-timeout", "600ms", "--renew-interval", "300ms", dir)
	cmd.Stdout = log
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var st unix.Statfs_t
		if err := unix.Statfs(dir, &st); err == nil && st.Type == fuseSuperMagic {
			break
		}
		select {
		case err := <-exited:
			t.Fatalf("hanfsd mount exited before mounting: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("hanfsd mount did not mount within 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Reap the child in the background; tests wait with waitExit.
	t.Cleanup(func() {
		cmd.Process.Kill()
		unix.Unmount(dir, unix.MNT_DETACH)
	})
	return &child{cmd: cmd, exited: exited}
}

// wait waits for the child to exit and returns its Wait error.
func (c *child) wait(t *testing.T, timeout time.Duration) error {
	t.Helper()
	select {
	case err := <-c.exited:
		return err
	case <-time.After(timeout):
		c.cmd.Process.Kill()
		t.Fatalf("hanfsd did not exit within %v", timeout)
		return nil
	}
}

// runHanfsd runs a hanfsd command and returns its combined output and exit code.
func runHanfsd(t *testing.T, bin string, args ...string) (string, int) {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	}
	t.Fatalf("hanfsd %s: %v", strings.Join(args, " "), err)
	return "", -1
}

// TestKill9 kills the mounting process with SIGKILL while files are being
// written, then checks that fsck finds the disk clean and that everything
// fsynced before the kill is there, byte for byte, after a new mount.
func TestKill9(t *testing.T) {
	requireFUSE(t)
	bin := buildHanfsd(t)
	tmp := t.TempDir()
	img, dir := filepath.Join(tmp, "disk.img"), filepath.Join(tmp, "mnt")
	os.Mkdir(dir, 0o755)
	if out, code := runHanfsd(t, bin, "format", "--disk", img, "--size", "1GiB"); code != 0 {
		t.Fatalf("format: exit %d\n%s", code, out)
	}
	logPath := filepath.Join(tmp, "hanfsd.log")
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		log.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("hanfsd log:\n%s", b)
		}
	}()
	c := startMount(t, bin, img, dir, log)

	// Durable files: written, fsynced, then their directory fsynced.
	r := mrand.New(mrand.NewPCG(1, 2))
	want := make(map[string][]byte)
	for i := range 60 {
		sub := filepath.Join(dir, fmt.Sprintf("d%d", i%6))
		os.MkdirAll(sub, 0o755)
		name := filepath.Join(sub, fmt.Sprintf("f%03d", i))
		data := make([]byte, r.IntN(2<<20)+1)
		for j := range data {
			data[j] = byte(r.Uint32())
		}
		f, err := os.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		// Several writes, some unaligned, one overwriting.
		half := len(data) / 2
		if _, err := f.Write(data[:half]); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(data[half:]); err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(data[:min(len(data), 1000)], 0); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(dir, name)
		want[rel] = data
	}
	// A rename and an unlink, made durable.
	if err := os.Rename(filepath.Join(dir, "d0", "f000"), filepath.Join(dir, "d1", "renamed")); err != nil {
		t.Fatal(err)
	}
	want["d1/renamed"] = want["d0/f000"]
	delete(want, "d0/f000")
	if err := os.Remove(filepath.Join(dir, "d2", "f002")); err != nil {
		t.Fatal(err)
	}
	delete(want, "d2/f002")
	if err := syncDir(filepath.Join(dir, "d1")); err != nil {
		t.Fatal(err)
	}

	// Writers still busy when the process dies; their files are not checked.
	stop := make(chan struct{})
	busy := make(chan struct{}, 4)
	for w := range 4 {
		go func() {
			defer func() { busy <- struct{}{} }()
			buf := make([]byte, 64<<10)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("busy-%d-%d", w, i%20)), buf, 0o644); err != nil {
					return
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	c.wait(t, 10*time.Second)
	close(stop)
	for range 4 {
		<-busy
	}

	// The dead mount answers ENOTCONN; detach it.
	if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
		t.Fatalf("umount -l of the dead mount: %v", err)
	}
	if out, code := runHanfsd(t, bin, "fsck", "--disk", img); code != 0 {
		t.Fatalf("fsck after kill -9: exit %d\n%s", code, out)
	}

	// Mount again and compare every durable file.
	fmt.Fprintf(log, "--- second mount after kill -9 ---\n")
	c = startMount(t, bin, img, dir, log)
	for rel, data := range want {
		got, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil {
			t.Errorf("after kill -9: %v", err)
			continue
		}
		if !bytes.Equal(got, data) {
			t.Errorf("after kill -9: %s: %d bytes, want %d, content differs", rel, len(got), len(data))
		}
	}
	for _, gone := range []string{"d0/f000", "d2/f002"} {
		if _, err := os.Lstat(filepath.Join(dir, gone)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("after kill -9: %s: %v, want it gone", gone, err)
		}
	}
	// A clean unmount on SIGTERM, then fsck again.
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := c.wait(t, 30*time.Second); err != nil {
		t.Errorf("hanfsd mount after SIGTERM: %v", err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil || st.Type == fuseSuperMagic {
		t.Errorf("still mounted after SIGTERM (statfs type %#x, %v)", st.Type, err)
	}
	if out, code := runHanfsd(t, bin, "fsck", "--disk", img); code != 0 {
		t.Fatalf("fsck after clean unmount: exit %d\n%s", code, out)
	}
}

func syncDir(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
