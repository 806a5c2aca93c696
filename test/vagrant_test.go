package test

// Tests of the Vagrant lab and of deploy/: the Vagrantfile passes `vagrant
// validate`, and the provisioning scripts run on this machine into a scratch
// root (PREFIX, ETC_DIR, SYSTEMD_DIR, SKIP_SYSTEMCTL=1) with an image file as
// the shared disk and no virtual address: the disk is formatted once, the
// config they write starts a node that becomes primary, the unit passes
// systemd-analyze verify. Nothing here sends traffic anywhere but 127.0.0.1.
//
// Helpers are prefixed vg.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// vgRoot is the repository root (the parent of test/).
func vgRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot find the test's source file")
	}
	return filepath.Dir(filepath.Dir(file))
}

// vgGo finds the go command.
func vgGo(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/local/go/bin/go"); err == nil {
		return "/usr/local/go/bin/go"
	}
	t.Skip("no go command to build hanfsd with (install Go in /usr/local/go)")
	return ""
}

// vgBuild builds hanfsd from this tree into dir (HANFS_TEST_BIN names a
// prebuilt one instead) and returns its path.
func vgBuild(t testing.TB, dir string) string {
	t.Helper()
	if p := os.Getenv("HANFS_TEST_BIN"); p != "" {
		return p
	}
	out := filepath.Join(dir, "hanfsd")
	cmd := exec.Command(vgGo(t), "build", "-o", out, "./cmd/hanfsd")
	cmd.Dir = vgRoot(t)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/hanfsd: %v\n%s", err, b)
	}
	return out
}

// vgNeed skips the test when a command is missing.
func vgNeed(t testing.TB, cmds ...string) {
	t.Helper()
	for _, c := range cmds {
		if _, err := exec.LookPath(c); err != nil {
			t.Skipf("%s is not installed", c)
		}
	}
}

// vgFreePort returns a free TCP address on 127.0.0.1.
func vgFreePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// vgEnv is the environment for a deploy script: this process's, less any
// setting the scripts read, plus set.
func vgEnv(set map[string]string) []string {
	drop := map[string]bool{}
	for _, k := range []string{"NODE_ID", "DISK", "NODE_ADDR", "HEARTBEAT", "PEERS", "VIP", "VIP_DEV", "LISTEN",
		"METRICS", "EXPORTS", "FORMAT", "FORMAT_OPTS", "FORMAT_WAIT", "HANFSD_BIN", "HANFSD_OPTS", "DEPLOY_DIR",
		"PREFIX", "ETC_DIR", "SYSTEMD_DIR", "SKIP_SYSTEMCTL", "SERVER", "PORT", "EXPORT_PATH", "MOUNTPOINT",
		"MOUNT_OPTS", "MOUNT_WAIT", "FSTAB", "SKIP_APT", "SKIP_MOUNT"} {
		drop[k] = true
	}
	var env []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !drop[k] {
			env = append(env, kv)
		}
	}
	for k, v := range set {
		env = append(env, k+"="+v)
	}
	return env
}

// vgScript runs deploy/NAME with bash and env; it returns the combined output
// and the error.
func vgScript(t testing.TB, name string, env map[string]string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(vgRoot(t), "deploy", name))
	cmd.Env = vgEnv(env)
	cmd.Stdin = nil
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// vgSparse creates a sparse, all-zero image file of size bytes.
func vgSparse(t testing.TB, path string, size int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

var vgUUIDRe = regexp.MustCompile(`uuid ([0-9a-f-]{36})`)

// vgFsckUUID runs hanfsd fsck on disk, requires it clean, and returns the
// file system's UUID.
func vgFsckUUID(t testing.TB, bin, disk string) string {
	t.Helper()
	out, err := exec.Command(bin, "fsck", "--disk", disk).CombinedOutput()
	if err != nil {
		t.Fatalf("hanfsd fsck --disk %s: %v\n%s", disk, err, out)
	}
	m := vgUUIDRe.FindSubmatch(out)
	if m == nil {
		t.Fatalf("no uuid in the fsck report:\n%s", out)
	}
	return string(m[1])
}

// vgBuffer collects a process's output.
type vgBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *vgBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *vgBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// vgProc is a hanfsd process started by a test.
type vgProc struct {
	t    testing.TB
	cmd  *exec.Cmd
	out  *vgBuffer
	done chan struct{}
	err  error
}

// vgStart starts bin with args; the process is killed at the end of the test.
func vgStart(t testing.TB, bin string, args ...string) *vgProc {
	t.Helper()
	p := &vgProc{t: t, out: &vgBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("hanfsd %s output:\n%s", strings.Join(args, " "), p.out.String())
		}
	})
	return p
}

