package cluster

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestHardFence(t *testing.T) {
	dir := t.TempDir()
	wd := filepath.Join(dir, "watchdog") // a regular file stands in for /dev/watchdog
	os.WriteFile(wd, nil, 0o644)
	out := filepath.Join(dir, "fenced")
	f := &hardFence{log: slog.New(slog.DiscardHandler), node: 3, watchdog: wd,
		command: "echo $HANFS_NODE $HANFS_EPOCH $HANFS_REASON > " + out}
	var open atomic.Bool
	open.Store(true)
	gate := func() error {
		if open.Load() {
			return nil
		}
		return errors.New("expired")
	}
	if err := f.arm(gate, 10*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	open.Store(false) // lease lost: feeding stops
	time.Sleep(50 * time.Millisecond)
	b1, _ := os.ReadFile(wd)
	time.Sleep(50 * time.Millisecond)
	b2, _ := os.ReadFile(wd)
	if len(b1) == 0 || len(b1) != len(b2) || strings.Contains(string(b2), "V") {
		t.Fatalf("watchdog fed %d then %d bytes (%q): want feeding that stops, not disarmed", len(b1), len(b2), b2)
	}
	f.release(false)
	f.fenced(7, "lease lost")
	if got, _ := os.ReadFile(out); strings.TrimSpace(string(got)) != "3 7 lease lost" {
		t.Fatalf("fence command output %q", got)
	}
	// A clean stop disarms.
	f.arm(func() error { return nil }, time.Hour)
	f.release(true)
	if b, _ := os.ReadFile(wd); !strings.HasSuffix(string(b), "V") {
		t.Fatalf("clean release did not write the magic close: %q", b)
	}
}
