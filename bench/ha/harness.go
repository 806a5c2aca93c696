// Package ha measures hanfs high availability at the default settings:
// failover time (kill -9 of the primary to the first successful NFS reply
// at the service address) with its parts parsed from the nodes' logs,
// planned switchover time, and the blocking overhead of a live backup on a
// durable write workload. See README.md for the command and
// docs/BENCHMARKS.md for results.
//
// This file is the harness: hanfsd processes, a small pipelined NFSv3
// client on nfs/rpcwire, a GETATTR poller that reconnects, and the parsing
// of the nodes' slog text lines.
package ha

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanfs/hanfs/nfs/rpcwire"
)

// RepoRoot is the repository root (the parent of bench/).
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(filepath.Dir(file)))
}

// GoTool returns the go command of this toolchain.
func GoTool() string {
	for _, c := range []string{filepath.Join(runtime.GOROOT(), "bin", "go"), "/usr/local/go/bin/go"} {
		if st, err := os.Stat(c); err == nil && !st.IsDir() {
			return c
		}
	}
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "go"
}

// Build builds cmd/hanfsd into dir and returns the binary's path.
func Build(dir string) (string, error) {
	bin := filepath.Join(dir, "hanfsd")
	cmd := exec.Command(GoTool(), "build", "-o", bin, "./cmd/hanfsd")
	cmd.Dir = RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/hanfsd: %v\n%s", err, out)
	}
	return bin, nil
}

// Format formats a sparse image of size at path.
func Format(bin, path, size string) error {
	if out, err := exec.Command(bin, "format", "--disk", path, "--size", size).CombinedOutput(); err != nil {
		return fmt.Errorf("hanfsd format: %v\n%s", err, out)
	}
	return nil
}

// FreeTCP returns a free TCP address on 127.0.0.1.
func FreeTCP() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// FreeUDP returns a free UDP address on 127.0.0.1.
func FreeUDP() (string, error) {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer c.Close()
	return c.LocalAddr().String(), nil
}

// Node is one hanfsd serve process, restartable with the same flags. Every
// start appends to the same log file.
type Node struct {
	ID      int
	Bin     string
	Args    []string // serve flags (without --metrics)
	Metrics string   // host:port of /status, /metrics, /switchover
	LogPath string

	cmd  *exec.Cmd
	done chan struct{}
}

// Start starts the process.
func (n *Node) Start() error {
	lf, err := os.OpenFile(n.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	args := append([]string{"serve"}, n.Args...)
	args = append(args, "--metrics", n.Metrics)
	fmt.Fprintf(lf, "=== %s start: hanfsd %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(args, " "))
	n.cmd = exec.Command(n.Bin, args...)
	n.cmd.Stdout, n.cmd.Stderr = lf, lf
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := n.cmd.Start(); err != nil {
		lf.Close()
		return err
	}
	done := make(chan struct{})
	n.done = done
	cmd := n.cmd
	go func() { cmd.Wait(); lf.Close(); close(done) }()
	return nil
}

// Running reports whether the process runs.
func (n *Node) Running() bool {
	if n.done == nil {
		return false
	}
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// Kill sends SIGKILL and reaps the process.
func (n *Node) Kill() {
	if !n.Running() {
		return
	}
	n.cmd.Process.Kill()
	<-n.done
}

// Signal sends sig to the process.
func (n *Node) Signal(sig syscall.Signal) error {
	if !n.Running() {
		return fmt.Errorf("node %d is not running", n.ID)
	}
	return n.cmd.Process.Signal(sig)
}

// Stop sends SIGTERM (a clean shutdown) and waits, then SIGKILL after 10 s.
func (n *Node) Stop() {
	if !n.Running() {
		return
	}
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(10 * time.Second):
		n.Kill()
	}
}

// CPUTime returns the user+system CPU time the process used so far.
func (n *Node) CPUTime() (time.Duration, error) {
	if !n.Running() {
		return 0, fmt.Errorf("node %d is not running", n.ID)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", n.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// Fields after the ")" that ends the command name: state is field 3,
	// utime 14 and stime 15, in clock ticks (100 per second on Linux).
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", n.cmd.Process.Pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parse /proc/%d/stat: %v %v", n.cmd.Process.Pid, err1, err2)
	}
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}