// stop sends SIGTERM and waits for a clean exit.
func (p *vgProc) stop(within time.Duration) {
	p.t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if p.err != nil {
			p.t.Errorf("hanfsd exited with %v after SIGTERM", p.err)
		}
	case <-time.After(within):
		p.t.Fatalf("hanfsd did not exit within %v of SIGTERM", within)
	}
}

type vgStatus struct {
	Node    int    `json:"node"`
	Role    string `json:"role"`
	Epoch   uint64 `json:"epoch"`
	Service string `json:"service"`
}

// vgWaitStatus polls http://addr/status until ok accepts it.
func vgWaitStatus(t testing.TB, p *vgProc, addr string, within time.Duration, ok func(vgStatus) bool) vgStatus {
	t.Helper()
	cl := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(within)
	var last vgStatus
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			t.Fatalf("hanfsd exited (%v) before its status was as expected:\n%s", p.err, p.out.String())
		default:
		}
		if resp, err := cl.Get("http://" + addr + "/status"); err == nil {
			var st vgStatus
			err = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			if err == nil {
				last = st
				if ok(st) {
					return st
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("status on %s not as expected within %v; last %+v", addr, within, last)
	return last
}

// vgServeOpts reads HANFSD_OPTS from an /etc/default/hanfsd file, split into
// words as systemd does for an unquoted $HANFSD_OPTS.
func vgServeOpts(t testing.TB, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "HANFSD_OPTS="); ok {
			return strings.Fields(strings.Trim(v, `"`))
		}
	}
	t.Fatalf("%s sets no HANFSD_OPTS", path)
	return nil
}

// vgConfig reads a hanfsd config file into key -> values.
func vgConfig(t testing.TB, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		k, v, _ := strings.Cut(strings.TrimSpace(line), " ")
		if k != "" {
			m[k] = append(m[k], strings.TrimSpace(v))
		}
	}
	return m
}

// The lab uses slow timings: the test machine may be loaded by other tests.
const vgTiming = "--lease-period 3s --io-timeout 600ms"

func TestVagrantValidate(t *testing.T) {
	if _, err := exec.LookPath("vagrant"); err != nil {
		t.Skip("vagrant is not installed (apt-get install vagrant)")
	}
	run := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "vagrant", args...)
		cmd.Dir = vgRoot(t)
		// Keep vagrant's machine state out of the work tree.
		cmd.Env = append(os.Environ(), "VAGRANT_DOTFILE_PATH="+t.TempDir(), "VAGRANT_CHECKPOINT_DISABLE=1",
			"VAGRANT_NO_COLOR=1", "HANFS_SKIP_BUILD=1")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run("validate")
	if err != nil && (strings.Contains(out, "No usable default provider") || strings.Contains(out, "could not be found") ||
		strings.Contains(out, "isn't usable")) {
		// No provider (vagrant-libvirt or VirtualBox) here: check the rest.
		t.Logf("vagrant validate: no usable provider on this machine; validating without provider config:\n%s", out)
		out, err = run("validate", "--ignore-provider")
	}
	if err != nil || !strings.Contains(out, "validated successfully") {
		t.Fatalf("vagrant validate: %v\n%s", err, out)
	}
	t.Logf("vagrant validate: %s", strings.TrimSpace(out))
}

