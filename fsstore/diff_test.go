package fsstore_test

// Differential test: a seeded random sequence of operations is applied to the
// store (through the inode-level API, nil Cred) and to a directory on tmpfs
// (/dev/shm, through syscalls). Every operation must succeed in both or fail
// in both with the same errno, and at checkpoints the two trees must be
// identical: names, types, contents, permission bits, sizes, link counts,
// owners, symlink targets and which names are hard links of one inode. Each
// write and truncate is checked at once around the bytes it changed. Midway
// the store is closed and reopened, at 3/4 killed (a crash) and reopened, and
// at random points either, so replay and checkpointed state are covered too.
// The store walk also checks the store's own invariants: directory size ==
// entries, parent pointers, Path() names the inode, ReadDir resumes from every
// cookie, Lookup agrees with ReadDir, blocks <= ceil(size/4096), StatFS inode
// count == reachable inodes, and at the end, after removing everything, one
// inode and as many free blocks as the freshly formatted store.
//
// Rerun one seed:  HANFS_DIFF_SEED=<seed> go test ./fsstore -run TestDiff -v
// More operations: HANFS_DIFF_OPS=<n> (default 2000 per seed); more seeds:
// HANFS_DIFF_SEEDS=<n> (default 5); compare whole trees every n operations
// instead of 250: HANFS_DIFF_CHECK_EVERY=<n>.
//
// Where Linux and the store legitimately differ, the test normalises:
//   - directory sizes: tmpfs reports 20 bytes per entry plus 40, the store
//     the number of entries; directory sizes are not compared (the store's
//     own invariant size == entries is checked instead);
//   - I/O on a fifo: Linux open(O_WRONLY|O_NONBLOCK) without a reader fails
//     with ENXIO and a read returns EOF, while the store (which has no pipe
//     semantics; the NFS client implements fifos) refuses Read and Write on a
//     non-regular inode with EINVAL: a write is accepted as ENXIO vs EINVAL,
//     a read is not compared beyond the store's EINVAL;
//   - rename onto an ancestor of the source: Linux reports ENOTEMPTY before
//     it compares the types, the store reports EISDIR when the source is not
//     a directory (a directory source gets ENOTEMPTY in both);
//   - link(dir, existing-name): Linux finds the existing name (EEXIST) before
//     it refuses the directory (EPERM); the store checks the type first;
//   - chown(-1, -1) of a regular file: Linux clears setuid (and setgid when
//     group exec is set); the store sees no attribute to set. The OS side
//     restores the mode after such a chown. (Any other chown clears the bits
//     in both, even by root.)
// Symlink targets are relative and never contain "..", so no path ever
// leaves the test directory on the Linux side (the store cannot follow one
// out of its root). The OS side undoes the process umask with chmod after
// each creation, because the store applies none.

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hanfs/hanfs/fsstore"
	"github.com/hanfs/hanfs/shareddisk"
)

const (
	diffMaxSymlinks = 40
	diffCheckEvery  = 250
)

var diffNames = []string{"a", "b", "c", "d", "e", "f", "g"}

type differ struct {
	t                 *testing.T
	seed              uint64
	rng               *rand.Rand
	disk              *shareddisk.Mem
	s                 *fsstore.Store
	osRoot            string
	root              bool // running as root: modes without owner access are fine
	opIdx             int
	stats             map[string]int // outcomes ("rename:ENOTEMPTY~EISDIR": normalised)
	maxNames, maxSize int64
	freeAtStart       uint64
	checkEvery        int
	cache             int // Options.CacheBlocks (0: the default)
	recent            []string

	stale                   bool
	known, dirs, links, fls []string // paths on the OS side (refreshed lazily)
}

func TestDiffRandomOps(t *testing.T) {
	nops := envInt(t, "HANFS_DIFF_OPS", 2000)
	seeds := []uint64{}
	if v := os.Getenv("HANFS_DIFF_SEED"); v != "" {
		sd, err := strconv.ParseUint(v, 0, 64)
		if err != nil {
			t.Fatalf("HANFS_DIFF_SEED=%q: %v", v, err)
		}
		seeds = append(seeds, sd)
	} else {
		for i := range envInt(t, "HANFS_DIFF_SEEDS", 5) {
			seeds = append(seeds, uint64(i+1))
		}
	}
	if testing.Short() {
		nops /= 4
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			d := newDiffer(t, seed)
			start := time.Now()
			d.run(nops)
			t.Logf("seed %d: %d ops in %v; up to %d names, largest file %d bytes; outcomes: %v",
				seed, nops, time.Since(start).Round(time.Millisecond), d.maxNames, d.maxSize, d.stats)
		})
	}
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

func newDiffer(t *testing.T, seed uint64) *differ {
	base := "/dev/shm"
	if st, err := os.Stat(base); err != nil || !st.IsDir() {
		base = ""
	}
	var tmp string
	if base == "" {
		tmp = t.TempDir()
	} else {
		var err error
		if tmp, err = os.MkdirTemp(base, "hanfs-diff-"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(tmp) })
	}
	// The tree lives in tmp/w/root; "w" and "root" are not in diffNames.
	osRoot := filepath.Join(tmp, "w", "root")
	if err := os.MkdirAll(osRoot, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(osRoot, 0o755); err != nil {
		t.Fatal(err)
	}
	disk := shareddisk.NewMem(64 << 20)
	if _, err := fsstore.Format(disk, fsstore.FormatOptions{}); err != nil {
		t.Fatal(err)
	}
	d := &differ{t: t, seed: seed, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		disk: disk, osRoot: osRoot, root: os.Geteuid() == 0, stale: true, stats: map[string]int{},
		// A small metadata cache (HANFS_DIFF_CACHE blocks) makes most calls
		// miss and run again.
		cache: envInt(t, "HANFS_DIFF_CACHE", 0)}
	d.open()
	d.freeAtStart = d.s.StatFS().FreeBlocks
	d.checkEvery = envInt(t, "HANFS_DIFF_CHECK_EVERY", diffCheckEvery)
	t.Cleanup(func() {
		if d.s != nil {
			d.s.Close()
		}
	})
	return d
}

