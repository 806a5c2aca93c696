package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"
)

// hardFence is the optional hard fencing of a primary, for operators who do
// not want to rely on the process stopping its writes by itself:
//
//   - a watchdog device (for example /dev/watchdog) is opened when the node
//     starts serving and fed every renew interval while the lease's write
//     gate is open; a clean stop disarms it ("V", the magic close), but a
//     lost lease just stops feeding it, so the machine resets when the
//     watchdog's timeout runs out, unless the process stopped writing first;
//   - a fence command runs (sh -c) whenever the node stops serving because it
//     lost the lease, with HANFS_NODE, HANFS_EPOCH and HANFS_REASON set.
type hardFence struct {
	log      *slog.Logger
	node     int
	command  string
	watchdog string

	mu   sync.Mutex
	wd   *os.File
	stop chan struct{}
}

// arm opens the watchdog (if any) and feeds it while gate allows writes.
func (f *hardFence) arm(gate func() error, every time.Duration) error {
	if f.watchdog == "" {
		return nil
	}
	wd, err := os.OpenFile(f.watchdog, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("open watchdog %s: %w", f.watchdog, err)
	}
	stop := make(chan struct{})
	f.mu.Lock()
	f.wd, f.stop = wd, stop
	f.mu.Unlock()
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if gate() != nil {
					f.log.Error("lease gate closed: no longer feeding the watchdog", "watchdog", f.watchdog)
					return
				}
				if _, err := wd.Write([]byte{'k'}); err != nil {
					f.log.Error("feed watchdog", "watchdog", f.watchdog, "err", err)
				}
			}
		}
	}()
	f.log.Info("watchdog armed", "watchdog", f.watchdog, "feed_every", every)
	return nil
}

// release stops feeding; clean says whether to disarm the watchdog.
func (f *hardFence) release(clean bool) {
	f.mu.Lock()
	wd, stop := f.wd, f.stop
	f.wd, f.stop = nil, nil
	f.mu.Unlock()
	if stop != nil {
		close(stop)
	}
	if wd == nil {
		return
	}
	if clean {
		if _, err := wd.Write([]byte{'V'}); err != nil {
			f.log.Warn("disarm watchdog", "err", err)
		}
		f.log.Info("watchdog disarmed", "watchdog", f.watchdog)
	} else {
		f.log.Error("watchdog left armed and unfed: the machine resets when it expires", "watchdog", f.watchdog)
	}
	wd.Close()
}

// fenced runs the fence command, if any, after the node lost the lease.
func (f *hardFence) fenced(epoch uint64, reason string) {
	if f.command == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", f.command)
	cmd.Env = append(os.Environ(), "HANFS_NODE="+strconv.Itoa(f.node),
		"HANFS_EPOCH="+strconv.FormatUint(epoch, 10), "HANFS_REASON="+reason)
	out, err := cmd.CombinedOutput()
	if err != nil {
		f.log.Error("fence command failed", "command", f.command, "err", err, "output", string(out))
		return
	}
	f.log.Warn("fence command ran", "command", f.command, "output", string(out))
}
