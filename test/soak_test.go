package test

// The failover soak (issue 5, docs/soak.md): `hanfsd soak` runs a two-node
// cluster, a checked hard-mount NFS workload and injected failures of every
// kind. TestSoakShort is the short soak `make test` runs (36 failures, zero
// violations). TestSoakCatchesFaults tests the checker itself: hanfsd built
// with each deliberate fault (build tags hanfsfault_*) must make a short,
// targeted soak report violations. Every helper here is prefixed sk.

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// skReport is the part of the soak's JSON report the tests read.
type skReport struct {
	FailuresInjected int            `json:"failures_injected"`
	Complete         bool           `json:"complete"`
	ByKind           map[string]int `json:"failures_by_kind"`
	Restarts         int            `json:"restarts"`
	OpsTotal         int64          `json:"operations_total"`
	BytesVerified    int64          `json:"bytes_verified"`
	FsckClean        bool           `json:"fsck_clean"`
	ViolationCount   int            `json:"violation_count"`
	Violations       []struct {
		Kind   string `json:"kind"`
		Detail string `json:"detail"`
	} `json:"violations"`
	LongestOutage *struct {
		Kind     string  `json:"kind"`
		OutageMS float64 `json:"outage_ms"`
	} `json:"longest_outage"`
	OK bool `json:"ok"`
}

// skAllKinds are the failure kinds of `hanfsd soak`.
var skAllKinds = []string{"kill_primary", "stop_primary", "partition", "stall_primary", "switchover", "kill_backup"}

// skRun runs `bin soak args...` with a JSON report in a temporary work
// directory and returns the report, the exit code and the output.
func skRun(t *testing.T, bin string, timeout time.Duration, args ...string) (skReport, int, string) {
	t.Helper()
	dir := t.TempDir()
	js := filepath.Join(dir, "report.json")
	full := append([]string{"soak", "--dir", filepath.Join(dir, "work"), "--json", js}, args...)
	cmd := exec.Command(bin, full...)
	var out haLog
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start hanfsd soak: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(timeout):
		cmd.Process.Kill()
		<-done
		t.Fatalf("hanfsd soak %v did not finish within %v; output:\n%s", args, timeout, skTail(out.String(), 60))
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("hanfsd soak: %v", err)
	}
	var rep skReport
	b, rerr := os.ReadFile(js)
	if rerr != nil {
		t.Fatalf("hanfsd soak wrote no report (exit %d): %v; output:\n%s", code, rerr, skTail(out.String(), 60))
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("soak report: %v", err)
	}
	return rep, code, out.String()
}

// skTail returns the last n lines of s.
func skTail(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// skProgressLines counts the per-failure progress lines of the output.
func skProgressLines(out string) int {
	n := 0
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "] ") && strings.Contains(line, "outage") && strings.Contains(line, "violations") {
			n++
		}
	}
	return n
}

// TestSoakShort: 36 failures, six of every kind, with zero violations:
// no client error, every acknowledged write read back, one writer per epoch,
// fsck clean.
func TestSoakShort(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a soak of about two minutes")
	}
	bin := hanfsdBin(t)
	start := time.Now()
	rep, code, out := skRun(t, bin, 8*time.Minute, "--failures", "36", "--interval", "500ms", "--seed", "5")
	t.Logf("soak of %d failures took %v\n%s", rep.FailuresInjected, time.Since(start).Round(time.Second), skTail(out, 16))
	if code != 0 || rep.ViolationCount != 0 || !rep.OK {
		t.Errorf("soak failed: exit %d, %d violation(s): %+v", code, rep.ViolationCount, rep.Violations)
	}
	if rep.FailuresInjected < 30 || !rep.Complete {
		t.Errorf("%d failures injected (complete %v), want at least 30", rep.FailuresInjected, rep.Complete)
	}
	for _, k := range skAllKinds {
		if rep.ByKind[k] == 0 {
			t.Errorf("no %s failure injected: %v", k, rep.ByKind)
		}
	}
	if rep.Restarts < rep.ByKind["kill_primary"]+rep.ByKind["kill_backup"] {
		t.Errorf("%d restarts for %d kills", rep.Restarts, rep.ByKind["kill_primary"]+rep.ByKind["kill_backup"])
	}
	if !rep.FsckClean {
		t.Error("fsck was not clean at the end")
	}
	if rep.OpsTotal < 1000 || rep.BytesVerified == 0 {
		t.Errorf("the workload did too little: %d operations, %d bytes verified", rep.OpsTotal, rep.BytesVerified)
	}
	if n := skProgressLines(out); n != rep.FailuresInjected {
		t.Errorf("%d progress lines for %d failures", n, rep.FailuresInjected)
	}
}

// skBuildFault builds hanfsd with the build tag of one deliberate fault.
func skBuildFault(t *testing.T, tag string) string {
	t.Helper()
	gocmd, err := goTool()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "hanfsd-"+tag)
	cmd := exec.Command(gocmd, "build", "-tags", tag, "-o", bin, "./cmd/hanfsd")
	cmd.Dir = repoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build -tags %s ./cmd/hanfsd: %v\n%s", tag, err, out)
	}
	return bin
}

// TestSoakCatchesFaults: the checker is itself tested. hanfsd built with a
// deliberate fault runs a short soak of the failures that expose it, up to
// the first failure that finds a violation; the soak must exit non-zero with
// violations of the expected kinds.
func TestSoakCatchesFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("builds hanfsd three times and runs three short soaks")
	}
	cases := []struct {
		tag      string
		kinds    string
		failures int
		want     []string // at least one violation of one of these kinds
	}{
		// Replies before the flush: acknowledged changes sit in memory while
		// the primary's disk stalls, and are lost when the backup takes over.
		{"hanfsfault_earlyreply", "stall_primary,kill_primary", 4, []string{"lost_write", "client_error", "tree_mismatch"}},
		// No fencing: writes queued behind a stall or a stop reach the disk
		// after the backup took over.
		{"hanfsfault_nofence", "stall_primary,stop_primary", 4, []string{"two_writers"}},
		// No duplicate-request record: a REMOVE, RENAME or CREATE
		// retransmitted to the new primary runs again and fails. It takes a
		// request whose reply the failure cut off: usually within a few
		// failures (the soak stops at the first violation).
		{"hanfsfault_nodrc", "kill_primary,stop_primary", 30, []string{"client_error"}},
	}
	for _, tc := range cases {
		t.Run(tc.tag, func(t *testing.T) {
			bin := skBuildFault(t, tc.tag)
			rep, code, out := skRun(t, bin, 5*time.Minute, "--failures", fmt.Sprint(tc.failures), "--kinds", tc.kinds,
				"--interval", "500ms", "--seed", "7", "--clients", "8", "--stop-on-violation")
			t.Logf("%s: exit %d, %d violation(s) in %d failures\n%s", tc.tag, code, rep.ViolationCount, rep.FailuresInjected, skTail(out, 12))
			if rep.ViolationCount == 0 || code == 0 || rep.OK {
				t.Fatalf("the soak did not catch %s: exit %d, %d violations", tc.tag, code, rep.ViolationCount)
			}
			found := map[string]int{}
			for _, v := range rep.Violations {
				found[v.Kind]++
			}
			ok := false
			for _, k := range tc.want {
				ok = ok || found[k] > 0
			}
			if !ok {
				t.Errorf("violations of kinds %v, want one of %v", found, tc.want)
			}
		})
	}
}