func (d *differ) open() {
	s, err := fsstore.Open(d.disk, fsstore.Options{Logger: slog.New(slog.DiscardHandler), CacheBlocks: d.cache})
	if err != nil {
		d.fail("open store: %v", err)
	}
	d.s = s
}

func (d *differ) fail(format string, args ...any) {
	d.t.Helper()
	msg := fmt.Sprintf(format, args...)
	d.t.Fatalf("seed %d, op %d: %s\nrecent operations (oldest first):\n  %s\nrerun: HANFS_DIFF_SEED=%d go test ./fsstore -run 'TestDiffRandomOps' -v",
		d.seed, d.opIdx, msg, strings.Join(d.recent, "\n  "), d.seed)
}

func (d *differ) note(desc string) {
	d.recent = append(d.recent, fmt.Sprintf("#%d %s", d.opIdx, desc))
	if len(d.recent) > 25 {
		d.recent = d.recent[1:]
	}
}

func (d *differ) run(nops int) {
	d.compareTrees()
	ops := []struct {
		w  int
		fn func()
	}{
		{12, d.opCreate}, {7, d.opMkdir}, {16, d.opWrite}, {6, d.opTruncate},
		{12, d.opRename}, {7, d.opUnlink}, {5, d.opRmdir}, {5, d.opLink},
		{5, d.opSymlink}, {4, d.opChmod}, {2, d.opMknod}, {5, d.opRead}, {3, d.opStat},
		{1, d.opReopen}, {3, d.opChown},
	}
	total := 0
	for _, o := range ops {
		total += o.w
	}
	for d.opIdx = 1; d.opIdx <= nops; d.opIdx++ {
		switch d.opIdx {
		case nops / 2:
			d.note("store Close + Open")
			if err := d.s.Close(); err != nil {
				d.fail("close: %v", err)
			}
			d.open()
			d.compareTrees()
		case 3 * nops / 4:
			d.note("store Kill (crash) + Open")
			d.s.Kill(errors.New("differential test crash"))
			d.open()
			d.compareTrees()
		}
		r := d.rng.IntN(total)
		for _, o := range ops {
			if r < o.w {
				o.fn()
				break
			}
			r -= o.w
		}
		if d.opIdx%d.checkEvery == 0 {
			d.compareTrees()
		}
	}
	d.compareTrees()
	d.removeAll()
}

// ---- path picking (from the OS tree, so the sequence is deterministic) ----

func (d *differ) refresh() {
	if !d.stale {
		return
	}
	d.known, d.dirs, d.links, d.fls = d.known[:0], d.dirs[:0], d.links[:0], d.fls[:0]
	d.dirs = append(d.dirs, "")
	var walk func(rel string)
	walk = func(rel string) {
		ents, err := os.ReadDir(filepath.Join(d.osRoot, rel))
		if err != nil {
			d.fail("walk %q: %v", rel, err)
		}
		for _, e := range ents {
			p := path.Join(rel, e.Name())
			d.known = append(d.known, p)
			switch {
			case e.IsDir():
				d.dirs = append(d.dirs, p)
				walk(p)
			case e.Type()&fs.ModeSymlink != 0:
				d.links = append(d.links, p)
			case e.Type().IsRegular():
				d.fls = append(d.fls, p)
			}
		}
	}
	walk("")
	d.stale = false
}

func (d *differ) pickFrom(l []string) string {
	if len(l) == 0 {
		return d.randName()
	}
	return l[d.rng.IntN(len(l))]
}

// randName returns one of a few short names (so operations collide) or,
// now and then, one of many longer ones (so directories grow wide).
func (d *differ) randName() string {
	if d.rng.IntN(8) == 0 {
		return fmt.Sprintf("wide-name-%03d", d.rng.IntN(400))
	}
	return diffNames[d.rng.IntN(len(diffNames))]
}

// pickNew returns a name in an existing directory (usually free).
func (d *differ) pickNew() string {
	d.refresh()
	return path.Join(d.pickFrom(d.dirs), d.randName())
}

// pickAny returns a path that usually exists, sometimes one that does not,
// sometimes one through a symlink.
func (d *differ) pickAny() string {
	d.refresh()
	switch r := d.rng.IntN(100); {
	case r < 55 && len(d.known) > 0:
		return d.pickFrom(d.known)
	case r < 80:
		return d.pickNew()
	case r < 90 && len(d.links) > 0:
		return path.Join(d.pickFrom(d.links), d.randName())
	default:
		p := d.randName()
		for d.rng.IntN(2) == 0 {
			p = path.Join(p, d.randName())
		}
		return p
	}
}

func (d *differ) pickFile() string {
	d.refresh()
	if len(d.fls) > 0 && d.rng.IntN(100) < 80 {
		return d.pickFrom(d.fls)
	}
	return d.pickAny()
}

