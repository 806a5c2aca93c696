package test

// A real Linux NFSv3 client (Debian's kernel in a qemu VM, driven by
// testdata/kclient/kclient, a copy of ../shared/tools/kclient) runs a workload
// on a hard mount of a `hanfsd serve` process while the test kills that process
// with SIGKILL and starts a new one on the same disk and port, twice. The
// workload must finish with no error.

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// kcGoTool finds the go command that builds hanfsd.
func kcGoTool(t testing.TB) string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	for _, p := range []string{filepath.Join(runtime.GOROOT(), "bin", "go"), "/usr/local/go/bin/go"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatal("cannot find the go command to build hanfsd (not in PATH, GOROOT or /usr/local/go/bin)")
	return ""
}

// kcBuildHanfsd builds cmd/hanfsd from this checkout into a temporary directory.
func kcBuildHanfsd(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "hanfsd")
	cmd := exec.Command(kcGoTool(t), "build", "-o", bin, "./cmd/hanfsd")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/hanfsd: %v\n%s", err, out)
	}
	return bin
}

// kcFreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func kcFreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// kcServer runs `hanfsd serve` on one disk and port, and can kill -9 and
// restart it. Everything each process prints goes to one log file, shown when
// the test fails.
type kcServer struct {
	t       testing.TB
	bin     string
	disk    string
	port    int
	logPath string

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	starts int
}

// kcNewServer formats a fresh image of the given size and returns a server for
// it (not started). The server is killed at cleanup and its log is shown if
// the test failed.
func kcNewServer(t testing.TB, bin, size string) *kcServer {
	t.Helper()
	dir := t.TempDir()
	s := &kcServer{t: t, bin: bin, disk: filepath.Join(dir, "hanfs.img"), port: kcFreePort(t),
		logPath: filepath.Join(dir, "hanfsd.log")}
	if out, err := exec.Command(bin, "format", "--disk", s.disk, "--size", size).CombinedOutput(); err != nil {
		t.Fatalf("hanfsd format: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		s.kill()
		if t.Failed() {
			s.dumpLog()
		}
	})
	return s
}

func (s *kcServer) addr() string { return fmt.Sprintf("127.0.0.1:%d", s.port) }

func (s *kcServer) dumpLog() {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		s.t.Logf("hanfsd log: %v", err)
		return
	}
	if len(b) > 64<<10 {
		b = append([]byte("...\n"), b[len(b)-64<<10:]...)
	}
	s.t.Logf("hanfsd log (%s):\n%s", s.logPath, b)
}

// logNotable logs the lines of the server log that tell how each start went
// (role changes, when it served, warnings and errors).
func (s *kcServer) logNotable() {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return
	}
	var keep []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "===") || strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") ||
			strings.Contains(l, "role change") || strings.Contains(l, "serving") {
			keep = append(keep, l)
		}
	}
	s.t.Logf("hanfsd log, notable lines:\n%s", strings.Join(keep, "\n"))
}

// start starts a new `hanfsd serve` process and waits until it accepts TCP
// connections; it returns how long that took.
func (s *kcServer) start() time.Duration {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		s.t.Fatal("kcServer.start: already running")
	}
	s.starts++
	lf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	fmt.Fprintf(lf, "=== start %d at %s ===\n", s.starts, time.Now().Format("15:04:05.000"))
	cmd := exec.Command(s.bin, "serve", "--disk", s.disk, "--listen", s.addr(),
		"--export", "/ 127.0.0.0/8 rw,no_root_squash")
	cmd.Stdout, cmd.Stderr = lf, lf
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		lf.Close()
		s.t.Fatalf("start hanfsd: %v", err)
	}
	done := make(chan struct{})
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(lf, "=== process %d ended: %v ===\n", cmd.Process.Pid, err)
		lf.Close()
		close(done)
	}()
	s.cmd, s.done = cmd, done
	for {
		c, err := net.DialTimeout("tcp", s.addr(), time.Second)
		if err == nil {
			c.Close()
			return time.Since(t0)
		}
		select {
		case <-done:
			s.cmd = nil
			s.dumpLog()
			s.t.Fatalf("hanfsd serve exited before listening on %s (%v)", s.addr(), cmd.ProcessState)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Since(t0) > 30*time.Second {
			s.t.Fatalf("hanfsd serve not listening on %s after 30 s", s.addr())
		}
	}
}

