package soak

import (
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// cluster is two nodes (ids 1 and 2) on one image file with one service
// address, their heartbeats through a relay.
type cluster struct {
	bin     string
	img     string
	service string
	nodes   [2]*node
	relay   *relay
}

// freeAddr returns a free TCP or UDP address on 127.0.0.1.
func freeAddr(network string) (string, error) {
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return "", fmt.Errorf("free UDP port: %w", err)
		}
		defer c.Close()
		return c.LocalAddr().String(), nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("free TCP port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// newCluster formats an image in dir and prepares (does not start) the
// nodes and the relay.
func newCluster(cfg Config) (*cluster, error) {
	c := &cluster{bin: cfg.Bin, img: filepath.Join(cfg.Dir, "hanfs.img")}
	if out, err := exec.Command(c.bin, "format", "--disk", c.img, "--size", cfg.ImageSize).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("hanfsd format: %w: %s", err, out)
	}
	var err error
	if c.service, err = freeAddr("tcp"); err != nil {
		return nil, err
	}
	var hb [2]string
	for i := range c.nodes {
		if hb[i], err = freeAddr("udp"); err != nil {
			return nil, err
		}
		m, err := freeAddr("tcp")
		if err != nil {
			return nil, err
		}
		c.nodes[i] = newNode(cfg.Dir, i+1, c.bin, m)
	}
	if c.relay, err = newRelay(hb[0], hb[1]); err != nil {
		return nil, err
	}
	for i, n := range c.nodes {
		peer := 1 - i
		args := []string{"serve", "--disk", c.img, "--node", strconv.Itoa(n.id), "--heartbeat", hb[i],
			"--peer", fmt.Sprintf("%d=%s", peer+1, c.relay.addr(peer)),
			"--listen", c.service, "--metrics", n.metrics, "--export", "/ 127.0.0.0/8 rw,no_root_squash",
			"--test-write-log", n.writeLog, "--test-stall-file", n.stallFile}
		args = append(args, cfg.ServeArgs...)
		n.args = func() []string { return args }
	}
	return c, nil
}

// node returns the node with id (1 or 2).
func (c *cluster) node(id int) *node { return c.nodes[id-1] }

// other returns the id of the other node.
func other(id int) int { return 3 - id }

// roles returns the node ids whose /status says primary, and the statuses
// (a missing entry: no answer).
func (c *cluster) roles() (primaries []int, sts map[int]status) {
	sts = map[int]status{}
	for _, n := range c.nodes {
		if !n.running() {
			continue
		}
		st, err := n.status()
		if err != nil {
			continue
		}
		sts[n.id] = st
		if st.Role == "primary" {
			primaries = append(primaries, n.id)
		}
	}
	return primaries, sts
}

// errNoRecovery is returned when the cluster does not settle in time.
var errNoRecovery = errors.New("cluster did not settle")

// waitStable waits until exactly one node is primary and every other
// running node is a backup, and (with both running) each hears the other.
// It returns the primary's id and status.
func (c *cluster) waitStable(within time.Duration) (int, status, error) {
	deadline := time.Now().Add(within)
	var last map[int]status
	for {
		p, sts := c.roles()
		last = sts
		if len(p) == 1 {
			ok := true
			for _, n := range c.nodes {
				if !n.running() {
					continue
				}
				st, seen := sts[n.id]
				if !seen || (n.id != p[0] && st.Role != "backup") {
					ok = false
				}
				if c.nodes[0].running() && c.nodes[1].running() && !st.PeerHeartbeats {
					ok = false
				}
			}
			if ok {
				return p[0], sts[p[0]], nil
			}
		}
		if time.Now().After(deadline) {
			return 0, status{}, fmt.Errorf("%w within %v: statuses %+v", errNoRecovery, within, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitPrimary waits until node id says primary and returns its status.
func (c *cluster) waitPrimary(id int, within time.Duration) (status, error) {
	deadline := time.Now().Add(within)
	for {
		st, err := c.node(id).status()
		if err == nil && st.Role == "primary" {
			return st, nil
		}
		if time.Now().After(deadline) {
			return st, fmt.Errorf("node %d is not primary within %v: %+v, %v", id, within, st, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// start brings the cluster up: node 1 first (primary on a fresh disk),
// then node 2 as its backup.
func (c *cluster) start(within time.Duration) error {
	if err := c.node(1).start(); err != nil {
		return err
	}
	if _, err := c.waitPrimary(1, within); err != nil {
		return err
	}
	if err := c.node(2).start(); err != nil {
		return err
	}
	_, _, err := c.waitStable(within)
	return err
}

// stop terminates both nodes and closes the relay.
func (c *cluster) stop() {
	for _, n := range c.nodes {
		_ = n.stall(false)
	}
	for _, n := range c.nodes {
		n.terminate(10 * time.Second)
	}
	c.relay.close()
}
