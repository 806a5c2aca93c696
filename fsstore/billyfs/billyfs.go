// Package billyfs exposes an fsstore.Store as a go-billy v5 file system
// (billy.Filesystem, billy.Change and billy.Capable).
//
// Paths are slash-separated and relative to the FS's root directory; a
// leading "/" is the same as none. ".." never leaves the root, and absolute
// symlink targets are resolved from the root, so a chrooted FS cannot reach
// anything outside its directory. Intermediate symlinks are always followed
// (at most 40 per resolution, then ELOOP); the last component is followed by
// Open, OpenFile, Stat, Chmod, Chown and Chtimes, and not by Lstat, Readlink,
// Lchown, Remove, Rename and Symlink.
//
// Every error is an *os.PathError (*os.LinkError for Rename) wrapping the
// syscall.Errno the store reported, so os.IsNotExist, errors.Is(err,
// fs.ErrExist) and errors.Is(err, syscall.ENOTEMPTY) all work.
//
// Like the NFS server it backs, the FS applies no umask unless Umask is set:
// a file created with perm 0666 gets mode 0666.
package billyfs

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-git/go-billy/v5"
	"github.com/hanfs/hanfs/fsstore"
)

// MaxSymlinks is how many symlinks one path resolution follows before it
// fails with ELOOP (Linux's MAXSYMLINKS).
const MaxSymlinks = 40

// ioChunk bounds the bytes passed to one store Read or Write call (each Write
// is one durable transaction and stages its data in one buffer).
const ioChunk = 8 << 20

// FS is a billy.Filesystem on a directory of an fsstore.Store. It is safe for
// concurrent use.
type FS struct {
	s    *fsstore.Store
	root fsstore.Ino
	cred *fsstore.Cred
	base string // what Root reports

	// Umask is cleared from the permission bits of created files and
	// directories (default 0: the mode asked for is the mode stored).
	Umask os.FileMode
}

var (
	_ billy.Filesystem = (*FS)(nil)
	_ billy.Change     = (*FS)(nil)
	_ billy.Capable    = (*FS)(nil)
	_ billy.File       = (*File)(nil)
	_ io.WriterAt      = (*File)(nil)
)

// New returns the file system rooted at directory root of s; every call runs
// as cred (nil: no permission checks).
func New(s *fsstore.Store, root fsstore.Ino, cred *fsstore.Cred) *FS {
	return &FS{s: s, root: root, cred: cred, base: "/"}
}

// Store returns the underlying store.
func (f *FS) Store() *fsstore.Store { return f.s }

// RootIno returns the inode number of the FS's root directory.
func (f *FS) RootIno() fsstore.Ino { return f.root }

func (f *FS) op() *fsstore.Op { return &fsstore.Op{Cred: f.cred} }

// Capabilities implements billy.Capable. Lock and Unlock are accepted but do
// nothing, so LockCapability is not claimed.
func (f *FS) Capabilities() billy.Capability {
	return billy.WriteCapability | billy.ReadCapability | billy.ReadAndWriteCapability |
		billy.SeekCapability | billy.TruncateCapability
}

// pathErr wraps a store error for op on name.
func pathErr(op, name string, err error) error {
	if err == nil {
		return nil
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		return err
	}
	return &os.PathError{Op: op, Path: name, Err: fsstore.ToErrno(err)}
}

// resolved is the result of a path resolution.
type resolved struct {
	// stack is the chain of directories from the FS root: its top is the
	// directory holding name, or, when name is "", the object itself.
	stack []fsstore.Ino
	name  string
	attr  fsstore.Attr
}

func (r *resolved) dir() fsstore.Ino { return r.stack[len(r.stack)-1] }

func split(p string) []string {
	var out []string
	for c := range strings.SplitSeq(p, "/") {
		if c != "" && c != "." {
			out = append(out, c)
		}
	}
	return out
}

// resolve walks name from the root. When the last component is missing it
// returns ENOENT together with a result whose stack and name say where it
// would be created (stack is nil when an earlier component is missing).
func (f *FS) resolve(name string, followLast bool) (resolved, error) {
	links := 0
	return f.walk([]fsstore.Ino{f.root}, split(name), followLast, &links)
}