// kill9 kills the running process with SIGKILL and waits for it to be gone.
func (s *kcServer) kill9() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		s.t.Fatal("kcServer.kill9: not running")
	}
	select {
	case <-s.done:
		s.t.Errorf("hanfsd had already exited before the kill: %v", s.cmd.ProcessState)
	default:
		_ = s.cmd.Process.Signal(syscall.SIGKILL)
		<-s.done
	}
	s.cmd = nil
}

// stop stops the running process with SIGTERM (a clean shutdown) and returns
// its exit error.
func (s *kcServer) stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return errors.New("not running")
	}
	cmd, done := s.cmd, s.done
	s.cmd = nil
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		if st := cmd.ProcessState; st != nil && !st.Success() {
			return fmt.Errorf("exit status: %v", st)
		}
		return nil
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-done
		return errors.New("did not stop within 20 s of SIGTERM (killed)")
	}
}

// kill is the cleanup: SIGKILL whatever is running.
func (s *kcServer) kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		_ = s.cmd.Process.Signal(syscall.SIGKILL)
		<-s.done
		s.cmd = nil
	}
}

// fsck runs `hanfsd fsck` on the (stopped) server's disk.
func (s *kcServer) fsck() {
	s.t.Helper()
	out, err := exec.Command(s.bin, "fsck", "--disk", s.disk).CombinedOutput()
	if err != nil {
		s.t.Errorf("hanfsd fsck after the run: %v\n%s", err, out)
		return
	}
	s.t.Logf("hanfsd fsck: clean")
}

// kcKclient returns the kclient harness, running `kclient --setup` first when
// its cache (kernel and initramfs) or qemu are missing. It skips the test when
// qemu cannot be made to run here.
func kcKclient(t *testing.T) string {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skipf("kernel-client test needs Linux to run qemu (GOOS=%s)", runtime.GOOS)
	}
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("kernel-client test skipped: kclient needs bash")
	}
	kc := os.Getenv("HANFS_KCLIENT")
	if kc == "" {
		p, err := filepath.Abs(filepath.Join("testdata", "kclient", "kclient"))
		if err != nil {
			t.Fatal(err)
		}
		kc = p
	}
	if _, err := os.Stat(kc); err != nil {
		t.Fatalf("kclient harness: %v", err)
	}
	cache := os.Getenv("KCLIENT_CACHE")
	if cache == "" {
		cache = "/tmp/kclient-cache"
	}
	ready := func() bool {
		for _, f := range []string{"vmlinuz", "base.cpio.gz", "stamp"} {
			if _, err := os.Stat(filepath.Join(cache, f)); err != nil {
				return false
			}
		}
		for _, c := range []string{"qemu-system-x86_64", "socat"} {
			if _, err := exec.LookPath(c); err != nil {
				return false
			}
		}
		return true
	}
	if !ready() {
		if os.Geteuid() != 0 {
			t.Skipf("kernel-client test skipped: qemu or the kclient cache (%s) is missing and `kclient --setup` needs root to apt-get install qemu-system-x86, busybox-static, cpio, socat", cache)
		}
		t.Logf("kclient cache %s or qemu missing: running `kclient --setup` (apt-get, kernel download; takes a few minutes)", cache)
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		t0 := time.Now()
		out, err := exec.CommandContext(ctx, kc, "--setup").CombinedOutput()
		if err != nil || !ready() {
			t.Skipf("kernel-client test skipped: `kclient --setup` failed, so qemu cannot run here (%v):\n%s", err, kcTail(out, 40))
		}
		t.Logf("kclient --setup took %s", time.Since(t0).Round(time.Second))
	}
	if out, err := exec.Command("qemu-system-x86_64", "--version").CombinedOutput(); err != nil {
		t.Skipf("kernel-client test skipped: qemu-system-x86_64 cannot run: %v\n%s", err, out)
	}
	return kc
}

