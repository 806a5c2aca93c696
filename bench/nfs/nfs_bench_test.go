package nfsbench

import (
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	nfsc "github.com/willscott/go-nfs-client/nfs"
	"github.com/willscott/go-nfs-client/nfs/rpc"

	"github.com/hanfs/hanfs/fsstore"
	hnfs "github.com/hanfs/hanfs/nfs"
	"github.com/hanfs/hanfs/shareddisk"
)

// Workload sizes and the durability method; bench/nfs/run.sh uses the
// defaults.
var (
	flagStable     = flag.String("nfs.stable", "unstable,filesync", "how writes are made durable, comma-separated, each mode a pass of the write workloads: unstable (UNSTABLE WRITEs, then COMMIT) or filesync (every WRITE FILE_SYNC)")
	flagFileSize   = flag.Int64("nfs.filesize", 1<<30, "size of the sequentially written and read file")
	flagChunk      = flag.Int("nfs.chunk", 1<<20, "transfer size of the sequential workloads")
	flagRandFile   = flag.Int64("nfs.randfile", 256<<20, "size of the randomly written file (written in full before the timed part)")
	flagRandWrites = flag.Int("nfs.randwrites", 20000, "number of 4 KiB random writes")
	flagSmallFiles = flag.Int("nfs.smallfiles", 10000, "number of small files created")
	flagSmallSize  = flag.Int("nfs.smallsize", 4<<10, "size of each small file")
	flagDepths     = flag.String("nfs.depths", "1,8", "requests in flight (comma-separated)")
)

// serversEnv lists the servers to measure, as space-separated
// NAME|NFS_ADDR|MOUNT_ADDR|EXPORT_PATH entries. Unset, the benchmark runs
// against an in-process hanfs server (nfs.New) over a file-backed store, which
// is what -cpuprofile profiles.
const serversEnv = "HANFS_NFSBENCH_SERVERS"

// server is one NFS server under test.
type server struct {
	name, nfsAddr, mountAddr, path string

	once    sync.Once
	err     error
	root    []byte // the handle of this run's top directory on the server
	fsinfo  FSInfo
	seqFile []byte // the large file written by the last seqwrite
	seqName string // its name in root
	close   func()
	// stats, for an in-process server, reads the store's journal commits
	// and disk flushes.
	stats func() (commits, flushes uint64)
}

var (
	serversOnce sync.Once
	servers     []*server
	serversErr  error
)

func getServers() ([]*server, error) {
	serversOnce.Do(func() {
		spec := strings.TrimSpace(os.Getenv(serversEnv))
		if spec == "" {
			s, err := startInProcess()
			servers, serversErr = []*server{s}, err
			return
		}
		for _, ent := range strings.Fields(spec) {
			f := strings.Split(ent, "|")
			if len(f) != 4 {
				serversErr = fmt.Errorf("%s: %q is not NAME|NFS_ADDR|MOUNT_ADDR|PATH", serversEnv, ent)
				return
			}
			servers = append(servers, &server{name: f[0], nfsAddr: f[1], mountAddr: f[2], path: f[3]})
		}
	})
	return servers, serversErr
}