func TestVagrantProvisionServer(t *testing.T) {
	vgNeed(t, "bash", "dd", "cmp", "install", "awk", "sed")
	tmp := t.TempDir()
	bin := vgBuild(t, tmp)
	root := filepath.Join(tmp, "root")
	disk := filepath.Join(tmp, "shared.img")
	vgSparse(t, disk, 256<<20)
	listen, metrics := vgFreePort(t), vgFreePort(t)
	env := map[string]string{
		"NODE_ID": "1", "DISK": disk, "FORMAT": "1", "FORMAT_OPTS": "--label vg-test",
		"NODE_ADDR": "127.0.0.1", "HEARTBEAT": "127.0.0.1:0", "VIP": "", "LISTEN": listen, "METRICS": metrics,
		"EXPORTS": "/ 127.0.0.0/8 rw,no_root_squash", "HANFSD_BIN": bin, "HANFSD_OPTS": vgTiming,
		"PREFIX": filepath.Join(root, "usr/local"), "ETC_DIR": filepath.Join(root, "etc"),
		"SYSTEMD_DIR": filepath.Join(root, "etc/systemd/system"), "SKIP_SYSTEMCTL": "1",
	}
	conf := filepath.Join(root, "etc/hanfs/hanfsd.conf")
	unit := filepath.Join(root, "etc/systemd/system/hanfsd.service")
	installed := filepath.Join(root, "usr/local/bin/hanfsd")

	out, err := vgScript(t, "provision-server.sh", env)
	if err != nil {
		t.Fatalf("first run: %v\n%s", err, out)
	}
	if !strings.Contains(out, "formatting "+disk) || !strings.Contains(out, "UUID:") {
		t.Fatalf("first run did not format the disk:\n%s", out)
	}
	uuid := vgFsckUUID(t, bin, disk)
	for _, f := range []string{installed, filepath.Join(root, "usr/local/lib/hanfs/hanfsd-vip-cleanup"), conf,
		filepath.Join(root, "etc/default/hanfsd"), unit} {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatalf("not installed: %v", err)
		}
		if strings.Contains(f, "/bin/") || strings.Contains(f, "/lib/") {
			if st.Mode().Perm()&0o111 == 0 {
				t.Errorf("%s is not executable (%v)", f, st.Mode())
			}
		}
	}
	c := vgConfig(t, conf)
	want := map[string]string{"disk": disk, "node": "1", "listen": listen, "metrics": metrics,
		"heartbeat": "127.0.0.1:0", "export": "/ 127.0.0.0/8 rw,no_root_squash"}
	for k, v := range want {
		if got := c[k]; len(got) != 1 || got[0] != v {
			t.Errorf("config %s = %q, want %q", k, got, v)
		}
	}
	for _, k := range []string{"vip", "vip-dev", "peer"} {
		if len(c[k]) != 0 {
			t.Errorf("config sets %s %q; VIP and PEERS were empty", k, c[k])
		}
	}
	ub, _ := os.ReadFile(unit)
	if !strings.Contains(string(ub), "ExecStart="+installed+" serve --config "+conf) {
		t.Errorf("installed unit does not run the installed binary with the installed config:\n%s", ub)
	}
	confInfo, _ := os.Stat(conf)

	// A second run changes nothing and does not format again.
	out, err = vgScript(t, "provision-server.sh", env)
	if err != nil {
		t.Fatalf("second run: %v\n%s", err, out)
	}
	if strings.Contains(out, "installed:") || strings.Contains(out, "Formatted") ||
		!strings.Contains(out, "already holds a hanfs file system: not formatting") {
		t.Fatalf("second run was not a no-op:\n%s", out)
	}
	if got := vgFsckUUID(t, bin, disk); got != uuid {
		t.Fatalf("disk reformatted: uuid %s, was %s", got, uuid)
	}
	if st, _ := os.Stat(conf); !st.ModTime().Equal(confInfo.ModTime()) {
		t.Errorf("second run rewrote %s", conf)
	}

	t.Run("unit", func(t *testing.T) { vgVerifyUnit(t, unit) })

	// The node the script configured: hanfsd serve --config FILE $HANFSD_OPTS
	// (as the unit runs it) becomes primary and serves.
	args := append([]string{"serve", "--config", conf}, vgServeOpts(t, filepath.Join(root, "etc/default/hanfsd"))...)
	p := vgStart(t, installed, args...)
	st := vgWaitStatus(t, p, metrics, 90*time.Second, func(s vgStatus) bool { return s.Role == "primary" })
	if st.Node != 1 || st.Service != listen || st.Epoch == 0 {
		t.Errorf("status %+v: want node 1 serving %s at an epoch > 0", st, listen)
	}
	conn, err := net.DialTimeout("tcp", listen, 5*time.Second)
	if err != nil {
		t.Fatalf("the primary does not accept NFS connections on %s: %v", listen, err)
	}
	conn.Close()
	resp, err := http.Get("http://" + metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `hanfs_node_role{node="1"} 3`) {
		t.Errorf("/metrics does not show node 1 as primary:\n%s", vgGrep(string(body), "hanfs_node_role"))
	}
	vgCheckDocumented(t, string(body))
	// Taking over bumped the epoch on the disk: one commit at least.
	if m := regexp.MustCompile(`(?m)^hanfs_store_commits_total ([0-9.e+]+)$`).FindStringSubmatch(string(body)); m == nil || m[1] == "0" {
		t.Errorf("/metrics shows no store commit on the primary:\n%s", vgGrep(string(body), "hanfs_store_"))
	}
	p.stop(30 * time.Second)
	if got := vgFsckUUID(t, bin, disk); got != uuid {
		t.Fatalf("uuid %s after serving, was %s", got, uuid)
	}
}