func (f *FS) walk(stack []fsstore.Ino, comps []string, followLast bool, links *int) (resolved, error) {
	self := func(stack []fsstore.Ino) (resolved, error) {
		a, err := f.s.Getattr(stack[len(stack)-1])
		return resolved{stack: stack, attr: a}, err
	}
	if len(comps) == 0 {
		return self(stack)
	}
	for i, c := range comps {
		last := i == len(comps)-1
		if c == "." {
			if last {
				return self(stack)
			}
			continue
		}
		if c == ".." {
			if len(stack) > 1 {
				stack = stack[:len(stack)-1]
			}
			if last {
				return self(stack)
			}
			continue
		}
		a, err := f.s.Lookup(f.cred, stack[len(stack)-1], c)
		if err != nil {
			if last && errors.Is(err, syscall.ENOENT) {
				return resolved{stack: stack, name: c}, err
			}
			return resolved{}, err
		}
		if a.IsSymlink() && (!last || followLast) {
			if *links++; *links > MaxSymlinks {
				return resolved{}, syscall.ELOOP
			}
			target, err := f.s.Readlink(a.Ino)
			if err != nil {
				return resolved{}, err
			}
			base := stack
			if strings.HasPrefix(target, "/") {
				base = stack[:1]
			}
			r, err := f.walk(slices.Clip(base), split(target), true, links)
			if last || err != nil {
				if !last {
					r = resolved{}
				}
				return r, err
			}
			if !r.attr.IsDir() {
				return resolved{}, syscall.ENOTDIR
			}
			stack = r.stack
			if r.name != "" {
				stack = append(slices.Clip(stack), r.attr.Ino)
			}
			continue
		}
		if last {
			return resolved{stack: stack, name: c, attr: a}, nil
		}
		if !a.IsDir() {
			return resolved{}, syscall.ENOTDIR
		}
		stack = append(slices.Clip(stack), a.Ino)
	}
	panic("unreachable")
}

// parent resolves everything but the last component of name, which it
// returns; name must not resolve to the root.
func (f *FS) parent(name string) (fsstore.Ino, string, error) {
	comps := split(name)
	if len(comps) == 0 {
		return 0, "", syscall.EBUSY
	}
	base := comps[len(comps)-1]
	if base == ".." {
		return 0, "", syscall.EINVAL
	}
	links := 0
	r, err := f.walk([]fsstore.Ino{f.root}, comps[:len(comps)-1], true, &links)
	if err != nil {
		return 0, "", err
	}
	if !r.attr.IsDir() {
		return 0, "", syscall.ENOTDIR
	}
	dir := r.dir()
	if r.name != "" {
		dir = r.attr.Ino
	}
	return dir, base, nil
}

// Join joins path elements (path.Join).
func (f *FS) Join(elem ...string) string { return path.Join(elem...) }

// Root returns the path this FS was chrooted to ("/" for New's).
func (f *FS) Root() string { return f.base }

// Chroot returns an FS rooted at directory p of f.
func (f *FS) Chroot(p string) (billy.Filesystem, error) {
	r, err := f.resolve(p, true)
	if err != nil {
		return nil, pathErr("chroot", p, err)
	}
	if !r.attr.IsDir() {
		return nil, pathErr("chroot", p, syscall.ENOTDIR)
	}
	return &FS{s: f.s, root: r.attr.Ino, cred: f.cred, base: path.Join(f.base, p), Umask: f.Umask}, nil
}

// Create creates or truncates name with mode 0666 for reading and writing.
func (f *FS) Create(name string) (billy.File, error) {
	return f.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o666)
}

// Open opens name for reading.
func (f *FS) Open(name string) (billy.File, error) {
	return f.OpenFile(name, os.O_RDONLY, 0)
}

func storeMode(m os.FileMode) uint32 {
	v := uint32(m.Perm())
	if m&os.ModeSetuid != 0 {
		v |= syscall.S_ISUID
	}
	if m&os.ModeSetgid != 0 {
		v |= syscall.S_ISGID
	}
	if m&os.ModeSticky != 0 {
		v |= syscall.S_ISVTX
	}
	return v
}

// OpenFile opens name with flag (os.O_*) and, when it creates the file, perm.
// Missing parent directories are created with O_CREATE, as billy's osfs does.
func (f *FS) OpenFile(name string, flag int, perm os.FileMode) (billy.File, error) {
	if flag&os.O_CREATE != 0 {
		if err := f.createParent(name); err != nil {
			return nil, err
		}
	}
	for attempt := 0; ; attempt++ {
		fl, err := f.open(name, flag, perm)
		if errors.Is(err, errRace) && attempt < 10 {
			continue
		}
		return fl, err
	}
}

