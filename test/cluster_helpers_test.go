// Package test holds end-to-end tests that run real hanfsd processes.
//
// This file has the shared process helpers: the hanfsd binary is built once
// per test run (TestMain removes it), images are formatted in t.TempDir(), and
// every process a test starts is killed and reaped in t.Cleanup. A process's
// log is printed when its test fails, and a test fails when the log shows a
// panic.
//
// Only one TestMain may exist in the package: it is here. Tests that need
// process-wide setup add it to TestMain rather than defining another.
package test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binDir holds the hanfsd binary built for this run.
var binDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// repoRoot returns the root of the repository (the parent of test/).
func repoRoot() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return ".."
	}
	return filepath.Dir(filepath.Dir(file))
}

// goTool finds the go command: the toolchain's own, from `go env GOROOT`.
func goTool() (string, error) {
	var cands []string
	if p, err := exec.LookPath("go"); err == nil {
		if out, err := exec.Command(p, "env", "GOROOT").Output(); err == nil {
			cands = append(cands, filepath.Join(strings.TrimSpace(string(out)), "bin", "go"))
		}
		cands = append(cands, p)
	}
	if g := os.Getenv("GOROOT"); g != "" {
		cands = append(cands, filepath.Join(g, "bin", "go"))
	}
	cands = append(cands, "/usr/local/go/bin/go")
	for _, c := range cands {
		if st, err := os.Stat(c); err == nil && !st.IsDir() {
			return c, nil
		}
	}
	return "", errors.New("no go command found (install Go 1.26 in /usr/local/go or put it in PATH)")
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// hanfsdBin returns the path of a hanfsd binary built from this tree, once
// per test run. HANFS_TEST_BIN names a prebuilt binary instead.
func hanfsdBin(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("HANFS_TEST_BIN"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		gocmd, err := goTool()
		if err != nil {
			buildErr = err
			return
		}
		dir, err := os.MkdirTemp("", "hanfs-test-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binDir = dir
		out := filepath.Join(dir, "hanfsd")
		cmd := exec.Command(gocmd, "build", "-o", out, "./cmd/hanfsd")
		cmd.Dir = repoRoot()
		if b, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/hanfsd: %v\n%s", err, b)
			return
		}
		builtBin = out
	})
	if buildErr != nil {
		if strings.Contains(buildErr.Error(), "no go command") {
			t.Skipf("cannot build hanfsd: %v", buildErr)
		}
		t.Fatalf("cannot build hanfsd: %v", buildErr)
	}
	return builtBin
}