// vgGrep returns the lines of s that contain sub.
func vgGrep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

var vgMetricRe = regexp.MustCompile(`(?m)^(hanfs_[a-z0-9_]+?)(_bucket|_sum|_count)?[{ ]`)

// vgCheckDocumented requires every hanfs_ metric in a /metrics page to be
// listed in docs/metrics.md.
func vgCheckDocumented(t testing.TB, page string) {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join(vgRoot(t), "docs", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, m := range vgMetricRe.FindAllStringSubmatch(page, -1) {
		seen++
		if !bytes.Contains(doc, []byte("`"+m[1]+"`")) {
			t.Errorf("metric %s is served but not documented in docs/metrics.md", m[1])
		}
	}
	if seen == 0 {
		t.Errorf("no hanfs_ metrics on the /metrics page")
	}
}

// vgVerifyUnit runs systemd-analyze verify on the installed unit (its paths
// point into the scratch root, where the binary exists) and on
// deploy/hanfsd.service as shipped (whose binaries are not installed on this
// machine: only that may be reported).
func vgVerifyUnit(t *testing.T, installed string) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze is not installed")
	}
	verify := func(path string) (string, error) {
		cmd := exec.Command("systemd-analyze", "verify", "--man=no", path)
		cmd.Dir = t.TempDir()
		out, err := cmd.CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	if out, err := verify(installed); err != nil || out != "" {
		t.Errorf("systemd-analyze verify %s: %v\n%s", installed, err, out)
	}
	shipped := filepath.Join(vgRoot(t), "deploy", "hanfsd.service")
	out, _ := verify(shipped)
	for _, line := range strings.Split(out, "\n") {
		if line == "" {
			continue
		}
		if strings.Contains(line, "is not executable: No such file or directory") &&
			(strings.Contains(line, "/usr/local/bin/hanfsd") || strings.Contains(line, "/usr/local/lib/hanfs/hanfsd-vip-cleanup")) {
			continue
		}
		t.Errorf("systemd-analyze verify %s: %s", shipped, line)
	}
}