var errRace = errors.New("raced with a concurrent change")

func (f *FS) open(name string, flag int, perm os.FileMode) (*File, error) {
	create, excl := flag&os.O_CREATE != 0, flag&os.O_EXCL != 0
	r, err := f.resolve(name, !(create && excl))
	created := false
	switch {
	case err == nil:
		if create && excl {
			return nil, pathErr("open", name, syscall.EEXIST)
		}
	case create && r.stack != nil && errors.Is(err, syscall.ENOENT):
		a, cerr := f.s.Create(f.op(), r.dir(), r.name, storeMode(perm&^f.Umask), fsstore.CreateGuarded, 0)
		if errors.Is(cerr, syscall.EEXIST) && !excl {
			return nil, errRace // created meanwhile: open it
		}
		if cerr != nil {
			return nil, pathErr("open", name, cerr)
		}
		r.attr, created = a, true
	default:
		return nil, pathErr("open", name, err)
	}
	a := r.attr
	acc := flag & (os.O_RDONLY | os.O_WRONLY | os.O_RDWR)
	write := acc == os.O_WRONLY || acc == os.O_RDWR
	if a.IsDir() && (write || flag&os.O_TRUNC != 0) {
		return nil, pathErr("open", name, syscall.EISDIR)
	}
	if !created && f.cred != nil {
		var mask uint32
		if acc != os.O_WRONLY {
			mask |= fsstore.AccessRead
		}
		if write || flag&os.O_TRUNC != 0 {
			mask |= fsstore.AccessWrite
		}
		if err := f.s.Access(f.cred, a.Ino, mask); err != nil {
			return nil, pathErr("open", name, err)
		}
	}
	f.s.Pin(a.Ino)
	if _, err := f.s.Check(a.Ino, a.Gen); err != nil { // removed before the pin
		f.s.Unpin(a.Ino)
		if created {
			return nil, pathErr("open", name, err)
		}
		return nil, errRace
	}
	fl := &File{fs: f, name: name, ino: a.Ino, flag: flag, read: acc != os.O_WRONLY, write: write}
	if flag&os.O_TRUNC != 0 && !created && a.IsRegular() && a.Size != 0 {
		zero := uint64(0)
		if _, err := f.s.Setattr(f.op(), a.Ino, fsstore.SetAttr{Size: &zero}); err != nil {
			f.s.Unpin(a.Ino)
			return nil, pathErr("open", name, err)
		}
	}
	return fl, nil
}

// createParent makes the directories leading to name.
func (f *FS) createParent(name string) error {
	dir := path.Dir(path.Clean("/" + name))
	if dir == "/" {
		return nil
	}
	return f.MkdirAll(dir, 0o777)
}

// Stat describes name, following a final symlink.
func (f *FS) Stat(name string) (os.FileInfo, error) {
	r, err := f.resolve(name, true)
	if err != nil {
		return nil, pathErr("stat", name, err)
	}
	return newInfo(r.name, name, r.attr), nil
}

// Lstat describes name without following a final symlink.
func (f *FS) Lstat(name string) (os.FileInfo, error) {
	r, err := f.resolve(name, false)
	if err != nil {
		return nil, pathErr("lstat", name, err)
	}
	return newInfo(r.name, name, r.attr), nil
}

// Rename moves oldpath to newpath, replacing a file or empty directory there.
// Missing parent directories of newpath are created, as billy's osfs does.
func (f *FS) Rename(oldpath, newpath string) error {
	lerr := func(err error) error {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: fsstore.ToErrno(err)}
	}
	if err := f.createParent(newpath); err != nil {
		return err
	}
	odir, oname, err := f.parent(oldpath)
	if err != nil {
		return lerr(err)
	}
	ndir, nname, err := f.parent(newpath)
	if err != nil {
		return lerr(err)
	}
	return lerr2(lerr, f.s.Rename(f.op(), odir, oname, ndir, nname))
}

func lerr2(wrap func(error) error, err error) error {
	if err == nil {
		return nil
	}
	return wrap(err)
}