// Status is the part of /status the bench reads.
type Status struct {
	Node           int    `json:"node"`
	Role           string `json:"role"`
	Epoch          uint64 `json:"epoch"`
	LeaseOwner     int    `json:"lease_owner"`
	LeaseEpoch     uint64 `json:"lease_epoch"`
	PeerHeartbeats bool   `json:"peer_heartbeats"`
	Mailbox        string `json:"mailbox"`
}

var httpc = &http.Client{Timeout: 2 * time.Second}

// Status reads /status.
func (n *Node) Status() (Status, error) {
	var s Status
	resp, err := httpc.Get("http://" + n.Metrics + "/status")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("node %d /status: %s", n.ID, resp.Status)
	}
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

// Switchover posts /switchover?to=to.
func (n *Node) Switchover(to int) error {
	resp, err := httpc.Post(fmt.Sprintf("http://%s/switchover?to=%d", n.Metrics, to), "text/plain", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("switchover: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	return nil
}

// WaitStatus polls /status every 10 ms until cond holds.
func (n *Node) WaitStatus(d time.Duration, what string, cond func(Status) bool) (Status, error) {
	deadline := time.Now().Add(d)
	var last string
	for {
		if !n.Running() {
			return Status{}, fmt.Errorf("node %d exited while waiting to %s; log %s", n.ID, what, n.LogPath)
		}
		s, err := n.Status()
		if err == nil && cond(s) {
			return s, nil
		}
		if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprintf("%+v", s)
		}
		if time.Now().After(deadline) {
			return s, fmt.Errorf("node %d did not %s within %v (last: %s); log %s", n.ID, what, d, last, n.LogPath)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// --- log parsing ---

// LogLine is one slog text line.
type LogLine struct {
	Time  time.Time
	Msg   string
	Attrs map[string]string
}

// ParseLog reads the slog text lines (time=... level=... msg=...) of path.
func ParseLog(path string) ([]LogLine, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []LogLine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "time=") {
			continue
		}
		attrs := parseAttrs(line)
		t, err := time.Parse(time.RFC3339Nano, attrs["time"])
		if err != nil {
			continue
		}
		out = append(out, LogLine{Time: t, Msg: attrs["msg"], Attrs: attrs})
	}
	return out, sc.Err()
}

// parseAttrs splits key=value pairs, values optionally "quoted".
func parseAttrs(s string) map[string]string {
	m := map[string]string{}
	for len(s) > 0 {
		s = strings.TrimLeft(s, " ")
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			break
		}
		k := s[:eq]
		s = s[eq+1:]
		var v string
		if strings.HasPrefix(s, `"`) {
			// Find the closing quote, skipping escaped ones.
			i := 1
			for i < len(s) && s[i] != '"' {
				if s[i] == '\\' {
					i++
				}
				i++
			}
			if i >= len(s) {
				i = len(s) - 1
			}
			if u, err := strconv.Unquote(s[:i+1]); err == nil {
				v = u
			} else {
				v = s[1:i]
			}
			s = s[i+1:]
		} else {
			sp := strings.IndexByte(s, ' ')
			if sp < 0 {
				sp = len(s)
			}
			v, s = s[:sp], s[sp:]
		}
		m[k] = v
	}
	return m
}

// Level returns the line's level (INFO, WARN, ERROR...).
func (l LogLine) Level() string { return l.Attrs["level"] }

// FirstAfter returns the first line at or after t (to the log's millisecond
// precision) for which match holds.
func FirstAfter(lines []LogLine, t time.Time, match func(LogLine) bool) (LogLine, bool) {
	t = t.Truncate(time.Millisecond)
	for _, l := range lines {
		if !l.Time.Before(t) && match(l) {
			return l, true
		}
	}
	return LogLine{}, false
}

// Is matches a log message.
func Is(msg string) func(LogLine) bool { return func(l LogLine) bool { return l.Msg == msg } }

// RoleTo matches a role change to role.
func RoleTo(role string) func(LogLine) bool {
	return func(l LogLine) bool { return l.Msg == "role change" && l.Attrs["to"] == role }
}

// The log messages the parts are read from (cmd/hanfsd/cluster/node.go).
const (
	MsgProbing  = "heartbeats from the primary stopped: probing it through the disk mailbox"
	MsgServing  = "serving NFS"
	MsgReleased = "lease released"
)

// --- a small pipelined NFSv3 client ---

const (
	progNFS     = 100003
	progMount   = 100005
	vers3       = 3
	procGetattr = 1
	procWrite   = 7
	procCreate  = 8
	procMkdir   = 9
	mntMnt      = 1
	// FileSync is stable_how FILE_SYNC.
	FileSync = 2
)

// Client is an NFSv3 client over one TCP connection; any number of
// goroutines may have calls in flight, matched by xid.
type Client struct {
	nc   net.Conn
	cred *rpcwire.AuthUnix
	xid  atomic.Uint32
	wmu  sync.Mutex

	mu      sync.Mutex
	pending map[uint32]chan []byte
	err     error
	done    chan struct{}
}

// Dial connects to addr within timeout.
func Dial(addr string, timeout time.Duration) (*Client, error) {
	nc, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	nc.(*net.TCPConn).SetNoDelay(true)
	c := &Client{nc: nc, cred: &rpcwire.AuthUnix{Stamp: uint32(time.Now().Unix()), Machine: "bench-ha"},
		pending: map[uint32]chan []byte{}, done: make(chan struct{})}
	c.xid.Store(rand.Uint32())
	go c.receive()
	return c, nil
}

// Close closes the connection.
func (c *Client) Close() error {
	err := c.nc.Close()
	<-c.done
	return err
}

func (c *Client) receive() {
	defer close(c.done)
	rr := rpcwire.NewRecordReader(bufio.NewReaderSize(c.nc, 64<<10), 0)
	var err error
	for {
		var rec []byte
		if rec, err = rr.Append(nil); err != nil {
			break
		}
		if len(rec) < 4 {
			err = errors.New("short reply")
			break
		}
		xid := uint32(rec[0])<<24 | uint32(rec[1])<<16 | uint32(rec[2])<<8 | uint32(rec[3])
		c.mu.Lock()
		ch := c.pending[xid]
		delete(c.pending, xid)
		c.mu.Unlock()
		if ch != nil {
			ch <- rec
		}
	}
	c.mu.Lock()
	if c.err == nil {
		c.err = fmt.Errorf("connection: %w", err)
	}
	for x, ch := range c.pending {
		delete(c.pending, x)
		close(ch)
	}
	c.mu.Unlock()
}

// Call sends one call and returns the reply's result body. A timeout
// closes the connection.
func (c *Client) Call(prog, proc uint32, args []byte, timeout time.Duration) (*rpcwire.Decoder, error) {
	xid := c.xid.Add(1)
	rec := rpcwire.BuildCall(xid, prog, vers3, proc, c.cred, args)
	ch := make(chan []byte, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, err
	}
	c.pending[xid] = ch
	c.mu.Unlock()
	c.wmu.Lock()
	err := rpcwire.WriteRecord(c.nc, rec)
	c.wmu.Unlock()
	if err != nil {
		c.nc.Close()
		return nil, err
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	var reply []byte
	select {
	case r, ok := <-ch:
		if !ok {
			c.mu.Lock()
			err := c.err
			c.mu.Unlock()
			return nil, err
		}
		reply = r
	case <-t.C:
		c.nc.Close()
		return nil, fmt.Errorf("no reply within %v", timeout)
	}
	r, err := rpcwire.ParseReply(reply)
	if err != nil {
		return nil, err
	}
	if !r.Accepted || r.AcceptStat != rpcwire.Success {
		return nil, fmt.Errorf("RPC reply accepted=%v accept_stat=%v", r.Accepted, r.AcceptStat)
	}
	return rpcwire.NewDecoder(r.Body), nil
}

// StatusError is an error status in an NFS or MOUNT reply: the server
// answered, and said no.
type StatusError struct {
	What   string
	Status uint32
}

func (e *StatusError) Error() string { return fmt.Sprintf("%s: status %d", e.What, e.Status) }

func nfsStatus(d *rpcwire.Decoder, what string) error {
	st, err := d.Uint32()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if st != 0 {
		return &StatusError{What: what, Status: st}
	}
	return nil
}

// Mount mounts path and returns its handle.
func (c *Client) Mount(path string) ([]byte, error) {
	e := rpcwire.NewEncoder(nil)
	e.String(path)
	d, err := c.Call(progMount, mntMnt, e.Bytes(), 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("MNT %s: %w", path, err)
	}
	if err := nfsStatus(d, "MNT "+path); err != nil {
		return nil, err
	}
	return d.Opaque(64)
}

// Getattr checks that GETATTR of fh succeeds.
func (c *Client) Getattr(fh []byte, timeout time.Duration) error {
	e := rpcwire.NewEncoder(nil)
	e.Opaque(fh)
	d, err := c.Call(progNFS, procGetattr, e.Bytes(), timeout)
	if err != nil {
		return fmt.Errorf("GETATTR: %w", err)
	}
	return nfsStatus(d, "GETATTR")
}

func putSattrMode(e *rpcwire.Encoder, mode uint32) {
	e.Bool(true)
	e.Uint32(mode)
	e.Bool(false) // uid
	e.Bool(false) // gid
	e.Bool(false) // size
	e.Uint32(0)   // atime: don't change
	e.Uint32(0)   // mtime: don't change
}

func createdHandle(d *rpcwire.Decoder, what string) ([]byte, error) {
	if err := nfsStatus(d, what); err != nil {
		return nil, err
	}
	ok, err := d.Bool()
	if err != nil || !ok {
		return nil, fmt.Errorf("%s: no handle in the reply (%v)", what, err)
	}
	return d.Opaque(64)
}

// Mkdir makes directory name in dir.
func (c *Client) Mkdir(dir []byte, name string) ([]byte, error) {
	e := rpcwire.NewEncoder(nil)
	e.Opaque(dir)
	e.String(name)
	putSattrMode(e, 0o755)
	d, err := c.Call(progNFS, procMkdir, e.Bytes(), 30*time.Second)
	if err != nil {
		return nil, fmt.Errorf("MKDIR %s: %w", name, err)
	}
	return createdHandle(d, "MKDIR "+name)
}

// Create makes regular file name in dir (UNCHECKED).
func (c *Client) Create(dir []byte, name string) ([]byte, error) {
	e := rpcwire.NewEncoder(nil)
	e.Opaque(dir)
	e.String(name)
	e.Uint32(0) // UNCHECKED
	putSattrMode(e, 0o644)
	d, err := c.Call(progNFS, procCreate, e.Bytes(), 30*time.Second)
	if err != nil {
		return nil, fmt.Errorf("CREATE %s: %w", name, err)
	}
	return createdHandle(d, "CREATE "+name)
}

// Write writes data at off with FILE_SYNC and checks the reply.
func (c *Client) Write(fh []byte, off uint64, data []byte) error {
	e := rpcwire.NewEncoder(nil)
	e.Opaque(fh)
	e.Uint64(off)
	e.Uint32(uint32(len(data)))
	e.Uint32(FileSync)
	e.Opaque(data)
	d, err := c.Call(progNFS, procWrite, e.Bytes(), 30*time.Second)
	if err != nil {
		return fmt.Errorf("WRITE: %w", err)
	}
	if err := nfsStatus(d, "WRITE"); err != nil {
		return err
	}
	// wcc_data, count, committed
	if ok, err := d.Bool(); err != nil {
		return err
	} else if ok {
		d.FixedOpaque(24)
	}
	if ok, err := d.Bool(); err != nil {
		return err
	} else if ok {
		d.FixedOpaque(84)
	}
	n, err := d.Uint32()
	if err != nil {
		return err
	}
	committed, err := d.Uint32()
	if err != nil {
		return err
	}
	if int(n) != len(data) || committed != FileSync {
		return fmt.Errorf("WRITE: wrote %d of %d bytes, committed %d", n, len(data), committed)
	}
	return nil
}

// --- the GETATTR poller ---

// Reply is one successful GETATTR of the poller.
type Reply struct {
	At       time.Time // when the reply arrived
	ConnAt   time.Time // when its connection was established
	Attempts int       // calls and dials since the previous success
}

// Poller sends GETATTR on the root handle every Interval, over one
// connection, reconnecting (without MNT: the handle is stable) whenever the
// connection fails.
type Poller struct {
	Addr     string
	Root     []byte
	Interval time.Duration
	Timeout  time.Duration

	ch   chan Reply
	stop chan struct{}
	wg   sync.WaitGroup
}

// StartPoller starts polling.
func StartPoller(addr string, root []byte) *Poller {
	p := &Poller{Addr: addr, Root: root, Interval: 10 * time.Millisecond, Timeout: time.Second,
		ch: make(chan Reply, 4096), stop: make(chan struct{})}
	p.wg.Add(1)
	go p.run()
	return p
}

func (p *Poller) run() {
	defer p.wg.Done()
	var c *Client
	var connAt time.Time
	attempts := 0
	tick := time.NewTicker(p.Interval)
	defer tick.Stop()
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	for {
		select {
		case <-p.stop:
			return
		case <-tick.C:
		}
		attempts++
		if c == nil {
			var err error
			if c, err = Dial(p.Addr, 200*time.Millisecond); err != nil {
				c = nil
				continue
			}
			connAt = time.Now()
		}
		if err := c.Getattr(p.Root, p.Timeout); err != nil {
			c.Close()
			c = nil
			continue
		}
		select {
		case p.ch <- Reply{At: time.Now(), ConnAt: connAt, Attempts: attempts}:
		default: // nobody reads: drop
		}
		attempts = 0
	}
}

// Drain discards the replies so far.
func (p *Poller) Drain() {
	for {
		select {
		case <-p.ch:
		default:
			return
		}
	}
}

// FirstOnNewConn waits for the first reply on a connection established
// after t.
func (p *Poller) FirstOnNewConn(t time.Time, timeout time.Duration) (Reply, error) {
	deadline := time.After(timeout)
	for {
		select {
		case r := <-p.ch:
			if r.ConnAt.After(t) {
				return r, nil
			}
		case <-deadline:
			return Reply{}, fmt.Errorf("no GETATTR reply on a new connection within %v", timeout)
		}
	}
}

// Recent waits for a reply that arrived after t.
func (p *Poller) Recent(t time.Time, timeout time.Duration) error {
	deadline := time.After(timeout)
	for {
		select {
		case r := <-p.ch:
			if r.At.After(t) {
				return nil
			}
		case <-deadline:
			return fmt.Errorf("no GETATTR reply within %v", timeout)
		}
	}
}

// Stop stops the poller.
func (p *Poller) Stop() {
	close(p.stop)
	p.wg.Wait()
}

// --- statistics ---

// Median returns the median of ds.
func Median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Max returns the largest of ds.
func Max(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}

// MedianF returns the median of fs.
func MedianF(fs []float64) float64 {
	if len(fs) == 0 {
		return 0
	}
	s := append([]float64(nil), fs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Ms formats d in milliseconds.
func Ms(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }
