package test

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestKernelClientFailoverDrill is the failover drill with a real Linux NFS
// client: a kernel in a qemu guest mounts a two-node cluster's service
// address with a hard mount and writes, fsyncs and reads back small files
// for 45 s, while the host kills the primary (kill -9) three times, letting
// the backup take over and restarting the killed node as the new backup.
// The guest must see no error; the outages it saw are reported.
func TestKernelClientFailoverDrill(t *testing.T) {
	if testing.Short() {
		t.Skip("kernel-client test skipped in -short mode")
	}
	kc := kcKclient(t)
	c := haNewCluster(t, 1, 2)
	c.startPair(1)
	_, port, err := net.SplitHostPort(c.service)
	if err != nil {
		t.Fatal(err)
	}
	script, err := filepath.Abs(filepath.Join("testdata", "kclient-failover.sh"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(kc, "--port", port, "--mountport", port, "--export", "/",
		"--opts", "hard,timeo=10,retrans=3", "--timeout", "240", "--env", "DUR=45", script)
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
	lines := make(chan string, 1024)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()

	var guest []string
	var kick <-chan time.Time
	failovers := 0
	deadline := time.After(280 * time.Second)
	failover := func() {
		ps := c.primaries()
		if len(ps) != 1 {
			t.Errorf("failover %d: primaries %v, want exactly one", failovers+1, ps)
			return
		}
		old := ps[0]
		other := 3 - old
		t0 := time.Now()
		c.nodes[old].kill()
		at := c.nodes[other].waitRole("primary", 10*time.Second)
		t.Logf("host: kill -9 of primary node %d; node %d primary %s later", old, other, at.Sub(t0).Round(time.Millisecond))
		c.nodes[old].start()
		c.nodes[old].waitRole("backup", 15*time.Second)
		failovers++
	}
loop:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				break loop
			}
			guest = append(guest, l)
			t.Logf("guest: %s", l)
			if strings.HasPrefix(l, "LOOP-START") {
				kick = time.After(8 * time.Second)
			}
		case <-kick:
			failover()
			kick = nil
			if failovers < 3 {
				kick = time.After(10 * time.Second)
			}
		case <-deadline:
			t.Error("overall timeout: stopping the VM")
			kcGroupKill(cmd, exited)
			deadline = nil
		}
	}
	werr := cmd.Wait()
	close(exited)
	var ee *exec.ExitError
	rc := 0
	if errors.As(werr, &ee) {
		rc = ee.ExitCode()
	} else if werr != nil {
		t.Fatalf("kclient: %v", werr)
	}
	ok := false
	for _, l := range guest {
		if strings.HasPrefix(l, "STALL ") || strings.HasPrefix(l, "SUMMARY ") {
			t.Logf("seen by the kernel client: %s", l)
		}
		if l == "DRILL-OK" {
			ok = true
		}
	}
	if rc != 0 || !ok {
		t.Fatalf("guest drill failed (exit %d)\nkclient stderr:\n%s", rc, kcTail(stderr.Bytes(), 40))
	}
	if failovers < 3 {
		t.Fatalf("only %d failovers happened during the drill, want 3", failovers)
	}
}