// Remove removes the file or empty directory name.
func (f *FS) Remove(name string) error {
	r, err := f.resolve(name, false)
	if err != nil {
		return pathErr("remove", name, err)
	}
	if r.name == "" {
		return pathErr("remove", name, syscall.EBUSY)
	}
	if r.attr.IsDir() {
		err = f.s.Rmdir(f.op(), r.dir(), r.name)
	} else {
		err = f.s.Unlink(f.op(), r.dir(), r.name)
	}
	return pathErr("remove", name, err)
}

// TempFile creates a new file in dir ("" is the FS root) whose name starts
// with prefix, open for reading and writing with mode 0600.
func (f *FS) TempFile(dir, prefix string) (billy.File, error) {
	var b [6]byte
	for i := 0; i < 100; i++ {
		_, _ = rand.Read(b[:])
		name := path.Join(dir, prefix+hex.EncodeToString(b[:]))
		fl, err := f.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return fl, err
	}
	return nil, pathErr("createtemp", path.Join(dir, prefix+"*"), syscall.EEXIST)
}

// ReadDir lists directory name sorted by name; entries describe themselves
// (symlinks are not followed).
func (f *FS) ReadDir(name string) ([]os.FileInfo, error) {
	r, err := f.resolve(name, true)
	if err != nil {
		return nil, pathErr("readdir", name, err)
	}
	if !r.attr.IsDir() {
		return nil, pathErr("readdir", name, syscall.ENOTDIR)
	}
	var ents []fsstore.DirEntry
	if err := f.s.ReadDir(f.cred, r.attr.Ino, 0, func(e fsstore.DirEntry) bool {
		ents = append(ents, e)
		return true
	}); err != nil {
		return nil, pathErr("readdir", name, err)
	}
	out := make([]os.FileInfo, 0, len(ents))
	for _, e := range ents {
		a, err := f.s.Getattr(e.Ino)
		if errors.Is(err, syscall.ESTALE) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, pathErr("readdir", name, err)
		}
		out = append(out, newInfo(e.Name, path.Join(name, e.Name), a))
	}
	slices.SortFunc(out, func(a, b os.FileInfo) int { return strings.Compare(a.Name(), b.Name()) })
	return out, nil
}

// MkdirAll creates directory name and any missing parents with perm.
func (f *FS) MkdirAll(name string, perm os.FileMode) error {
	r, err := f.resolve(name, true)
	if err == nil {
		if r.attr.IsDir() {
			return nil
		}
		return pathErr("mkdir", name, syscall.ENOTDIR)
	}
	if !errors.Is(err, syscall.ENOENT) {
		return pathErr("mkdir", name, err)
	}
	if r.stack == nil { // a parent is missing
		clean := path.Clean("/" + name)
		if err := f.MkdirAll(path.Dir(clean), perm); err != nil {
			return err
		}
		if r, err = f.resolve(name, true); err == nil {
			if r.attr.IsDir() {
				return nil
			}
			return pathErr("mkdir", name, syscall.ENOTDIR)
		}
		if r.stack == nil || !errors.Is(err, syscall.ENOENT) {
			return pathErr("mkdir", name, err)
		}
	}
	_, err = f.s.Mkdir(f.op(), r.dir(), r.name, storeMode(perm&^f.Umask))
	if errors.Is(err, syscall.EEXIST) { // made meanwhile, or a dangling symlink
		if st, serr := f.Stat(name); serr == nil && st.IsDir() {
			return nil
		}
	}
	return pathErr("mkdir", name, err)
}

// Symlink creates link pointing at target, creating link's missing parents.
func (f *FS) Symlink(target, link string) error {
	if err := f.createParent(link); err != nil {
		return err
	}
	dir, name, err := f.parent(link)
	if err == nil {
		_, err = f.s.Symlink(f.op(), dir, name, target)
	}
	return pathErr("symlink", link, err)
}

// Readlink returns the target of symlink link.
func (f *FS) Readlink(link string) (string, error) {
	r, err := f.resolve(link, false)
	if err != nil {
		return "", pathErr("readlink", link, err)
	}
	if !r.attr.IsSymlink() {
		return "", pathErr("readlink", link, syscall.EINVAL)
	}
	t, err := f.s.Readlink(r.attr.Ino)
	return t, pathErr("readlink", link, err)
}

func (f *FS) setattr(op, name string, follow bool, sa fsstore.SetAttr) error {
	r, err := f.resolve(name, follow)
	if err == nil {
		_, err = f.s.Setattr(f.op(), r.attr.Ino, sa)
	}
	return pathErr(op, name, err)
}