// newImage formats a fresh 1 GiB sparse image in t.TempDir() and returns its path.
func newImage(t testing.TB) string {
	t.Helper()
	bin := hanfsdBin(t)
	img := filepath.Join(t.TempDir(), "hanfs.img")
	out, err := exec.Command(bin, "format", "--disk", img, "--size", "1GiB").CombinedOutput()
	if err != nil {
		t.Fatalf("hanfsd format: %v\n%s", err, out)
	}
	return img
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Server is one hanfsd serve instance on an image: it can be killed and
// restarted on the same image, like a node that crashes and comes back.
type Server struct {
	t    testing.TB
	bin  string
	Img  string
	Addr string // 127.0.0.1:port; kept across restarts when the port is free
	// Args are the extra serve flags of every start (e.g. --export ...).
	Args []string

	logs *syncBuffer // every start's output, in order
	gen  int

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
}

// ServeOpt changes how a server is started.
type ServeOpt func(*Server)

// WithExport adds an --export "SPEC" flag.
func WithExport(spec string) ServeOpt {
	return func(s *Server) { s.Args = append(s.Args, "--export", spec) }
}

// DefaultExport is the export most tests use: the whole store to loopback
// clients, read-write, root not squashed.
const DefaultExport = "/ 127.0.0.0/8 rw,no_root_squash"

// StartServer starts hanfsd serve on img with opts (DefaultExport when no
// export is given) and waits until it accepts connections.
func StartServer(t testing.TB, img string, opts ...ServeOpt) *Server {
	t.Helper()
	s := &Server{t: t, bin: hanfsdBin(t), Img: img, logs: &syncBuffer{}}
	for _, o := range opts {
		o(s)
	}
	hasExport := false
	for _, a := range s.Args {
		if a == "--export" {
			hasExport = true
		}
	}
	if !hasExport {
		s.Args = append(s.Args, "--export", DefaultExport)
	}
	t.Cleanup(func() {
		s.Kill()
		logs := s.logs.String()
		if strings.Contains(logs, "panic") {
			t.Errorf("hanfsd on %s logged a panic", filepath.Base(s.Img))
		}
		if t.Failed() {
			if len(logs) > 64<<10 {
				logs = "...\n" + logs[len(logs)-64<<10:]
			}
			t.Logf("hanfsd log (%s):\n%s", s.Img, logs)
		}
	})
	s.Start()
	return s
}

// freePort picks a free TCP port on 127.0.0.1.
func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("pick a port: %v", err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// Start starts the process (it must not be running) with s.Args plus extra,
// and waits until its port accepts connections. It picks a new port when the
// old one cannot be bound.
func (s *Server) Start(extra ...string) {
	s.t.Helper()
	if s.Running() {
		s.t.Fatal("hanfsd is already running")
	}
	for attempt := 0; ; attempt++ {
		if s.Addr == "" || attempt > 0 {
			s.Addr = freePort(s.t)
		}
		from := len(s.logs.String())
		err := s.startOnce(extra)
		if err == nil {
			return
		}
		if attempt < 5 && strings.Contains(s.logs.String()[from:], "address already in use") {
			continue
		}
		s.t.Fatalf("start hanfsd: %v", err)
	}
}

func (s *Server) startOnce(extra []string) error {
	s.gen++
	args := append([]string{"serve", "--disk", s.Img, "--listen", s.Addr}, s.Args...)
	args = append(args, extra...)
	// HANFS_TEST_SERVE_ARGS adds flags to every serve, e.g. timing flags on
	// a loaded machine.
	args = append(args, strings.Fields(os.Getenv("HANFS_TEST_SERVE_ARGS"))...)
	fmt.Fprintf(s.logs, "=== start %d: hanfsd %s\n", s.gen, strings.Join(quoteArgs(args), " "))
	cmd := exec.Command(s.bin, args...)
	cmd.Stdout = s.logs
	cmd.Stderr = s.logs
	// The server dies with the test binary, even if the test is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	s.mu.Lock()
	s.cmd, s.done, s.waitErr = cmd, done, nil
	s.mu.Unlock()
	go func() {
		err := cmd.Wait()
		s.mu.Lock()
		s.waitErr = err
		s.mu.Unlock()
		fmt.Fprintf(s.logs, "=== exit %d: %v\n", s.gen, err)
		close(done)
	}()
	from := len(s.logs.String())
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return fmt.Errorf("hanfsd exited during startup: %v", s.exitErr())
		default:
		}
		if strings.Contains(s.logs.String()[from:], "address already in use") {
			s.Kill()
			return fmt.Errorf("hanfsd could not bind %s", s.Addr)
		}
		c, err := net.DialTimeout("tcp", s.Addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.Kill()
	return fmt.Errorf("hanfsd did not accept connections on %s within 20s", s.Addr)
}

func quoteArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, " \t") {
			a = strconv.Quote(a)
		}
		out[i] = a
	}
	return out
}

func (s *Server) exitErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.waitErr
}

// Running reports whether the current process is still alive.
func (s *Server) Running() bool {
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// Kill sends SIGKILL (kill -9) and reaps the process; a no-op if it is not running.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil || done == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// Stop sends SIGTERM and waits for a clean exit (journal checkpointed).
func (s *Server) Stop() {
	s.t.Helper()
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil || done == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		s.Kill()
		s.t.Fatal("hanfsd did not stop within 20s of SIGTERM")
	}
	if err := s.exitErr(); err != nil {
		s.t.Errorf("hanfsd exited with %v after SIGTERM", err)
	}
}

// Restart kills the process with SIGKILL (if running) and starts a new one
// on the same image with s.Args plus extra.
func (s *Server) Restart(extra ...string) {
	s.t.Helper()
	s.Kill()
	s.Start(extra...)
}

// WaitExit waits up to d for the process to exit and returns its exit code
// (-1 for death by a signal); it fails the test on timeout.
func (s *Server) WaitExit(d time.Duration) int {
	s.t.Helper()
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	if done == nil {
		s.t.Fatal("hanfsd was never started")
	}
	select {
	case <-done:
	case <-time.After(d):
		s.t.Fatalf("hanfsd still running after %v", d)
	}
	err := s.exitErr()
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	s.t.Fatalf("wait for hanfsd: %v", err)
	return -1
}

// Logs returns everything the server's processes printed so far.
func (s *Server) Logs() string { return s.logs.String() }

// Gen returns how many processes were started.
func (s *Server) Gen() int { return s.gen }