func (d *differ) pickDir() string {
	d.refresh()
	if len(d.dirs) > 1 && d.rng.IntN(100) < 70 {
		return d.pickFrom(d.dirs[1:])
	}
	return d.pickAny()
}

func (d *differ) perm(extra bool) uint32 {
	m := uint32(d.rng.IntN(0o1000))
	if extra && d.rng.IntN(4) == 0 {
		m |= uint32(d.rng.IntN(8)) << 9 // setuid, setgid, sticky
	}
	if !d.root {
		m |= 0o700
	}
	return m
}

func (d *differ) abs(p string) string { return filepath.Join(d.osRoot, p) }

// ---- store-side path resolution (Linux semantics) ----

type sres struct {
	dir  fsstore.Ino // the directory holding name
	name string      // "" when the path names the root (or ends in "..")
	attr fsstore.Attr
}

func splitPath(p string) []string {
	var out []string
	for c := range strings.SplitSeq(p, "/") {
		if c != "" && c != "." {
			out = append(out, c)
		}
	}
	return out
}

// resolve walks p from the root following intermediate symlinks (and the last
// one if follow). A missing last component gives ENOENT with dir and name set.
func (d *differ) resolve(p string, follow bool) (sres, error) {
	links := 0
	return d.walk([]fsstore.Ino{fsstore.RootIno}, splitPath(p), follow, &links)
}

func (d *differ) walk(stack []fsstore.Ino, comps []string, follow bool, links *int) (sres, error) {
	self := func() (sres, error) {
		a, err := d.s.Getattr(stack[len(stack)-1])
		return sres{attr: a}, err
	}
	if len(comps) == 0 {
		return self()
	}
	for i, c := range comps {
		last := i == len(comps)-1
		if c == ".." {
			if len(stack) > 1 {
				stack = stack[:len(stack)-1]
			}
			if last {
				return self()
			}
			continue
		}
		dir := stack[len(stack)-1]
		a, err := d.s.Lookup(nil, dir, c)
		if err != nil {
			if last && errors.Is(err, syscall.ENOENT) {
				return sres{dir: dir, name: c}, err
			}
			return sres{}, err
		}
		if a.IsSymlink() && (!last || follow) {
			if *links++; *links > diffMaxSymlinks {
				return sres{}, syscall.ELOOP
			}
			target, err := d.s.Readlink(a.Ino)
			if err != nil {
				return sres{}, err
			}
			r, err := d.walk(slices.Clone(stack), splitPath(target), true, links)
			if last {
				return r, err
			}
			if err != nil {
				return sres{}, err
			}
			if !r.attr.IsDir() {
				return sres{}, syscall.ENOTDIR
			}
			// r.attr is a directory reached from stack by going down only
			// (targets have no ".."): rebuild the stack by its path.
			stack = d.stackOf(r.attr.Ino)
			continue
		}
		if last {
			return sres{dir: dir, name: c, attr: a}, nil
		}
		if !a.IsDir() {
			return sres{}, syscall.ENOTDIR
		}
		stack = append(slices.Clip(stack), a.Ino)
	}
	panic("unreachable")
}

// stackOf returns the directories from the root to dir, by parent pointers.
func (d *differ) stackOf(dir fsstore.Ino) []fsstore.Ino {
	st := []fsstore.Ino{dir}
	for dir != fsstore.RootIno {
		a, err := d.s.Getattr(dir)
		if err != nil {
			d.fail("getattr %d: %v", dir, err)
		}
		dir = a.Parent
		st = append(st, dir)
		if len(st) > 4096 {
			d.fail("parent chain of %d does not reach the root", st[0])
		}
	}
	slices.Reverse(st)
	return st
}

// parentOf resolves all but the last component of p (which it returns).
func (d *differ) parentOf(p string) (fsstore.Ino, string, error) {
	comps := splitPath(p)
	links := 0
	r, err := d.walk([]fsstore.Ino{fsstore.RootIno}, comps[:len(comps)-1], true, &links)
	if err != nil {
		return 0, "", err
	}
	if !r.attr.IsDir() {
		return 0, "", syscall.ENOTDIR
	}
	return r.attr.Ino, comps[len(comps)-1], nil
}

// ---- comparison of outcomes ----

func errnoOf(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return fsstore.ToErrno(err)
}

type errPair struct{ os, st syscall.Errno }

// check compares the two outcomes of desc; allowed lists (Linux, store)
// errno pairs that count as the same outcome. It reports whether the
// operation succeeded.
func (d *differ) check(desc string, osErr, stErr error, allowed ...errPair) bool {
	d.t.Helper()
	oe, se := errnoOf(osErr), errnoOf(stErr)
	d.note(fmt.Sprintf("%s -> linux %v, store %v", desc, errName(oe), errName(se)))
	kind, _, _ := strings.Cut(desc, " ")
	d.stats[kind+":"+errShort(oe)]++
	if oe == se {
		return oe == 0
	}
	if slices.Contains(allowed, errPair{oe, se}) {
		d.stats[kind+":"+errShort(oe)+"~"+errShort(se)]++
		return false
	}
	d.fail("%s: linux %v (%v), store %v (%v)", desc, errName(oe), osErr, errName(se), stErr)
	return false
}