func kcTail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// kcMakeTree writes a gzipped tarball of GOROOT/src/<sub> (regular files and
// directories, with plain names only) and the list "sha256  path" of its
// files sorted by path bytes, as the guest's
// `find | LC_ALL=C sort | xargs sha256sum` prints it.
func kcMakeTree(t *testing.T, sub, tgz, sums string) (files int, nbytes int64) {
	t.Helper()
	out, err := exec.Command(kcGoTool(t), "env", "GOROOT").Output()
	if err != nil {
		t.Fatalf("go env GOROOT: %v", err)
	}
	base := filepath.Join(strings.TrimSpace(string(out)), "src")
	plain := regexp.MustCompile(`^[A-Za-z0-9._/+-]+$`)
	f, err := os.Create(tgz)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zw := gzip.NewWriter(f)
	tw := tar.NewWriter(zw)
	var list []string
	err = filepath.WalkDir(filepath.Join(base, sub), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(base, p)
		if !plain.MatchString(rel) || len(rel) > 95 {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if !d.IsDir() && !info.Mode().IsRegular() {
			return nil
		}
		hdr := &tar.Header{Name: rel, Mode: int64(info.Mode().Perm()), ModTime: info.ModTime(), Format: tar.FormatUSTAR}
		if d.IsDir() {
			hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeDir, rel+"/", 0o755
			return tw.WriteHeader(hdr)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		hdr.Typeflag, hdr.Size, hdr.Mode = tar.TypeReg, int64(len(data)), 0o644
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
		h := sha256.Sum256(data)
		list = append(list, rel+"\x00"+hex.EncodeToString(h[:]))
		files++
		nbytes += int64(len(data))
		return nil
	})
	if err == nil {
		err = tw.Close()
	}
	if err == nil {
		err = zw.Close()
	}
	if err != nil {
		t.Fatalf("tarball of %s: %v", sub, err)
	}
	sort.Strings(list) // NUL separator: sorts by path bytes first
	var sb strings.Builder
	for _, e := range list {
		name, sum, _ := strings.Cut(e, "\x00")
		fmt.Fprintf(&sb, "%s  %s\n", sum, name)
	}
	if err := os.WriteFile(sums, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return files, nbytes
}

// kcGroupKill ends a process group started with Setpgid: SIGTERM first (so
// that kclient's trap stops qemu and removes its run directory), SIGKILL after
// a grace period.
func kcGroupKill(cmd *exec.Cmd, exited <-chan struct{}) {
	if cmd.Process == nil {
		return
	}
	select {
	case <-exited:
		return
	default:
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}

type kcKill struct {
	at      time.Time     // when SIGKILL was sent
	down    time.Duration // how long the port stayed closed (kill to listening again)
	trigger string
}

func TestKernelClientWorkloadSurvivesKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("kernel-client test skipped in -short mode")
	}
	kc := kcKclient(t)
	tStart := time.Now()
	bin := kcBuildHanfsd(t)
	srv := kcNewServer(t, bin, "4GiB")

	dir := t.TempDir()
	tgz, sums := filepath.Join(dir, "src.tgz"), filepath.Join(dir, "src.sums")
	nf, nb := kcMakeTree(t, "net", tgz, sums)
	t.Logf("workload tree: GOROOT/src/net, %d files, %.1f MiB", nf, float64(nb)/(1<<20))
	script, err := filepath.Abs(filepath.Join("testdata", "kclient-workload.sh"))
	if err != nil {
		t.Fatal(err)
	}

	srv.start()
	t.Logf("hanfsd serving on %s", srv.addr())

	const (
		vmTimeout          = 300 // kclient's own wall-clock limit, seconds
		firstKill          = 3 * time.Second
		secondKillFallback = 60 * time.Second // after the first restart, if no checksum pass starts
		downtime           = 1 * time.Second  // server down before restart
		overall            = 330 * time.Second
	)
	port := strconv.Itoa(srv.port)
	cmd := exec.Command(kc, "--port", port, "--mountport", port, "--export", "/",
		"--opts", "hard,timeo=10,retrans=3", "--timeout", strconv.Itoa(vmTimeout),
		"--file", tgz, "--file", sums, "--env", "MINSECS=25", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start kclient: %v", err)
	}
	exited := make(chan struct{})
	t.Cleanup(func() { kcGroupKill(cmd, exited) })

	lines := make(chan string, 4096)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()

	var (
		guest      []string
		kills      []kcKill
		killTimer  <-chan time.Time
		trigger    string
		lastReady  time.Time
		doneAt     time.Time // when WORKLOAD-DONE arrived
		deadline   = time.After(overall)
		sawUntar   bool
		timedOut   bool
		killServer = func() {
			k := kcKill{at: time.Now(), trigger: trigger}
			srv.kill9()
			time.Sleep(downtime)
			srv.start()
			lastReady = time.Now()
			k.down = lastReady.Sub(k.at)
			kills = append(kills, k)
			t.Logf("host: kill -9 #%d (%s) at +%.1fs; hanfsd listening again after %s",
				len(kills), k.trigger, k.at.Sub(tStart).Seconds(), k.down.Round(time.Millisecond))
			killTimer = nil
			if len(kills) == 1 {
				// Normally replaced by "1 s into a checksum pass" below.
				trigger = "60 s after the first restart"
				killTimer = time.After(secondKillFallback)
			}
		}
	)
loop:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				break loop
			}
			guest = append(guest, l)
			t.Logf("guest: %s", l)
			switch {
			case strings.HasPrefix(l, "UNTAR-START") && !sawUntar:
				sawUntar = true
				trigger = "3 s into the untar"
				killTimer = time.After(firstKill)
			case strings.HasPrefix(l, "SUM-START") && len(kills) == 1 && killTimer != nil:
				trigger = "1 s into a checksum pass"
				killTimer = time.After(time.Second)
			case strings.HasPrefix(l, "WORKLOAD-DONE"):
				doneAt = time.Now()
				killTimer = nil
			}
		case <-killTimer:
			killServer()
		case <-deadline:
			timedOut = true
			t.Errorf("overall timeout: no result after %s; stopping the VM", overall)
			kcGroupKill(cmd, exited)
			deadline = nil
		}
	}
	werr := cmd.Wait()
	close(exited)
	elapsed := time.Since(tStart)
	if s := strings.TrimSpace(stderr.String()); s != "" {
		t.Logf("kclient stderr:\n%s", s)
	}

	rc := 0
	var ee *exec.ExitError
	if errors.As(werr, &ee) {
		rc = ee.ExitCode()
	} else if werr != nil {
		t.Fatalf("kclient: %v", werr)
	}
	for _, l := range guest {
		if strings.HasPrefix(l, "HEARTBEAT ") || strings.HasPrefix(l, "STALL ") {
			t.Logf("outage seen by the client: %s", l)
		}
	}
	for i, k := range kills {
		t.Logf("kill #%d (%s): server down for %s (kill to listening)", i+1, k.trigger, k.down.Round(time.Millisecond))
	}
	switch {
	case timedOut:
	case rc == 124:
		t.Errorf("kclient timed out (exit 124) after %ds: the workload hung", vmTimeout)
	case rc == 125:
		t.Errorf("kclient exit 125: the VM failed before the workload started (boot or mount failed; see stderr above)")
	case rc != 0:
		t.Errorf("guest workload failed with exit status %d (see the guest lines above)", rc)
	}
	if !kcHasLine(guest, "WORKLOAD-OK") && rc == 0 {
		t.Errorf("guest script exited 0 without printing WORKLOAD-OK")
	}
	if len(kills) != 2 {
		t.Errorf("the server was killed %d times during the workload, want 2", len(kills))
	} else if !doneAt.IsZero() && doneAt.Before(lastReady) {
		t.Errorf("the workload finished before the second restart; raise MINSECS")
	}

	if err := srv.stop(); err != nil {
		t.Errorf("hanfsd did not stop cleanly on SIGTERM: %v", err)
	}
	if !t.Failed() {
		srv.logNotable()
	}
	srv.fsck()
	t.Logf("kernel-client test: %s in all (server starts: %d)", elapsed.Round(100*time.Millisecond), srv.starts)
}

func kcHasLine(lines []string, prefix string) bool {
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}