// Chmod sets the permission bits (and setuid, setgid, sticky) of name,
// following a final symlink.
func (f *FS) Chmod(name string, mode os.FileMode) error {
	m := storeMode(mode)
	return f.setattr("chmod", name, true, fsstore.SetAttr{Mode: &m})
}

func owner(uid, gid int) fsstore.SetAttr {
	var sa fsstore.SetAttr
	if uid >= 0 {
		u := uint32(uid)
		sa.UID = &u
	}
	if gid >= 0 {
		g := uint32(gid)
		sa.GID = &g
	}
	return sa
}

// Chown sets the owner of name (-1 leaves one unchanged), following a final
// symlink.
func (f *FS) Chown(name string, uid, gid int) error {
	return f.setattr("chown", name, true, owner(uid, gid))
}

// Lchown sets the owner of name itself.
func (f *FS) Lchown(name string, uid, gid int) error {
	return f.setattr("lchown", name, false, owner(uid, gid))
}

// Chtimes sets the access and modification times of name (a zero time leaves
// that time unchanged, as os.Chtimes does).
func (f *FS) Chtimes(name string, atime, mtime time.Time) error {
	var sa fsstore.SetAttr
	if !atime.IsZero() {
		sa.Atime = &atime
	}
	if !mtime.IsZero() {
		sa.Mtime = &mtime
	}
	return f.setattr("chtimes", name, true, sa)
}

// fileInfo is an os.FileInfo for an inode; Sys returns its fsstore.Attr.
type fileInfo struct {
	name string
	attr fsstore.Attr
}

func newInfo(base, full string, a fsstore.Attr) *fileInfo {
	if base == "" {
		base = path.Base(path.Clean("/" + full))
	}
	return &fileInfo{name: base, attr: a}
}

func (i *fileInfo) Name() string       { return i.name }
func (i *fileInfo) Size() int64        { return int64(i.attr.Size) }
func (i *fileInfo) Mode() os.FileMode  { return FileMode(i.attr.Mode) }
func (i *fileInfo) ModTime() time.Time { return i.attr.Mtime }
func (i *fileInfo) IsDir() bool        { return i.attr.IsDir() }

// Sys returns the inode's fsstore.Attr (a value, not a pointer).
func (i *fileInfo) Sys() any { return i.attr }

// FileMode converts a store mode (S_IF* type and permission bits) to an
// os.FileMode.
func FileMode(m uint32) os.FileMode {
	fm := os.FileMode(m & 0o777)
	if m&syscall.S_ISUID != 0 {
		fm |= os.ModeSetuid
	}
	if m&syscall.S_ISGID != 0 {
		fm |= os.ModeSetgid
	}
	if m&syscall.S_ISVTX != 0 {
		fm |= os.ModeSticky
	}
	switch m & fsstore.ModeType {
	case fsstore.ModeDir:
		fm |= os.ModeDir
	case fsstore.ModeSymlink:
		fm |= os.ModeSymlink
	case fsstore.ModeFIFO:
		fm |= os.ModeNamedPipe
	case fsstore.ModeSocket:
		fm |= os.ModeSocket
	case fsstore.ModeChar:
		fm |= os.ModeDevice | os.ModeCharDevice
	case fsstore.ModeBlock:
		fm |= os.ModeDevice
	}
	return fm
}

// File is an open file of an FS. It pins its inode, so the data stays
// readable after its last name is removed, until Close.
type File struct {
	fs          *FS
	name        string
	ino         fsstore.Ino
	flag        int
	read, write bool

	mu     sync.Mutex
	pos    int64
	closed bool
}

// Name returns the name the file was opened with.
func (fl *File) Name() string { return fl.name }

// Ino returns the file's inode number.
func (fl *File) Ino() fsstore.Ino { return fl.ino }

func (fl *File) err(op string, err error) error { return pathErr(op, fl.name, err) }

func (fl *File) check(op string, write bool) error {
	if fl.closed {
		return &os.PathError{Op: op, Path: fl.name, Err: os.ErrClosed}
	}
	if write && !fl.write || !write && !fl.read {
		return fl.err(op, syscall.EBADF)
	}
	return nil
}

// Stat describes the open file.
func (fl *File) Stat() (os.FileInfo, error) {
	fl.mu.Lock()
	closed := fl.closed
	fl.mu.Unlock()
	if closed {
		return nil, &os.PathError{Op: "stat", Path: fl.name, Err: os.ErrClosed}
	}
	a, err := fl.fs.s.Getattr(fl.ino)
	if err != nil {
		return nil, fl.err("stat", err)
	}
	return newInfo("", fl.name, a), nil
}