func errShort(e syscall.Errno) string {
	switch e {
	case 0:
		return "ok"
	case syscall.ENOENT:
		return "ENOENT"
	case syscall.EEXIST:
		return "EEXIST"
	case syscall.ENOTDIR:
		return "ENOTDIR"
	case syscall.EISDIR:
		return "EISDIR"
	case syscall.ENOTEMPTY:
		return "ENOTEMPTY"
	case syscall.EINVAL:
		return "EINVAL"
	case syscall.EPERM:
		return "EPERM"
	case syscall.ELOOP:
		return "ELOOP"
	case syscall.ENXIO:
		return "ENXIO"
	}
	return strconv.Itoa(int(e))
}

func errName(e syscall.Errno) string {
	if e == 0 {
		return "ok"
	}
	return fmt.Sprintf("%d:%v", int(e), e)
}

// fixMode undoes the umask on a node just created on the OS side.
func (d *differ) fixMode(p string, perm uint32) {
	var st syscall.Stat_t
	if err := syscall.Lstat(d.abs(p), &st); err != nil {
		d.fail("lstat after create %q: %v", p, err)
	}
	if err := syscall.Chmod(d.abs(p), st.Mode&0o2000|perm); err != nil {
		d.fail("chmod after create %q: %v", p, err)
	}
}

// ---- operations ----

func (d *differ) opCreate() {
	p, perm := d.pickNew(), d.perm(false)
	if d.rng.IntN(5) == 0 {
		p = d.pickAny()
	}
	fd, oerr := syscall.Open(d.abs(p), syscall.O_CREAT|syscall.O_EXCL|syscall.O_WRONLY|syscall.O_CLOEXEC, perm)
	if oerr == nil {
		syscall.Close(fd)
		d.fixMode(p, perm)
		d.stale = true
	}
	dir, name, serr := d.parentOf(p)
	if serr == nil {
		_, serr = d.s.Create(nil, dir, name, perm, fsstore.CreateGuarded, 0)
	}
	d.check(fmt.Sprintf("create %q %#o", p, perm), oerr, serr)
}

func (d *differ) opMkdir() {
	p, perm := d.pickNew(), d.perm(false)|uint32(d.rng.IntN(2))<<9 // maybe sticky
	if d.rng.IntN(5) == 0 {
		p = d.pickAny()
	}
	oerr := syscall.Mkdir(d.abs(p), perm)
	if oerr == nil {
		d.fixMode(p, perm)
		d.stale = true
	}
	dir, name, serr := d.parentOf(p)
	if serr == nil {
		_, serr = d.s.Mkdir(nil, dir, name, perm)
	}
	d.check(fmt.Sprintf("mkdir %q %#o", p, perm), oerr, serr)
}

func (d *differ) opMknod() {
	p, perm := d.pickNew(), d.perm(false)
	oerr := syscall.Mknod(d.abs(p), syscall.S_IFIFO|perm, 0)
	if oerr == nil {
		d.fixMode(p, perm)
		d.stale = true
	}
	dir, name, serr := d.parentOf(p)
	if serr == nil {
		_, serr = d.s.Mknod(nil, dir, name, fsstore.ModeFIFO|perm, 0)
	}
	d.check(fmt.Sprintf("mkfifo %q %#o", p, perm), oerr, serr)
}

// fileSize returns the current size of p on the OS side (0 if unknown).
func (d *differ) fileSize(p string) int64 {
	var st syscall.Stat_t
	if syscall.Stat(d.abs(p), &st) != nil {
		return 0
	}
	return st.Size
}

func (d *differ) randOffset(size int64) int64 {
	switch r := d.rng.IntN(100); {
	case r < 35:
		return d.rng.Int64N(size + 1)
	case r < 50:
		return size // append
	case r < 65:
		return size + d.rng.Int64N(20000) // a hole before the data
	case r < 85:
		return max(0, int64(d.rng.IntN(64))*4096+int64(d.rng.IntN(3))-1) // block edges
	case r < 95:
		return d.rng.Int64N(256 << 10)
	default:
		return 300<<10 + d.rng.Int64N(700<<10) // far: a large hole
	}
}

func (d *differ) randLen() int {
	switch r := d.rng.IntN(100); {
	case r < 3:
		return 0
	case r < 60:
		return 1 + d.rng.IntN(600)
	case r < 90:
		return 1 + d.rng.IntN(9000)
	default:
		return 4096*(1+d.rng.IntN(16)) + d.rng.IntN(2)
	}
}

