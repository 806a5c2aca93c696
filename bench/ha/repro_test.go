package ha

// TestFailoverUnderWrites (opt-in: HANFS_HA_REPRO=1) kills the primary
// while a client keeps creating and writing files (CREATE + 4 KiB
// FILE_SYNC WRITE in a loop, reconnecting and retrying on connection
// errors), and checks that writes succeed again within 5 s of the kill and
// that the new primary answers none of them with an error.
//
//	HANFS_HA_REPRO=1 go test -run TestFailoverUnderWrites -count=1 -v ./bench/ha/

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestFailoverUnderWrites(t *testing.T) {
	if os.Getenv("HANFS_HA_REPRO") == "" {
		t.Skip("opt-in: HANFS_HA_REPRO=1")
	}
	rounds := envInt("HANFS_HA_ROUNDS", 5)
	dir := workDir(t)
	bin := buildAndFormat(t, dir, "repro.img")
	c := newCluster(t, bin, dir, "repro.img", 1, 2)
	if err := c.up(1, 2); err != nil {
		t.Fatal(err)
	}
	cl, err := Dial(c.service, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	root, err := cl.Mount("/")
	if err != nil {
		t.Fatal(err)
	}
	dirFH, err := cl.Mkdir(root, "w")
	cl.Close()
	if err != nil {
		t.Fatal(err)
	}

	var ok, nfsErrs atomic.Int64
	var lastErr atomic.Value
	var next atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	pause := time.Duration(envInt("HANFS_HA_WRITE_PAUSE_MS", 0)) * time.Millisecond
	writer := func() {
		defer wg.Done()
		data := make([]byte, 4096)
		var w *Client
		for {
			select {
			case <-stop:
				if w != nil {
					w.Close()
				}
				return
			default:
			}
			if w == nil {
				var err error
				if w, err = Dial(c.service, 200*time.Millisecond); err != nil {
					w = nil
					time.Sleep(time.Millisecond)
					continue
				}
			}
			k := next.Add(1)
			fh, err := w.Create(dirFH, fmt.Sprintf("f%07d", k))
			if err == nil {
				err = w.Write(fh, 0, data)
			}
			var se *StatusError
			switch {
			case err == nil:
				ok.Add(1)
				time.Sleep(pause)
			case errors.As(err, &se):
				nfsErrs.Add(1)
				lastErr.Store(err.Error())
				time.Sleep(10 * time.Millisecond)
			default:
				w.Close()
				w = nil
			}
		}
	}
	for i := 0; i < envInt("HANFS_HA_WRITERS", 8); i++ {
		wg.Add(1)
		go writer()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	defer func() { close(stop); <-done }()

	for r := 0; r < rounds; r++ {
		p, q, err := c.steady(20 * time.Second)
		if err != nil {
			t.Fatalf("round %d: %v", r+1, err)
		}
		time.Sleep(time.Second)
		e0, ok0 := nfsErrs.Load(), ok.Load()
		if ok0 == 0 {
			t.Fatal("the writer made no progress before the kill")
		}
		tKill := time.Now()
		c.nodes[p].Kill()
		time.Sleep(20 * time.Millisecond) // replies already in flight
		ok0 = ok.Load()
		for ok.Load() == ok0 {
			if time.Since(tKill) > 5*time.Second {
				s, _ := c.nodes[q].Status()
				t.Fatalf("round %d: no write succeeded within 5 s of killing node %d; node %d /status %+v; %d NFS errors since the kill (last: %v); log %s",
					r+1, p, q, s, nfsErrs.Load()-e0, lastErr.Load(), c.nodes[q].LogPath)
			}
			time.Sleep(5 * time.Millisecond)
		}
		first := time.Since(tKill)
		time.Sleep(2 * time.Second)
		ok1 := ok.Load()
		time.Sleep(time.Second)
		s, _ := c.nodes[q].Status()
		if ok.Load() == ok1 || nfsErrs.Load() != e0 {
			t.Fatalf("round %d: after node %d took over: %d writes in the last second, %d NFS errors since the kill (last: %v); node %d /status %+v; log %s",
				r+1, q, ok.Load()-ok1, nfsErrs.Load()-e0, lastErr.Load(), q, s, c.nodes[q].LogPath)
		}
		t.Logf("round %d: killed node %d; node %d accepted writes %v later; %d writes so far", r+1, p, q, first.Round(time.Millisecond), ok.Load())
		if err := c.nodes[p].Start(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSlowConfirmAbortsTakeover (opt-in: HANFS_HA_REPRO=1) kills the
// primary and, when the backup has written its claim, makes every disk I/O
// of the backup wait 120 ms (hidden flag --test-stall-file) around the
// claim's confirmation read, 540 ms after the claim: less than the 150 ms
// io-timeout the timing assumes. The claim is confirmed after its validity
// (claim + 642 ms) ran out, so the first renewal finds the lease expired;
// the node fences itself and waits a whole takeover again.
func TestSlowConfirmAbortsTakeover(t *testing.T) {
	if os.Getenv("HANFS_HA_REPRO") == "" {
		t.Skip("opt-in: HANFS_HA_REPRO=1")
	}
	stall := time.Duration(envInt("HANFS_HA_STALL_MS", 120)) * time.Millisecond
	dir := workDir(t)
	bin := buildAndFormat(t, dir, "confirm.img")
	c := newCluster(t, bin, dir, "confirm.img", 1, 2)
	marker := filepath.Join(dir, "stall-2")
	c.nodes[2].Args = append(c.nodes[2].Args, "--test-stall-file", marker)
	if err := c.up(1, 2); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	tKill := time.Now()
	c.nodes[1].Kill()
	// Wait for the claim.
	var cand LogLine
	for {
		lines, _ := ParseLog(c.nodes[2].LogPath)
		if l, ok := FirstAfter(lines, tKill, RoleTo("candidate")); ok {
			cand = l
			break
		}
		if time.Since(tKill) > 10*time.Second {
			t.Fatal("node 2 never claimed")
		}
		time.Sleep(2 * time.Millisecond)
	}
	time.Sleep(time.Until(cand.Time.Add(540 * time.Millisecond)))
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	time.Sleep(stall)
	os.Remove(marker)
	s, err := c.nodes[2].WaitStatus(15*time.Second, "serve", func(s Status) bool { return s.Role == "primary" })
	if err != nil {
		t.Fatal(err)
	}
	lines, _ := ParseLog(c.nodes[2].LogPath)
	serv, _ := FirstAfter(lines, tKill, Is(MsgServing))
	for _, l := range lines {
		if !l.Time.Before(tKill.Truncate(time.Millisecond)) && (l.Msg == "role change" || l.Level() != "INFO") {
			t.Logf("node 2: %s %s %s", l.Time.Format("15:04:05.000"), l.Msg, l.Attrs["reason"]+l.Attrs["err"])
		}
	}
	t.Logf("stall of %v from claim+540ms; node 2 serving %v after the kill, at lease epoch %d", stall, serv.Time.Sub(tKill), s.LeaseEpoch)
	if aborted, _ := FirstAfter(lines, tKill, RoleTo("fenced")); aborted.Msg != "" {
		t.Errorf("a disk I/O within io-timeout during the claim's confirmation made the new primary fence itself (%s); it served only %v after the kill",
			aborted.Attrs["reason"], serv.Time.Sub(tKill))
	}
}