// A node told not to format waits for the disk and gives up; a disk holding
// other data is never formatted.
func TestVagrantProvisionServerRefuses(t *testing.T) {
	vgNeed(t, "bash", "dd", "cmp", "install", "awk", "sed")
	tmp := t.TempDir()
	bin := vgBuild(t, tmp)
	base := func(disk, format string) map[string]string {
		root := filepath.Join(tmp, "root-"+format+filepath.Base(disk))
		return map[string]string{"NODE_ID": "2", "DISK": disk, "FORMAT": format, "FORMAT_WAIT": "1",
			"NODE_ADDR": "127.0.0.1", "VIP": "", "HANFSD_BIN": bin, "PREFIX": filepath.Join(root, "usr/local"),
			"ETC_DIR": filepath.Join(root, "etc"), "SYSTEMD_DIR": filepath.Join(root, "systemd"), "SKIP_SYSTEMCTL": "1"}
	}

	empty := filepath.Join(tmp, "empty.img")
	vgSparse(t, empty, 128<<20)
	out, err := vgScript(t, "provision-server.sh", base(empty, "0"))
	if err == nil || !strings.Contains(out, "holds no hanfs file system") {
		t.Fatalf("FORMAT=0 on an empty disk: want a failure after waiting, got %v:\n%s", err, out)
	}
	if out, err := exec.Command(bin, "fsck", "--disk", empty).CombinedOutput(); err == nil {
		t.Fatalf("FORMAT=0 formatted the disk:\n%s", out)
	}

	other := filepath.Join(tmp, "other.img")
	vgSparse(t, other, 128<<20)
	junk := []byte("not a hanfs disk: somebody's data")
	f, err := os.OpenFile(other, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(junk, 0)
	f.Close()
	out, err = vgScript(t, "provision-server.sh", base(other, "1"))
	if err == nil || !strings.Contains(out, "not empty") {
		t.Fatalf("FORMAT=1 on a disk with data: want a refusal, got %v:\n%s", err, out)
	}
	b := make([]byte, len(junk))
	f, _ = os.Open(other)
	f.ReadAt(b, 0)
	f.Close()
	if !bytes.Equal(b, junk) {
		t.Fatalf("the disk's data was overwritten: %q", b)
	}

	bad := base(empty, "1")
	bad["NODE_ID"] = "17"
	if out, err := vgScript(t, "provision-server.sh", bad); err == nil || !strings.Contains(out, "NODE_ID must be 1..16") {
		t.Fatalf("NODE_ID=17: want a refusal, got %v:\n%s", err, out)
	}
}

func TestVagrantProvisionClient(t *testing.T) {
	vgNeed(t, "bash", "awk", "grep")
	tmp := t.TempDir()
	fstab := filepath.Join(tmp, "fstab")
	os.WriteFile(fstab, []byte("UUID=1234 / ext4 defaults 0 1\n192.0.2.1:/old "+tmp+"/mnt nfs defaults 0 0\n"), 0o644)
	env := map[string]string{"SERVER": "192.0.2.10", "FSTAB": fstab, "MOUNTPOINT": filepath.Join(tmp, "mnt"),
		"SKIP_APT": "1", "SKIP_MOUNT": "1"}
	for i := 0; i < 2; i++ {
		if out, err := vgScript(t, "provision-client.sh", env); err != nil {
			t.Fatalf("run %d: %v\n%s", i+1, err, out)
		}
	}
	b, _ := os.ReadFile(fstab)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	wantEntry := "192.0.2.10:/ " + tmp + "/mnt nfs vers=3,proto=tcp,port=2049,mountport=2049,mountproto=tcp,nolock,hard,_netdev 0 0"
	if len(lines) != 3 || lines[0] != "UUID=1234 / ext4 defaults 0 1" || lines[2] != wantEntry {
		t.Fatalf("fstab after two runs:\n%s\nwant the root line, the marker and\n%s", b, wantEntry)
	}
	env["MOUNT_OPTS"] = "timeo=100"
	if out, err := vgScript(t, "provision-client.sh", env); err != nil {
		t.Fatalf("run with MOUNT_OPTS: %v\n%s", err, out)
	}
	b, _ = os.ReadFile(fstab)
	if n := strings.Count(string(b), " nfs "); n != 1 || !strings.Contains(string(b), ",hard,_netdev,timeo=100 0 0") {
		t.Fatalf("fstab after changing MOUNT_OPTS (want one updated entry):\n%s", b)
	}
}

// deploy/hanfsd.conf.example is a config hanfsd accepts: started with flags
// overriding the settings that name the lab's machines, it runs.
func TestVagrantExampleConfig(t *testing.T) {
	tmp := t.TempDir()
	bin := vgBuild(t, tmp)
	disk := filepath.Join(tmp, "disk.img")
	if out, err := exec.Command(bin, "format", "--disk", disk, "--size", "128MiB").CombinedOutput(); err != nil {
		t.Fatalf("format: %v\n%s", err, out)
	}
	example := filepath.Join(vgRoot(t), "deploy", "hanfsd.conf.example")
	c := vgConfig(t, example)
	for _, k := range []string{"disk", "node", "heartbeat", "peer", "listen", "vip", "vip-dev", "metrics", "export"} {
		if len(c[k]) == 0 {
			t.Errorf("the example config does not show %q", k)
		}
	}
	metrics := vgFreePort(t)
	// A peer that never answers (a UDP port nothing listens on).
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	peer := pc.LocalAddr().String()
	pc.Close()
	p := vgStart(t, bin, "serve", "--config", example, "--disk", disk, "--heartbeat", "127.0.0.1:0",
		"--peer", "2="+peer, "--listen", vgFreePort(t), "--metrics", metrics, "--vip=", "--vip-dev=")
	vgWaitStatus(t, p, metrics, 30*time.Second, func(s vgStatus) bool { return s.Node == 1 && s.Role != "" })
	p.stop(30 * time.Second)
}

// Every metric the code defines is documented, and the dashboard is valid
// JSON that uses only defined metrics.
func TestVagrantMetricsDocumented(t *testing.T) {
	root := vgRoot(t)
	defined := map[string]bool{}
	nameRe := regexp.MustCompile(`Name:\s*"(hanfs_[a-z0-9_]+)"`)
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == ".vagrant" || d.Name() == "data") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range nameRe.FindAllSubmatch(b, -1) {
			defined[string(m[1])] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(defined) < 10 {
		t.Fatalf("found only %d metric definitions: %v", len(defined), defined)
	}
	doc, err := os.ReadFile(filepath.Join(root, "docs", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for n := range defined {
		names = append(names, n)
		if !bytes.Contains(doc, []byte("| `"+n+"` |")) {
			t.Errorf("metric %s is not in the tables of docs/metrics.md", n)
		}
	}
	sort.Strings(names)
	for _, m := range regexp.MustCompile("\\| `(hanfs_[a-z0-9_]+)` \\|").FindAllSubmatch(doc, -1) {
		if !defined[string(m[1])] {
			t.Errorf("docs/metrics.md lists %s, which no code defines", m[1])
		}
	}

	b, err := os.ReadFile(filepath.Join(root, "docs", "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title      string `json:"title"`
		Templating struct {
			List []struct {
				Name, Type string
				Query      any `json:"query"`
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			Type, Title string
			Targets     []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("docs/grafana-dashboard.json: %v", err)
	}
	hasDS := false
	for _, v := range dash.Templating.List {
		if v.Type == "datasource" && v.Query == "prometheus" {
			hasDS = true
		}
	}
	if !hasDS {
		t.Errorf("the dashboard has no Prometheus data source variable")
	}
	used := map[string]bool{}
	useRe := regexp.MustCompile(`hanfs_[a-z0-9_]+`)
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, n := range useRe.FindAllString(tg.Expr, -1) {
				base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_sum"), "_count")
				if !defined[base] {
					t.Errorf("panel %q uses %s, which no code defines", p.Title, n)
				}
				used[base] = true
			}
		}
	}
	for _, n := range names {
		if !used[n] {
			t.Errorf("no dashboard panel shows %s", n)
		}
	}
	if t.Failed() {
		t.Logf("metrics defined: %s", strings.Join(names, ", "))
	}
	var exprs []string
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	vgPromtool(t, exprs)
}

// vgPromtool parses the dashboard's queries with promtool, when installed.
func vgPromtool(t *testing.T, exprs []string) {
	if _, err := exec.LookPath("promtool"); err != nil {
		t.Log("promtool not installed (apt-get install prometheus): dashboard queries not parsed")
		return
	}
	var rules strings.Builder
	rules.WriteString("groups:\n- name: dashboard\n  rules:\n")
	r := strings.NewReplacer("$__rate_interval", "1m", "$__range", "1h", "$job", "hanfs", "$instance", ".*")
	for i, e := range exprs {
		fmt.Fprintf(&rules, "  - record: dashboard:q%d\n    expr: %q\n", i+1, r.Replace(e))
	}
	f := filepath.Join(t.TempDir(), "rules.yml")
	if err := os.WriteFile(f, []byte(rules.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("promtool", "check", "rules", f).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules (the dashboard's queries): %v\n%s\n%s", err, out, rules.String())
	}
}

// deploy/hanfsd-vip-cleanup removes a stale virtual address, in a network
// namespace of its own (a veth pair inside it; nothing leaves the namespace).
func TestVagrantVIPCleanup(t *testing.T) {
	vgNeed(t, "unshare", "ip", "sh", "awk")
	if os.Geteuid() != 0 {
		t.Skip("needs root for a network namespace")
	}
	conf := filepath.Join(t.TempDir(), "hanfsd.conf")
	os.WriteFile(conf, []byte("disk /dev/null\nvip 192.0.2.10/24 # the service address\nvip-dev vgdummy0\n"), 0o644)
	script := filepath.Join(vgRoot(t), "deploy", "hanfsd-vip-cleanup")
	sh := `set -e
ip link add vgdummy0 type veth peer name vgdummy1
ip link set vgdummy0 up
ip addr add 192.0.2.10/24 dev vgdummy0
"$1" "$2"
"$1" "$2"
ip -4 -o addr show dev vgdummy0
echo done`
	out, err := exec.Command("unshare", "--net", "sh", "-c", sh, "sh", script, conf).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "Operation not permitted") || strings.Contains(string(out), "not supported") ||
			strings.Contains(string(out), "Unknown device type") {
			t.Skipf("no network namespace with a dummy interface here: %s", out)
		}
		t.Fatalf("hanfsd-vip-cleanup: %v\n%s", err, out)
	}
	s := string(out)
	if !strings.Contains(s, "removed stale 192.0.2.10/24 from vgdummy0") || strings.Count(s, "removed stale") != 1 ||
		strings.Contains(s, "192.0.2.10/24 brd") || !strings.HasSuffix(strings.TrimSpace(s), "done") {
		t.Fatalf("hanfsd-vip-cleanup did not remove the address exactly once:\n%s", s)
	}
}