func (d *differ) opWrite() {
	p := d.pickFile()
	off := d.randOffset(d.fileSize(p))
	data := make([]byte, d.randLen())
	for i := range data {
		data[i] = byte(d.rng.IntN(255) + 1)
	}
	fd, oerr := syscall.Open(d.abs(p), syscall.O_WRONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if oerr == nil {
		n, err := syscall.Pwrite(fd, data, off)
		syscall.Close(fd)
		if err == nil && n != len(data) {
			err = fmt.Errorf("short pwrite %d of %d", n, len(data))
		}
		oerr = err
	}
	r, serr := d.resolve(p, true)
	if serr == nil {
		_, serr = d.s.Write(nil, r.attr.Ino, data, off)
	}
	desc := fmt.Sprintf("write %q off=%d len=%d", p, off, len(data))
	if d.check(desc, oerr, serr, errPair{syscall.ENXIO, syscall.EINVAL}) {
		d.checkRange(desc, p, r.attr.Ino, off-5000, int64(len(data))+10000)
	}
}

// checkRange compares the size of p and its bytes in [off, off+n) right
// after an operation changed them, to pin a divergence to its operation.
func (d *differ) checkRange(desc, p string, ino fsstore.Ino, off, n int64) {
	off = max(off, 0)
	a, err := d.s.Getattr(ino)
	if err != nil {
		d.fail("%s: store getattr: %v", desc, err)
	}
	if size := d.fileSize(p); int64(a.Size) != size {
		d.fail("%s: linux size %d, store %d", desc, size, a.Size)
	}
	want := make([]byte, n)
	f, err := os.Open(d.abs(p))
	if err != nil {
		d.fail("%s: open: %v", desc, err)
	}
	m, _ := f.ReadAt(want, off)
	f.Close()
	got := make([]byte, n)
	k, _, err := d.s.Read(nil, ino, got, off)
	if err != nil || k != m || !bytes.Equal(got[:k], want[:m]) {
		i := 0
		for i < min(k, m) && got[i] == want[i] {
			i++
		}
		d.fail("%s: bytes [%d,%d): linux read %d, store %d (err %v), first difference at %d", desc, off, off+n, m, k, err, off+int64(i))
	}
}

func (d *differ) opTruncate() {
	p := d.pickFile()
	size := d.fileSize(p)
	var n int64
	switch r := d.rng.IntN(100); {
	case r < 15:
		n = 0
	case r < 50:
		n = d.rng.Int64N(size + 1) // down
	case r < 70:
		n = size + d.rng.Int64N(10000) // up
	case r < 90:
		n = max(0, int64(d.rng.IntN(32))*4096+int64(d.rng.IntN(3))-1)
	default:
		n = 300<<10 + d.rng.Int64N(700<<10)
	}
	oerr := syscall.Truncate(d.abs(p), n)
	r, serr := d.resolve(p, true)
	if serr == nil {
		sz := uint64(n)
		_, serr = d.s.Setattr(nil, r.attr.Ino, fsstore.SetAttr{Size: &sz})
	}
	desc := fmt.Sprintf("truncate %q %d", p, n)
	if d.check(desc, oerr, serr) {
		d.checkRange(desc, p, r.attr.Ino, min(n, size)-5000, max(n, size)-min(n, size)+10000)
	}
}

func (d *differ) opChmod() {
	p, perm := d.pickAny(), d.perm(true)
	oerr := syscall.Chmod(d.abs(p), perm)
	r, serr := d.resolve(p, true)
	if serr == nil {
		_, serr = d.s.Setattr(nil, r.attr.Ino, fsstore.SetAttr{Mode: &perm})
	}
	d.check(fmt.Sprintf("chmod %q %#o", p, perm), oerr, serr)
}

func (d *differ) opChown() {
	p := d.pickAny()
	ids := []int{-1, 0, 1000, 1001}
	uid, gid := ids[d.rng.IntN(len(ids))], ids[d.rng.IntN(len(ids))]
	var before syscall.Stat_t
	berr := syscall.Stat(d.abs(p), &before)
	oerr := syscall.Chown(d.abs(p), uid, gid)
	if oerr == nil && berr == nil && before.Mode&0o6000 != 0 && uid < 0 && gid < 0 {
		// Linux clears setuid (and setgid with group exec) of a regular
		// file even on chown(-1, -1), which the store never sees (no
		// attribute is set).
		if err := syscall.Chmod(d.abs(p), before.Mode&0o7777); err != nil {
			d.fail("chmod after chown %q: %v", p, err)
		}
	}
	r, serr := d.resolve(p, true)
	if serr == nil {
		var sa fsstore.SetAttr
		if uid >= 0 {
			u := uint32(uid)
			sa.UID = &u
		}
		if gid >= 0 {
			g := uint32(gid)
			sa.GID = &g
		}
		_, serr = d.s.Setattr(nil, r.attr.Ino, sa)
	}
	d.check(fmt.Sprintf("chown %q %d:%d", p, uid, gid), oerr, serr)
}

func (d *differ) opRead() {
	p := d.pickFile()
	size := d.fileSize(p)
	off := d.rng.Int64N(size + 100)
	buf := make([]byte, d.randLen()+1)
	var got []byte
	fd, oerr := syscall.Open(d.abs(p), syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if oerr == nil {
		var n int
		n, oerr = syscall.Pread(fd, buf, off)
		syscall.Close(fd)
		if oerr == nil {
			got = slices.Clone(buf[:n])
		}
	}
	r, serr := d.resolve(p, true)
	desc := fmt.Sprintf("read %q off=%d len=%d", p, off, len(buf))
	if serr == nil && r.attr.Mode&fsstore.ModeType == fsstore.ModeFIFO {
		_, _, serr = d.s.Read(nil, r.attr.Ino, buf, off)
		d.check(desc+" (fifo: store must refuse)", syscall.EINVAL, serr)
		return
	}
	var sgot []byte
	var eof bool
	if serr == nil {
		var n int
		n, eof, serr = d.s.Read(nil, r.attr.Ino, buf, off)
		sgot = buf[:n]
	}
	if d.check(desc, oerr, serr) {
		if !bytes.Equal(got, sgot) {
			d.fail("%s: linux read %d bytes, store %d (contents differ: %v)", desc, len(got), len(sgot), len(got) == len(sgot))
		}
		if wantEOF := off+int64(len(sgot)) >= size; eof != wantEOF {
			d.fail("%s: store eof=%v, want %v (size %d)", desc, eof, wantEOF, size)
		}
	}
}

func (d *differ) opStat() {
	p := d.pickAny()
	var st syscall.Stat_t
	oerr := syscall.Stat(d.abs(p), &st)
	r, serr := d.resolve(p, true)
	if d.check(fmt.Sprintf("stat %q", p), oerr, serr) {
		if st.Mode&syscall.S_IFMT != r.attr.Mode&fsstore.ModeType {
			d.fail("stat %q: linux type %o, store %o", p, st.Mode&syscall.S_IFMT, r.attr.Mode&fsstore.ModeType)
		}
	}
}

func (d *differ) opUnlink() {
	p := d.pickAny()
	oerr := syscall.Unlink(d.abs(p))
	if oerr == nil {
		d.stale = true
	}
	dir, name, serr := d.parentOf(p)
	if serr == nil {
		serr = d.s.Unlink(nil, dir, name)
	}
	d.check(fmt.Sprintf("unlink %q", p), oerr, serr)
}

func (d *differ) opRmdir() {
	p := d.pickDir()
	oerr := syscall.Rmdir(d.abs(p))
	if oerr == nil {
		d.stale = true
	}
	dir, name, serr := d.parentOf(p)
	if serr == nil {
		serr = d.s.Rmdir(nil, dir, name)
	}
	d.check(fmt.Sprintf("rmdir %q", p), oerr, serr)
}

func (d *differ) opRename() {
	d.refresh()
	var from, to string
	switch r := d.rng.IntN(100); {
	case r < 30: // a directory somewhere else, maybe into its own subtree
		from = d.pickDir()
		switch d.rng.IntN(4) {
		case 0:
			to = path.Join(from, d.randName())
		case 1:
			to = path.Join(d.pickDir(), d.randName())
		default:
			to = d.pickAny()
		}
	case r < 40: // onto an ancestor of the source
		from = d.pickAny()
		to = path.Dir(from)
		if to == "." {
			to = d.pickAny()
		}
	default:
		from = d.pickAny()
		if d.rng.IntN(2) == 0 {
			to = d.pickAny() // often an existing name: replaced
		} else {
			to = d.pickNew()
		}
	}
	oerr := syscall.Rename(d.abs(from), d.abs(to))
	if oerr == nil {
		d.stale = true
	}
	odir, oname, serr := d.parentOf(from)
	var ndir fsstore.Ino
	var nname string
	if serr == nil {
		ndir, nname, serr = d.parentOf(to)
	}
	var allowed []errPair
	if serr == nil {
		serr = d.s.Rename(nil, odir, oname, ndir, nname)
		// Linux checks "target is an ancestor of the source" (ENOTEMPTY)
		// before comparing the types.
		if errors.Is(serr, syscall.EISDIR) && d.isAncestor(ndir, nname, odir) {
			allowed = append(allowed, errPair{syscall.ENOTEMPTY, syscall.EISDIR})
		}
	}
	d.check(fmt.Sprintf("rename %q %q", from, to), oerr, serr, allowed...)
}

// isAncestor reports whether dir/name is dir ino or one of its ancestors.
func (d *differ) isAncestor(dir fsstore.Ino, name string, ino fsstore.Ino) bool {
	a, err := d.s.Lookup(nil, dir, name)
	if err != nil || !a.IsDir() {
		return false
	}
	return slices.Contains(d.stackOf(ino), a.Ino)
}

func (d *differ) opLink() {
	from := d.pickAny()
	if d.rng.IntN(2) == 0 {
		from = d.pickFile()
	}
	to := d.pickNew()
	if d.rng.IntN(5) == 0 {
		to = d.pickAny()
	}
	oerr := syscall.Link(d.abs(from), d.abs(to))
	if oerr == nil {
		d.stale = true
	}
	r, serr := d.resolve(from, false)
	var dir fsstore.Ino
	var name string
	if serr == nil {
		dir, name, serr = d.parentOf(to)
	}
	var allowed []errPair
	if serr == nil {
		_, serr = d.s.Link(nil, r.attr.Ino, dir, name)
		if errors.Is(serr, syscall.EPERM) && r.attr.IsDir() {
			if _, err := d.s.Lookup(nil, dir, name); err == nil {
				allowed = append(allowed, errPair{syscall.EEXIST, syscall.EPERM})
			}
		}
	}
	d.check(fmt.Sprintf("link %q %q", from, to), oerr, serr, allowed...)
}

func (d *differ) opSymlink() {
	p := d.pickNew()
	if d.rng.IntN(6) == 0 {
		p = d.pickAny()
	}
	var target string
	switch r := d.rng.IntN(100); {
	case r < 10:
		target = "."
	case r < 20:
		target = path.Base(p) // itself: a loop
	case r < 30:
		target = "nowhere/" + d.randName()
	case r < 40 && len(d.links) > 0:
		target = path.Base(d.pickFrom(d.links))
	default:
		target = d.randName()
		for d.rng.IntN(3) == 0 {
			target = path.Join(target, d.randName())
		}
	}
	oerr := syscall.Symlink(target, d.abs(p))
	if oerr == nil {
		d.stale = true
	}
	dir, name, serr := d.parentOf(p)
	if serr == nil {
		_, serr = d.s.Symlink(nil, dir, name, target)
	}
	d.check(fmt.Sprintf("symlink %q -> %q", p, target), oerr, serr)
}

// opReopen closes (or kills, as a crash would) and reopens the store: every
// operation has returned, so all of them must survive either way.
func (d *differ) opReopen() {
	if d.rng.IntN(2) == 0 {
		d.note("store Close + Open")
		if err := d.s.Close(); err != nil {
			d.fail("close: %v", err)
		}
	} else {
		d.note("store Kill (crash) + Open")
		d.s.Kill(errors.New("differential test crash"))
	}
	d.open()
}

// ---- whole-tree comparison ----

type diffNode struct {
	typ, perm, nlink uint32
	uid, gid         uint32
	size             int64
	target           string
	data             []byte
	ino              uint64
}

func (n diffNode) String() string {
	return fmt.Sprintf("type=%o perm=%#o nlink=%d owner=%d:%d size=%d target=%q", n.typ, n.perm, n.nlink, n.uid, n.gid, n.size, n.target)
}

func (d *differ) osTree() map[string]diffNode {
	out := map[string]diffNode{}
	var walk func(rel string)
	walk = func(rel string) {
		ents, err := os.ReadDir(d.abs(rel))
		if err != nil {
			d.fail("read os dir %q: %v", rel, err)
		}
		for _, e := range ents {
			p := path.Join(rel, e.Name())
			var st syscall.Stat_t
			if err := syscall.Lstat(d.abs(p), &st); err != nil {
				d.fail("lstat %q: %v", p, err)
			}
			n := diffNode{typ: st.Mode & syscall.S_IFMT, perm: st.Mode & 0o7777, nlink: uint32(st.Nlink), uid: st.Uid, gid: st.Gid, size: st.Size, ino: st.Ino}
			switch n.typ {
			case syscall.S_IFDIR:
				n.size = 0
				walk(p)
			case syscall.S_IFLNK:
				if n.target, err = os.Readlink(d.abs(p)); err != nil {
					d.fail("readlink %q: %v", p, err)
				}
			case syscall.S_IFREG:
				if n.data, err = os.ReadFile(d.abs(p)); err != nil {
					d.fail("read %q: %v", p, err)
				}
			}
			out[p] = n
		}
	}
	walk("")
	var st syscall.Stat_t
	if err := syscall.Lstat(d.osRoot, &st); err != nil {
		d.fail("lstat root: %v", err)
	}
	out["/"] = diffNode{typ: syscall.S_IFDIR, perm: st.Mode & 0o7777, nlink: uint32(st.Nlink), ino: st.Ino}
	return out
}

// storeTree walks the store and checks its internal invariants on the way.
func (d *differ) storeTree() map[string]diffNode {
	out := map[string]diffNode{}
	inodes := map[fsstore.Ino]bool{fsstore.RootIno: true}
	var walk func(rel string, dir fsstore.Ino)
	walk = func(rel string, dir fsstore.Ino) {
		var ents []fsstore.DirEntry
		if err := d.s.ReadDir(nil, dir, 0, func(e fsstore.DirEntry) bool {
			ents = append(ents, e)
			return true
		}); err != nil {
			d.fail("store readdir %q: %v", rel, err)
		}
		// Resuming from every cookie gives the rest of the listing.
		for i := range ents {
			var rest []string
			if err := d.s.ReadDir(nil, dir, ents[i].Cookie, func(e fsstore.DirEntry) bool {
				rest = append(rest, e.Name)
				return true
			}); err != nil {
				d.fail("store readdir %q from cookie %x: %v", rel, ents[i].Cookie, err)
			}
			var want []string
			for _, e := range ents[i+1:] {
				want = append(want, e.Name)
			}
			if !slices.Equal(rest, want) {
				d.fail("store readdir %q from cookie %x: %v, want %v", rel, ents[i].Cookie, rest, want)
			}
		}
		da, err := d.s.Getattr(dir)
		if err != nil {
			d.fail("getattr dir %q: %v", rel, err)
		}
		if da.Size != uint64(len(ents)) {
			d.fail("store dir %q: size %d but %d entries", rel, da.Size, len(ents))
		}
		for _, e := range ents {
			p := path.Join(rel, e.Name)
			if _, dup := out[p]; dup {
				d.fail("store dir %q lists %q twice", rel, e.Name)
			}
			a, err := d.s.Getattr(e.Ino)
			if err != nil {
				d.fail("store getattr %q (ino %d): %v", p, e.Ino, err)
			}
			if la, err := d.s.Lookup(nil, dir, e.Name); err != nil || la.Ino != e.Ino {
				d.fail("store lookup %q: ino %d err %v, readdir says %d", p, la.Ino, err, e.Ino)
			}
			inodes[e.Ino] = true
			n := diffNode{typ: a.Mode & fsstore.ModeType, perm: a.Mode & fsstore.ModePerm, nlink: a.Nlink, uid: a.UID, gid: a.GID, size: int64(a.Size), ino: uint64(a.Ino)}
			if e.Type != n.typ {
				d.fail("store %q: readdir type %o, inode type %o", p, e.Type, n.typ)
			}
			switch n.typ {
			case fsstore.ModeDir:
				if a.Parent != dir {
					d.fail("store dir %q: parent pointer %d, want %d", p, a.Parent, dir)
				}
				n.size = 0
				walk(p, e.Ino)
			case fsstore.ModeSymlink:
				if n.target, err = d.s.Readlink(e.Ino); err != nil {
					d.fail("store readlink %q: %v", p, err)
				}
			case fsstore.ModeRegular:
				if maxBlocks := (a.Size + 4095) / 4096; a.Blocks > maxBlocks {
					d.fail("store %q: %d blocks allocated for size %d", p, a.Blocks, a.Size)
				}
				buf := make([]byte, a.Size+1)
				m, eof, err := d.s.Read(nil, e.Ino, buf, 0)
				if err != nil || uint64(m) != a.Size || !eof {
					d.fail("store read %q: %d bytes, eof %v, err %v (size %d)", p, m, eof, err, a.Size)
				}
				n.data = buf[:m]
			}
			// Path rebuilds a name of the inode from parent pointers.
			names, err := d.s.Path(e.Ino)
			if err != nil {
				d.fail("store path of %q: %v", p, err)
			}
			cur := fsstore.RootIno
			for _, nm := range names {
				la, err := d.s.Lookup(nil, cur, nm)
				if err != nil {
					d.fail("store path of %q is %v: lookup %q: %v", p, names, nm, err)
				}
				cur = la.Ino
			}
			if cur != e.Ino || (n.typ == fsstore.ModeDir && strings.Join(names, "/") != p) {
				d.fail("store path of %q (ino %d) is %v, naming ino %d", p, e.Ino, names, cur)
			}
			out[p] = n
		}
	}
	walk("", fsstore.RootIno)
	ra, err := d.s.Getattr(fsstore.RootIno)
	if err != nil {
		d.fail("getattr root: %v", err)
	}
	out["/"] = diffNode{typ: fsstore.ModeDir, perm: ra.Mode & fsstore.ModePerm, nlink: ra.Nlink, ino: uint64(ra.Ino)}
	if st := d.s.StatFS(); st.Files != uint64(len(inodes)) {
		d.fail("store StatFS: %d inodes in use, %d reachable", st.Files, len(inodes))
	}
	return out
}

func (d *differ) compareTrees() {
	d.t.Helper()
	ot, st := d.osTree(), d.storeTree()
	var diffs []string
	for _, p := range slices.Sorted(mapKeys(ot, st)) {
		o, ook := ot[p]
		s, sok := st[p]
		switch {
		case !sok:
			diffs = append(diffs, fmt.Sprintf("%q only on linux (%v)", p, o))
		case !ook:
			diffs = append(diffs, fmt.Sprintf("%q only in the store (%v)", p, s))
		case o.typ != s.typ || o.perm != s.perm || o.nlink != s.nlink || o.uid != s.uid || o.gid != s.gid || o.size != s.size || o.target != s.target:
			diffs = append(diffs, fmt.Sprintf("%q: linux %v, store %v", p, o, s))
		case !bytes.Equal(o.data, s.data):
			i := 0
			for i < len(o.data) && i < len(s.data) && o.data[i] == s.data[i] {
				i++
			}
			diffs = append(diffs, fmt.Sprintf("%q: contents differ from byte %d (size %d)", p, i, o.size))
		}
	}
	// Hard links: names share an inode on one side iff they do on the other.
	o2s, s2o := map[uint64]uint64{}, map[uint64]uint64{}
	for p, o := range ot {
		s, ok := st[p]
		if !ok {
			continue
		}
		if v, ok := o2s[o.ino]; ok && v != s.ino {
			diffs = append(diffs, fmt.Sprintf("%q: linux inode %d maps to store inodes %d and %d", p, o.ino, v, s.ino))
		}
		if v, ok := s2o[s.ino]; ok && v != o.ino {
			diffs = append(diffs, fmt.Sprintf("%q: store inode %d maps to linux inodes %d and %d", p, s.ino, v, o.ino))
		}
		o2s[o.ino], s2o[s.ino] = s.ino, o.ino
	}
	if len(diffs) > 0 {
		if len(diffs) > 20 {
			diffs = append(diffs[:20], fmt.Sprintf("... and %d more", len(diffs)-20))
		}
		d.fail("trees differ:\n  %s", strings.Join(diffs, "\n  "))
	}
	d.note(fmt.Sprintf("trees equal (%d names)", len(ot)))
	d.maxNames = max(d.maxNames, int64(len(ot)))
	for _, o := range ot {
		d.maxSize = max(d.maxSize, o.size)
	}
}

func mapKeys(ms ...map[string]diffNode) func(func(string) bool) {
	return func(yield func(string) bool) {
		seen := map[string]bool{}
		for _, m := range ms {
			for k := range m {
				if !seen[k] {
					seen[k] = true
					if !yield(k) {
						return
					}
				}
			}
		}
	}
}

// removeAll empties both trees and checks that the store freed everything.
func (d *differ) removeAll() {
	var rm func(dir fsstore.Ino)
	rm = func(dir fsstore.Ino) {
		var ents []fsstore.DirEntry
		if err := d.s.ReadDir(nil, dir, 0, func(e fsstore.DirEntry) bool {
			ents = append(ents, e)
			return true
		}); err != nil {
			d.fail("readdir %d: %v", dir, err)
		}
		for _, e := range ents {
			var err error
			if e.Type == fsstore.ModeDir {
				rm(e.Ino)
				err = d.s.Rmdir(nil, dir, e.Name)
			} else {
				err = d.s.Unlink(nil, dir, e.Name)
			}
			if err != nil {
				d.fail("remove %q from %d: %v", e.Name, dir, err)
			}
		}
	}
	rm(fsstore.RootIno)
	st := d.s.StatFS()
	if st.Files != 1 {
		d.fail("after removing everything: %d inodes in use", st.Files)
	}
	a, err := d.s.Getattr(fsstore.RootIno)
	if err != nil || a.Nlink != 2 || a.Size != 0 {
		d.fail("root after removing everything: %+v %v", a, err)
	}
	// Every block is free again, as in the freshly formatted store.
	if st.FreeBlocks != d.freeAtStart {
		d.fail("after removing everything: %d blocks free, %d when the store was new", st.FreeBlocks, d.freeAtStart)
	}
}