// startInProcess serves a fresh 4 GiB image under $HANFS_BENCH_DIR (default
// /var/tmp, which must support O_DIRECT) with nfs.New on a loopback port.
func startInProcess() (*server, error) {
	dir := os.Getenv("HANFS_BENCH_DIR")
	if dir == "" {
		dir = "/var/tmp"
	}
	tmp, err := os.MkdirTemp(dir, "hanfs-nfsbench-")
	if err != nil {
		return nil, err
	}
	img := filepath.Join(tmp, "hanfs.img")
	fail := func(err error) (*server, error) {
		os.RemoveAll(tmp)
		return nil, err
	}
	if err := prewrite(img, 4<<30); err != nil {
		return fail(err)
	}
	d, err := shareddisk.OpenFile(img, shareddisk.OpenOptions{})
	if err != nil {
		return fail(err)
	}
	if _, err := fsstore.Format(d, fsstore.FormatOptions{}); err != nil {
		d.Close()
		return fail(err)
	}
	st, err := fsstore.Open(d, fsstore.Options{})
	if err != nil {
		d.Close()
		return fail(err)
	}
	epoch, err := st.BumpEpoch()
	if err != nil {
		st.Close()
		d.Close()
		return fail(err)
	}
	exp, err := hnfs.ParseExport("/ 127.0.0.0/8 rw,no_root_squash")
	if err != nil {
		return fail(err)
	}
	var verf [8]byte
	binary.BigEndian.PutUint64(verf[:], epoch)
	srv, err := hnfs.New(st, hnfs.Config{Exports: []hnfs.Export{exp}, Verifier: verf,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		st.Close()
		d.Close()
		return fail(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	go srv.Serve(l)
	addr := l.Addr().String()
	return &server{name: "hanfs-inprocess", nfsAddr: addr, mountAddr: addr, path: "/", close: func() {
		srv.Close()
		st.Close()
		d.Close()
		os.RemoveAll(tmp)
	}, stats: func() (uint64, uint64) {
		x := st.Stats()
		return x.Commits, x.Flushes
	}}, nil
}

// prewrite creates the image file and writes it in full, as run.sh does with
// dd, so that the host file system does not allocate blocks during the
// measurements (a block device would not).
func prewrite(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	buf := make([]byte, 4<<20)
	for off := int64(0); off < size; off += int64(len(buf)) {
		if _, err := f.WriteAt(buf, off); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// TestMain stops an in-process server after the benchmarks.
func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	for _, s := range servers {
		if s.close != nil {
			s.close()
		}
	}
	os.Exit(code)
}

// setup mounts the export with go-nfs-client and makes this run's top
// directory, once per server.
func (s *server) setup() error {
	s.once.Do(func() {
		mc, err := rpc.DialTCP("tcp", s.mountAddr, false)
		if err != nil {
			s.err = fmt.Errorf("%s: dial MOUNT at %s: %w", s.name, s.mountAddr, err)
			return
		}
		defer mc.Close()
		auth := rpc.NewAuthUnix("bench", 0, 0).Auth()
		var tgt *nfsc.Target
		if s.mountAddr == s.nfsAddr {
			tgt, err = (&nfsc.Mount{Client: mc}).Mount(s.path, auth)
		} else {
			// MOUNT and NFS on different ports (Ganesha): MNT on one
			// connection, the NFS target on a second.
			nc, derr := rpc.DialTCP("tcp", s.nfsAddr, false)
			if derr != nil {
				s.err = fmt.Errorf("%s: dial NFS at %s: %w", s.name, s.nfsAddr, derr)
				return
			}
			defer nc.Close()
			fh, merr := mnt(mc, s.path, auth)
			if merr != nil {
				s.err = fmt.Errorf("%s: mount %s: %w", s.name, s.path, merr)
				return
			}
			tgt, err = nfsc.NewTargetWithClient(nc, auth, fh, s.path, time.Second)
		}
		if err != nil {
			s.err = fmt.Errorf("%s: mount %s: %w", s.name, s.path, err)
			return
		}
		name := fmt.Sprintf("nfsbench-%d", time.Now().UnixNano())
		if s.root, err = tgt.Mkdir(name, 0o755); err != nil {
			s.err = fmt.Errorf("%s: mkdir %s: %w", s.name, name, err)
			return
		}
		c, err := Dial(s.nfsAddr)
		if err != nil {
			s.err = err
			return
		}
		defer c.Close()
		if s.fsinfo, err = c.FSInfo(s.root); err != nil {
			s.err = fmt.Errorf("%s: FSINFO: %w", s.name, err)
			return
		}
		if s.fsinfo.WTMax < uint32(*flagChunk) || s.fsinfo.RTMax < uint32(*flagChunk) {
			s.err = fmt.Errorf("%s: FSINFO wtmax %d, rtmax %d: below the %d-byte transfers of the workloads",
				s.name, s.fsinfo.WTMax, s.fsinfo.RTMax, *flagChunk)
		}
	})
	return s.err
}

// mnt calls MOUNT MNT through go-nfs-client's RPC client and returns the
// root handle (nfsc.Mount.Mount would also ask for FSINFO on the MOUNT port).
func mnt(c *rpc.Client, path string, auth rpc.Auth) ([]byte, error) {
	type mountArgs struct {
		rpc.Header
		Dirpath string
	}
	res, err := c.Call(&mountArgs{rpc.Header{Rpcvers: 2, Prog: nfsc.MountProg, Vers: nfsc.MountVers,
		Proc: nfsc.MountProc3MNT, Cred: auth, Verf: rpc.AuthNull}, path})
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(res)
	if err != nil {
		return nil, err
	}
	if len(b) < 8 {
		return nil, fmt.Errorf("short MNT reply")
	}
	if st := binary.BigEndian.Uint32(b); st != 0 {
		return nil, fmt.Errorf("MNT status %d", st)
	}
	n := binary.BigEndian.Uint32(b[4:])
	if int(n) > len(b)-8 || n > 64 {
		return nil, fmt.Errorf("bad MNT handle length %d", n)
	}
	return append([]byte(nil), b[8:8+n]...), nil
}

func stableModes(b *testing.B) []Stable {
	var out []Stable
	for _, f := range strings.Split(*flagStable, ",") {
		switch f {
		case "unstable":
			out = append(out, Unstable)
		case "filesync":
			out = append(out, FileSync)
		default:
			b.Fatalf("-nfs.stable=%s: want unstable, filesync or both, comma-separated", *flagStable)
		}
	}
	return out
}

func depths(b *testing.B) []int {
	var out []int
	for _, f := range strings.Split(*flagDepths, ",") {
		var n int
		if _, err := fmt.Sscan(f, &n); err != nil || n < 1 {
			b.Fatalf("-nfs.depths: %q", f)
		}
		out = append(out, n)
	}
	return out
}

// parallel runs fn(i) for i in [0, n) on qd goroutines and returns the
// first error.
func parallel(qd, n int, fn func(worker, i int) error) error {
	var next atomic.Int64
	var first error
	var once sync.Once
	var failed atomic.Bool
	var wg sync.WaitGroup
	for w := 0; w < qd; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for !failed.Load() {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := fn(w, i); err != nil {
					once.Do(func() { first = err })
					failed.Store(true)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	return first
}

// pattern fills p with bytes that depend on tag, so that reads can be checked.
func pattern(p []byte, tag uint64) {
	for i := 0; i+8 <= len(p); i += 8 {
		binary.LittleEndian.PutUint64(p[i:], tag*0x9e3779b97f4a7c15+uint64(i))
	}
}

// workload is one measured client workload. run returns the amount of work
// done in the timed part (bytes or operations) and how long it took.
type workload struct {
	name   string
	unit   string // reported as unit/s
	per    string // one unit of work, for per-unit store counters
	writes bool   // run once per durability mode (else once, in the first)
	run    func(b *testing.B, s *server, c *Client, qd int, how Stable) (float64, time.Duration)
}

var workloads = []workload{
	{"seqwrite", "MiB/s", "MiB", true, seqWrite},
	{"seqread", "MiB/s", "MiB", false, seqRead},
	{"randwrite", "IOPS", "write", true, randWrite},
	{"smallfiles", "files/s", "file", true, smallFiles},
}

// modeName names a durability mode in benchmark names.
func modeName(how Stable) string {
	if how == FileSync {
		return "filesync"
	}
	return "unstable"
}

// BenchmarkNFS runs every workload at every depth against every server, in
// the order mode, workload, depth, server, so that the servers compared on a
// line of the table ran close together in time. Names are
// workload[.mode]/qdN/server; seqread runs once, in the first mode, on the
// file the last seqwrite wrote. Run it with -benchtime 1x: each iteration is
// the whole workload.
func BenchmarkNFS(b *testing.B) {
	srvs, err := getServers()
	if err != nil {
		b.Fatal(err)
	}
	for mi, how := range stableModes(b) {
		for _, w := range workloads {
			if !w.writes && mi > 0 {
				continue
			}
			name := w.name
			if w.writes {
				name += "." + modeName(how)
			}
			for _, qd := range depths(b) {
				for _, s := range srvs {
					b.Run(fmt.Sprintf("%s/qd%d/%s", name, qd, s.name), func(b *testing.B) {
						runOne(b, w, s, qd, how)
					})
				}
			}
		}
	}
}

func runOne(b *testing.B, w workload, s *server, qd int, how Stable) {
	b.StopTimer()
	if err := s.setup(); err != nil {
		b.Fatal(err)
	}
	c, err := Dial(s.nfsAddr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	var work float64
	var took time.Duration
	var c0, f0 uint64
	if s.stats != nil {
		c0, f0 = s.stats()
	}
	for i := 0; i < b.N; i++ {
		b.StartTimer()
		wk, t := w.run(b, s, c, qd, how)
		b.StopTimer()
		work += wk
		took += t
	}
	b.ReportMetric(work/took.Seconds(), w.unit)
	if s.stats != nil {
		// Includes the untimed preparation (the prefill of randwrite).
		c1, f1 := s.stats()
		b.ReportMetric(float64(c1-c0)/work, "commits/"+w.per)
		b.ReportMetric(float64(f1-f0)/work, "flushes/"+w.per)
	}
}

var seq atomic.Int64

// uniq returns a name not used before in this process.
func uniq(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, seq.Add(1))
}

// writeFile writes size bytes to a new file in chunks of chunk bytes with
// qd requests in flight, commits if the writes were unstable, and returns
// the file's handle and the time taken by the writes and the commit.
func writeFile(b *testing.B, s *server, c *Client, name string, size int64, chunk, qd int, how Stable) ([]byte, time.Duration) {
	fh, err := c.Create(s.root, name)
	if err != nil {
		b.Fatal(err)
	}
	n := int((size + int64(chunk) - 1) / int64(chunk))
	bufs := make([][]byte, qd)
	for i := range bufs {
		bufs[i] = make([]byte, chunk)
	}
	var dur Durability
	start := time.Now()
	err = parallel(qd, n, func(w, i int) error {
		p := bufs[w]
		pattern(p[:8], uint64(i))
		r, err := c.Write(fh, uint64(i)*uint64(chunk), p, how)
		if err == nil {
			dur.Wrote(r)
		}
		return err
	})
	if err == nil && how == Unstable {
		var v [8]byte
		v, err = c.Commit(fh)
		dur.Committed(v)
	}
	took := time.Since(start)
	if err != nil {
		b.Fatal(err)
	}
	if err := dur.Err(); err != nil {
		b.Fatal(err)
	}
	return fh, took
}

// seqWrite writes a new large file, after removing the previous one (untimed)
// so that the disk does not fill up.
func seqWrite(b *testing.B, s *server, c *Client, qd int, how Stable) (float64, time.Duration) {
	if s.seqFile != nil {
		b.StopTimer()
		if err := c.Remove(s.root, s.seqName); err != nil {
			b.Fatal(err)
		}
		s.seqFile = nil
		b.StartTimer()
	}
	name := uniq(fmt.Sprintf("seq-%s-qd%d", modeName(how), qd))
	fh, took := writeFile(b, s, c, name, *flagFileSize, *flagChunk, qd, how)
	s.seqFile, s.seqName = fh, name
	return float64(*flagFileSize) / (1 << 20), took
}

func seqRead(b *testing.B, s *server, c *Client, qd int, how Stable) (float64, time.Duration) {
	if s.seqFile == nil {
		b.StopTimer()
		s.seqName = uniq("seq-for-read")
		s.seqFile, _ = writeFile(b, s, c, s.seqName, *flagFileSize, *flagChunk, 8, how)
		b.StartTimer()
	}
	chunk := *flagChunk
	n := int((*flagFileSize + int64(chunk) - 1) / int64(chunk))
	bufs := make([][]byte, qd)
	for i := range bufs {
		bufs[i] = make([]byte, chunk)
	}
	var total atomic.Int64
	start := time.Now()
	err := parallel(qd, n, func(w, i int) error {
		p := bufs[w]
		off := uint64(i) * uint64(chunk)
		got, _, err := c.ReadAt(s.seqFile, p, off)
		if err != nil {
			return err
		}
		want := chunk
		if rest := *flagFileSize - int64(off); rest < int64(want) {
			want = int(rest)
		}
		if got != want {
			return fmt.Errorf("short read at %d: %d of %d bytes", off, got, want)
		}
		var tag [8]byte
		pattern(tag[:], uint64(i))
		if string(p[:8]) != string(tag[:]) {
			return fmt.Errorf("read at %d: wrong data", off)
		}
		total.Add(int64(got))
		return nil
	})
	took := time.Since(start)
	if err != nil {
		b.Fatal(err)
	}
	return float64(total.Load()) / (1 << 20), took
}

func randWrite(b *testing.B, s *server, c *Client, qd int, how Stable) (float64, time.Duration) {
	const bs = 4 << 10
	b.StopTimer()
	name := uniq(fmt.Sprintf("rand-%s-qd%d", modeName(how), qd))
	fh, _ := writeFile(b, s, c, name, *flagRandFile, *flagChunk, 8, how)
	defer func() {
		b.StopTimer()
		if err := c.Remove(s.root, name); err != nil {
			b.Fatal(err)
		}
	}()
	blocks := *flagRandFile / bs
	rng := rand.New(rand.NewSource(int64(qd)))
	offs := make([]uint64, *flagRandWrites)
	for i := range offs {
		offs[i] = uint64(rng.Int63n(blocks)) * bs
	}
	bufs := make([][]byte, qd)
	for i := range bufs {
		bufs[i] = make([]byte, bs)
		pattern(bufs[i], uint64(i)+7)
	}
	var dur Durability
	b.StartTimer()
	start := time.Now()
	err := parallel(qd, len(offs), func(w, i int) error {
		r, err := c.Write(fh, offs[i], bufs[w], how)
		if err == nil {
			dur.Wrote(r)
		}
		return err
	})
	if err == nil && how == Unstable {
		var v [8]byte
		v, err = c.Commit(fh)
		dur.Committed(v)
	}
	took := time.Since(start)
	if err != nil {
		b.Fatal(err)
	}
	if err := dur.Err(); err != nil {
		b.Fatal(err)
	}
	return float64(len(offs)), took
}

func smallFiles(b *testing.B, s *server, c *Client, qd int, how Stable) (float64, time.Duration) {
	b.StopTimer()
	dir, err := c.Mkdir(s.root, uniq(fmt.Sprintf("small-qd%d", qd)))
	if err != nil {
		b.Fatal(err)
	}
	bufs := make([][]byte, qd)
	for i := range bufs {
		bufs[i] = make([]byte, *flagSmallSize)
		pattern(bufs[i], uint64(i)+99)
	}
	b.StartTimer()
	start := time.Now()
	err = parallel(qd, *flagSmallFiles, func(w, i int) error {
		fh, err := c.Create(dir, fmt.Sprintf("f%06d", i))
		if err != nil {
			return err
		}
		r, err := c.Write(fh, 0, bufs[w], how)
		if err != nil {
			return err
		}
		// "close": the file's data must be durable before the next step.
		if r.Committed != FileSync {
			v, err := c.Commit(fh)
			if err != nil {
				return err
			}
			if v != r.Verf {
				return fmt.Errorf("file %d: write verifier changed before COMMIT", i)
			}
		}
		return nil
	})
	took := time.Since(start)
	if err != nil {
		b.Fatal(err)
	}
	return float64(*flagSmallFiles), took
}