func (fl *File) readAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		m, eof, err := fl.fs.s.Read(fl.fs.cred, fl.ino, p[n:min(len(p), n+ioChunk)], off+int64(n))
		n += m
		if err != nil {
			return n, fl.err("read", err)
		}
		if eof || m == 0 {
			return n, io.EOF
		}
	}
	return n, nil
}

// Read reads from the current offset.
func (fl *File) Read(p []byte) (int, error) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if err := fl.check("read", false); err != nil {
		return 0, err
	}
	if len(p) == 0 {
		return 0, nil
	}
	n, err := fl.readAt(p, fl.pos)
	fl.pos += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// ReadAt reads len(p) bytes at off; fewer bytes come with io.EOF.
func (fl *File) ReadAt(p []byte, off int64) (int, error) {
	fl.mu.Lock()
	err := fl.check("read", false)
	fl.mu.Unlock()
	if err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, fl.err("readat", syscall.EINVAL)
	}
	if len(p) == 0 {
		return 0, nil
	}
	return fl.readAt(p, off)
}

func (fl *File) writeAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		m := min(len(p)-n, ioChunk)
		if _, err := fl.fs.s.Write(fl.fs.op(), fl.ino, p[n:n+m], off+int64(n)); err != nil {
			return n, fl.err("write", err)
		}
		n += m
	}
	return n, nil
}

// Write writes at the current offset (at the end of the file with O_APPEND).
func (fl *File) Write(p []byte) (int, error) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if err := fl.check("write", true); err != nil {
		return 0, err
	}
	if fl.flag&os.O_APPEND != 0 {
		a, err := fl.fs.s.Getattr(fl.ino)
		if err != nil {
			return 0, fl.err("write", err)
		}
		fl.pos = int64(a.Size)
	}
	n, err := fl.writeAt(p, fl.pos)
	fl.pos += int64(n)
	return n, err
}

// WriteAt writes p at off; like os.File, it refuses a file opened O_APPEND.
func (fl *File) WriteAt(p []byte, off int64) (int, error) {
	fl.mu.Lock()
	err := fl.check("write", true)
	fl.mu.Unlock()
	if err != nil {
		return 0, err
	}
	if fl.flag&os.O_APPEND != 0 {
		return 0, errors.New("billyfs: invalid use of WriteAt on file opened with O_APPEND")
	}
	if off < 0 {
		return 0, fl.err("writeat", syscall.EINVAL)
	}
	return fl.writeAt(p, off)
}

// Seek sets the offset for the next Read or Write.
func (fl *File) Seek(offset int64, whence int) (int64, error) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if fl.closed {
		return 0, &os.PathError{Op: "seek", Path: fl.name, Err: os.ErrClosed}
	}
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += fl.pos
	case io.SeekEnd:
		a, err := fl.fs.s.Getattr(fl.ino)
		if err != nil {
			return 0, fl.err("seek", err)
		}
		offset += int64(a.Size)
	default:
		return 0, fl.err("seek", syscall.EINVAL)
	}
	if offset < 0 {
		return 0, fl.err("seek", syscall.EINVAL)
	}
	fl.pos = offset
	return offset, nil
}

// Truncate sets the file's size.
func (fl *File) Truncate(size int64) error {
	fl.mu.Lock()
	err := fl.check("truncate", true)
	fl.mu.Unlock()
	if err != nil {
		return err
	}
	if size < 0 {
		return fl.err("truncate", syscall.EINVAL)
	}
	sz := uint64(size)
	_, err = fl.fs.s.Setattr(fl.fs.op(), fl.ino, fsstore.SetAttr{Size: &sz})
	return fl.err("truncate", err)
}

// Lock does nothing: the FS does not claim billy.LockCapability.
func (fl *File) Lock() error { return nil }

// Unlock does nothing.
func (fl *File) Unlock() error { return nil }

// Close unpins the inode (freeing it if its last name was removed).
func (fl *File) Close() error {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if fl.closed {
		return &os.PathError{Op: "close", Path: fl.name, Err: os.ErrClosed}
	}
	fl.closed = true
	fl.fs.s.Unpin(fl.ino)
	return nil
}
