package soak

import (
	"fmt"
	"syscall"
	"time"
)

// injected is what an injection did: the node it hit and the restarts.
type injected struct {
	node     int
	restarts int
}

// inject injects one failure of kind k on a cluster whose primary is p, and
// returns once the failure is over (killed nodes restarted, stopped nodes
// continued, stalls and partitions lifted). The caller then waits for the
// cluster to settle.
func (s *soak) inject(k Kind, p int) (injected, error) {
	c, b := s.cluster, other(p)
	switch k {
	case KillPrimary:
		c.node(p).kill()
		if _, err := c.waitPrimary(b, s.cfg.Recover); err != nil {
			return injected{node: p}, fmt.Errorf("after kill -9 of primary %d: %w", p, err)
		}
		if err := c.node(p).start(); err != nil {
			return injected{node: p}, err
		}
		return injected{node: p, restarts: 1}, nil

	case KillBackup:
		c.node(b).kill()
		time.Sleep(200 * time.Millisecond)
		if err := c.node(b).start(); err != nil {
			return injected{node: b}, err
		}
		return injected{node: b, restarts: 1}, nil

	case StopPrimary:
		n := c.node(p)
		pid := n.pid()
		t0 := time.Now()
		if err := n.signal(syscall.SIGSTOP); err != nil {
			return injected{node: p}, err
		}
		// SIGSTOP is delivered asynchronously: the window starts once every
		// thread is seen stopped (a write that started before that and was
		// inside the kernel then is excused; see oneWriter).
		inKernel, err := StoppedWrites(pid)
		if err != nil {
			_ = n.signal(syscall.SIGCONT)
			return injected{node: p}, err
		}
		start := mono()
		_, werr := c.waitPrimary(b, s.cfg.Recover)
		time.Sleep(time.Until(t0.Add(s.cfg.StopFor)))
		end := mono()
		s.writes.addPause(pause{node: p, start: start, end: end, inKernel: inKernel})
		if err := n.signal(syscall.SIGCONT); err != nil {
			return injected{node: p}, err
		}
		if werr != nil {
			return injected{node: p}, fmt.Errorf("while primary %d was stopped: %w", p, werr)
		}
		return injected{node: p}, nil

	case StallPrimary:
		n := c.node(p)
		t0 := time.Now()
		if err := n.stall(true); err != nil {
			return injected{node: p}, err
		}
		_, werr := c.waitPrimary(b, s.cfg.Recover)
		time.Sleep(time.Until(t0.Add(s.cfg.StallFor)))
		if err := n.stall(false); err != nil {
			return injected{node: p}, err
		}
		if werr != nil {
			return injected{node: p}, fmt.Errorf("while primary %d's disk stalled: %w", p, werr)
		}
		return injected{node: p}, nil

	case Partition:
		c.relay.cut(true)
		time.Sleep(s.cfg.PartitionFor)
		c.relay.cut(false)
		return injected{node: p}, nil

	case Switchover:
		if err := c.node(p).switchover(b); err != nil {
			return injected{node: p}, err
		}
		if _, err := c.waitPrimary(b, s.cfg.Recover); err != nil {
			return injected{node: p}, fmt.Errorf("switchover from %d: %w", p, err)
		}
		return injected{node: p}, nil
	}
	return injected{}, fmt.Errorf("unknown failure kind %q", k)
}
