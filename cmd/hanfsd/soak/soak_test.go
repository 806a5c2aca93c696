package soak

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestScheduleCoversEveryKind(t *testing.T) {
	s := schedule(AllKinds(), 36, 3)
	if len(s) != 36 {
		t.Fatalf("%d failures scheduled, want 36", len(s))
	}
	n := map[Kind]int{}
	for _, k := range s {
		n[k]++
	}
	for _, k := range AllKinds() {
		if n[k] != 6 {
			t.Errorf("%s scheduled %d times, want 6: %v", k, n[k], n)
		}
	}
	if again := schedule(AllKinds(), 36, 3); strings.Join(kindStrings(again), ",") != strings.Join(kindStrings(s), ",") {
		t.Error("the same seed gave another schedule")
	}
	if _, err := ParseKinds("kill_primary,bogus"); err == nil {
		t.Error("ParseKinds accepted an unknown kind")
	}
}

func kindStrings(ks []Kind) []string {
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = string(k)
	}
	return out
}

// writeLogs writes two write logs in dir and returns their paths.
func writeLogs(t *testing.T, dir, one, two string) []string {
	t.Helper()
	p1, p2 := filepath.Join(dir, "w1"), filepath.Join(dir, "w2")
	if err := os.WriteFile(p1, []byte(one), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p2, []byte(two), 0o644); err != nil {
		t.Fatal(err)
	}
	return []string{p1, p2}
}

func TestOneWriter(t *testing.T) {
	// Node 1 writes epoch 1 until 200; node 2 starts epoch 2 at 300.
	clean := "1 1 100 150 0 4096\n1 1 160 200 4096 4096\n"
	later := "2 2 300 350 0 4096\n"
	o := newOneWriter(writeLogs(t, t.TempDir(), clean, later)...)
	if vs, err := o.check(); err != nil || len(vs) != 0 {
		t.Fatalf("clean logs: %v %v", vs, err)
	}
	if o.Lines != 3 {
		t.Errorf("%d writes read, want 3", o.Lines)
	}

	// A write of epoch 1 ending after epoch 2's first write: a violation.
	o = newOneWriter(writeLogs(t, t.TempDir(), clean+"1 1 250 320 8192 4096\n", later)...)
	if vs, _ := o.check(); len(vs) != 1 || !strings.Contains(vs[0], "two writers") {
		t.Fatalf("overlap not found: %v", vs)
	}

	// The same epoch written by two nodes.
	o = newOneWriter(writeLogs(t, t.TempDir(), clean, "2 1 300 350 0 4096\n")...)
	if vs, _ := o.check(); len(vs) != 1 || !strings.Contains(vs[0], "nodes 1 and 2") {
		t.Fatalf("two owners of one epoch not found: %v", vs)
	}

	// A straddle of node 1's SIGSTOP window (240..400) with the write inside
	// the kernel at the stop: excused. Without it: unproven, excused unless
	// strict. Outside the window: always a violation.
	straddle := clean + "1 1 230 410 8192 4096\n"
	for _, strict := range []bool{false, true} {
		for _, inKernel := range []bool{false, true} {
			o = newOneWriter(writeLogs(t, t.TempDir(), straddle, later)...)
			o.strict = strict
			p := pause{node: 1, start: 240, end: 400, inKernel: map[[2]int64]int{}}
			if inKernel {
				p.inKernel[[2]int64{8192, 4096}] = 1
			}
			o.addPause(p)
			vs, _ := o.check()
			want := 0
			if strict && !inKernel {
				want = 1
			}
			if len(vs) != want {
				t.Errorf("strict %v, in kernel %v: violations %v, want %d", strict, inKernel, vs, want)
			}
			if inKernel && o.Excused != 1 || !inKernel && o.Unproven != 1 {
				t.Errorf("strict %v, in kernel %v: excused %d, unproven %d", strict, inKernel, o.Excused, o.Unproven)
			}
		}
	}
	o = newOneWriter(writeLogs(t, t.TempDir(), straddle, later)...)
	o.addPause(pause{node: 2, start: 240, end: 400, inKernel: map[[2]int64]int{{8192, 4096}: 1}})
	if vs, _ := o.check(); len(vs) != 1 {
		t.Errorf("a pause of the other node excused a write: %v", vs)
	}
}

func TestOneWriterIncremental(t *testing.T) {
	dir := t.TempDir()
	paths := writeLogs(t, dir, "1 1 100 150 0 4096\n1 1 160", "")
	o := newOneWriter(paths...)
	if vs, err := o.check(); err != nil || len(vs) != 0 || o.Lines != 1 {
		t.Fatalf("first read: %v %v, %d lines", vs, err, o.Lines)
	}
	// The cut line is joined by the restarted node's next line: skipped.
	f, err := os.OpenFile(paths[0], os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("1 3 490 495 0 4096\n1 3 500 510 0 4096\n")
	f.Close()
	os.WriteFile(paths[1], []byte("2 2 300 350 0 4096\n"), 0o644)
	if vs, err := o.check(); err != nil || len(vs) != 0 {
		t.Fatalf("second read: %v %v", vs, err)
	}
	if o.Skipped != 1 || o.Lines != 3 {
		t.Errorf("lines %d, skipped %d; want 3 and 1", o.Lines, o.Skipped)
	}
	// Checked epochs are dropped; a late write of an old epoch is still
	// checked when it shows up.
	if len(o.pending) != 1 {
		t.Errorf("%d pending writes, want only the newest epoch's", len(o.pending))
	}
	f, _ = os.OpenFile(paths[1], os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("2 2 400 600 0 4096\n")
	f.Close()
	if vs, err := o.check(); len(vs) != 1 {
		t.Errorf("a late write of epoch 2 after epoch 3 started: %v %v lines %d pending %v first %v", vs, err, o.Lines, o.pending, o.first)
	}
}

// TestCheckOneWriter: the one-call form the HA tests use.
func TestCheckOneWriter(t *testing.T) {
	clean := "1 1 100 150 0 4096\n1 1 160 200 4096 4096\n"
	later := "2 2 300 350 0 4096\n"
	r, err := CheckOneWriter(writeLogs(t, t.TempDir(), clean, later), nil, false)
	if err != nil || len(r.Violations) != 0 || r.PerEpoch[1] != 2 || r.PerEpoch[2] != 1 {
		t.Fatalf("clean logs: %+v %v", r, err)
	}
	// A write of epoch 1 ending after epoch 2's first write, straddling
	// node 1's pause without a thread in the kernel: unproven.
	straddle := clean + "1 1 230 410 8192 4096\n"
	pause := []Pause{{Node: 1, Start: 240, End: 400, InKernel: map[[2]int64]int{}}}
	for _, strict := range []bool{false, true} {
		r, err := CheckOneWriter(writeLogs(t, t.TempDir(), straddle, later), pause, strict)
		if err != nil || r.Unproven != 1 || (len(r.Violations) == 1) != strict {
			t.Errorf("strict %v: %+v %v", strict, r, err)
		}
	}
	// Without the pause it is a violation.
	if r, _ := CheckOneWriter(writeLogs(t, t.TempDir(), straddle, later), nil, false); len(r.Violations) != 1 {
		t.Errorf("late write without a pause: %+v", r)
	}
}
