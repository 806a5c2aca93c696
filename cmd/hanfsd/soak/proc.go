package soak

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// node is one `hanfsd serve` process of the soak cluster; it can be killed,
// stopped, continued, stalled and restarted.
type node struct {
	id        int
	bin       string
	args      func() []string // the serve command line (without the binary)
	metrics   string          // host:port of /status
	writeLog  string
	stallFile string
	logPath   string
	starts    int

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
}

func newNode(dir string, id int, bin, metrics string) *node {
	return &node{id: id, bin: bin, metrics: metrics,
		writeLog:  filepath.Join(dir, fmt.Sprintf("writes-%d.log", id)),
		stallFile: filepath.Join(dir, fmt.Sprintf("stall-%d", id)),
		logPath:   filepath.Join(dir, fmt.Sprintf("node-%d.log", id))}
}

// start starts the node's process (it must not be running).
func (n *node) start() error {
	if n.running() {
		return fmt.Errorf("node %d is already running", n.id)
	}
	lf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("node %d log: %w", n.id, err)
	}
	n.starts++
	args := n.args()
	fmt.Fprintf(lf, "=== soak: start %d: %s %v\n", n.starts, n.bin, args)
	cmd := exec.Command(n.bin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return fmt.Errorf("start node %d: %w", n.id, err)
	}
	done := make(chan struct{})
	n.mu.Lock()
	n.cmd, n.done, n.waitErr = cmd, done, nil
	n.mu.Unlock()
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(lf, "=== soak: exit: %v\n", err)
		lf.Close()
		n.mu.Lock()
		n.waitErr = err
		n.mu.Unlock()
		close(done)
	}()
	return nil
}

// running reports whether the process is alive (possibly stopped).
func (n *node) running() bool {
	n.mu.Lock()
	done := n.done
	n.mu.Unlock()
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

// pid is the current process id (0 when not running).
func (n *node) pid() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil || n.cmd.Process == nil {
		return 0
	}
	return n.cmd.Process.Pid
}

// signal sends sig to the running process.
func (n *node) signal(sig syscall.Signal) error {
	n.mu.Lock()
	cmd := n.cmd
	n.mu.Unlock()
	if cmd == nil || !n.running() {
		return fmt.Errorf("node %d is not running", n.id)
	}
	if err := cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal %v to node %d: %w", sig, n.id, err)
	}
	return nil
}

// kill sends SIGKILL (and SIGCONT, in case it is stopped) and reaps it.
func (n *node) kill() {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.mu.Unlock()
	if cmd == nil || !n.running() {
		return
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Process.Signal(syscall.SIGCONT)
	<-done
}

// terminate asks the node to stop (SIGTERM: it checkpoints and releases the
// lease if it holds it) and kills it if it has not exited within d.
func (n *node) terminate(d time.Duration) {
	n.mu.Lock()
	done := n.done
	n.mu.Unlock()
	if !n.running() {
		return
	}
	_ = n.signal(syscall.SIGCONT)
	_ = n.signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(d):
		n.kill()
	}
}

// status is the part of a node's /status the soak reads.
type status struct {
	Node           int    `json:"node"`
	Role           string `json:"role"`
	Reason         string `json:"reason"`
	Epoch          uint64 `json:"epoch"`
	LeaseOwner     int    `json:"lease_owner"`
	LeaseEpoch     uint64 `json:"lease_epoch"`
	PeerHeartbeats bool   `json:"peer_heartbeats"`
	Mailbox        string `json:"mailbox"`
}

var statusHTTP = &http.Client{Timeout: 300 * time.Millisecond}

// status fetches /status (an error while the node is down or stopped).
func (n *node) status() (status, error) {
	var st status
	resp, err := statusHTTP.Get("http://" + n.metrics + "/status")
	if err != nil {
		return st, fmt.Errorf("node %d status: %w", n.id, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("node %d status: %w", n.id, err)
	}
	return st, nil
}

// switchover asks the node (the primary) to hand over to node to.
func (n *node) switchover(to int) error {
	cl := &http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Post("http://"+n.metrics+"/switchover?to="+strconv.Itoa(to), "text/plain", nil)
	if err != nil {
		return fmt.Errorf("switchover request to node %d: %w", n.id, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("switchover refused by node %d: %s", n.id, resp.Status)
	}
	return nil
}

// stall makes every disk I/O of the node stall (on) or resume (off).
func (n *node) stall(on bool) error {
	if on {
		if err := os.WriteFile(n.stallFile, nil, 0o644); err != nil {
			return fmt.Errorf("stall node %d: %w", n.id, err)
		}
		return nil
	}
	if err := os.Remove(n.stallFile); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("unstall node %d: %w", n.id, err)
	}
	return nil
}
