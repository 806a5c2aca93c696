package soak

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
)

// write is one line of a node's --test-write-log: a file-system write that
// passed the node's lease gate, with CLOCK_MONOTONIC start and end.
type write struct {
	node       int
	epoch      uint64
	start, end int64
	off, n     int64
}

// pause is a window (CLOCK_MONOTONIC ns) during which a node was stopped
// (SIGSTOP), and the writes (offset, length) its threads were inside the
// kernel with when it stopped (see stoppedWrites).
type pause struct {
	node       int
	start, end int64
	inKernel   map[[2]int64]int
}

// oneWriter checks "at most one writer per epoch" incrementally from the
// nodes' write logs: a write of epoch e must end before the first write of
// any higher epoch starts, and one epoch is written by one node only. The
// single exception is a write that a node's thread was inside the kernel
// with when SIGSTOP hit and that straddles the stop window: the kernel
// finished it before the thread stopped, but its end was logged after
// SIGCONT.
//
// Writes of epochs below the newest are checked and dropped at every check
// (the soak checks only when the old writer is dead or has rejoined as a
// backup), so memory stays bounded; a late write of an old epoch is checked
// as it is read.
type oneWriter struct {
	paths   []string
	offsets []int64
	first   map[uint64]int64 // epoch -> earliest start seen
	owner   map[uint64]int   // epoch -> node
	count   map[uint64]int   // epoch -> writes read
	pending []write          // writes not yet checked
	pauses  []pause

	// strict makes unproven straddles (see straddle) violations.
	strict bool

	Lines, Skipped, Excused, Unproven int64 // writes read, unparsable lines, proven and unproven straddles
	straddles                         []Straddle
	violations                        []string
}

func newOneWriter(paths ...string) *oneWriter {
	return &oneWriter{paths: paths, offsets: make([]int64, len(paths)), first: map[uint64]int64{}, owner: map[uint64]int{}, count: map[uint64]int{}}
}

// addPause records a SIGSTOP window.
func (o *oneWriter) addPause(p pause) { o.pauses = append(o.pauses, p) }

// parseWrite parses one log line (exactly six numbers).
func parseWrite(line string) (write, bool) {
	f := strings.Fields(line)
	if len(f) != 6 {
		return write{}, false
	}
	var v [6]int64
	for i, s := range f {
		x, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return write{}, false
		}
		v[i] = x
	}
	return write{node: int(v[0]), epoch: uint64(v[1]), start: v[2], end: v[3], off: v[4], n: v[5]}, true
}

// read appends the complete lines added to the logs since the last read.
// A line cut short by kill -9 is joined by the restarted node's next line,
// and skipped as unparsable.
func (o *oneWriter) read() error {
	for i, p := range o.paths {
		f, err := os.Open(p)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("write log: %w", err)
		}
		if _, err := f.Seek(o.offsets[i], io.SeekStart); err != nil {
			f.Close()
			return fmt.Errorf("write log %s: %w", p, err)
		}
		b, err := io.ReadAll(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("write log %s: %w", p, err)
		}
		end := bytes.LastIndexByte(b, '\n')
		if end < 0 {
			continue
		}
		o.offsets[i] += int64(end + 1)
		for _, line := range strings.Split(string(b[:end]), "\n") {
			w, ok := parseWrite(line)
			if !ok {
				o.Skipped++
				continue
			}
			o.Lines++
			o.add(w)
		}
	}
	return nil
}

// add records one write.
func (o *oneWriter) add(w write) {
	if f, ok := o.first[w.epoch]; !ok || w.start < f {
		o.first[w.epoch] = w.start
	}
	if n, ok := o.owner[w.epoch]; ok && n != w.node {
		o.violations = append(o.violations, fmt.Sprintf("epoch %d written by nodes %d and %d", w.epoch, n, w.node))
	} else {
		o.owner[w.epoch] = w.node
	}
	o.count[w.epoch]++
	o.pending = append(o.pending, w)
}

// laterFirst returns the earliest first write of an epoch above e (max
// int64 when none).
func (o *oneWriter) laterFirst(e uint64) int64 {
	t := int64(1<<63 - 1)
	for ep, f := range o.first {
		if ep > e && f < t {
			t = f
		}
	}
	return t
}

// check reads the logs, checks every pending write of an epoch below the
// newest one, drops those, and returns the new violations.
func (o *oneWriter) check() ([]string, error) {
	if err := o.read(); err != nil {
		return nil, err
	}
	var top uint64
	for e := range o.first {
		top = max(top, e)
	}
	later := map[uint64]int64{}
	keep := o.pending[:0]
	bad := 0
	for _, w := range o.pending {
		if w.epoch >= top {
			keep = append(keep, w)
			continue
		}
		l, ok := later[w.epoch]
		if !ok {
			l = o.laterFirst(w.epoch)
			later[w.epoch] = l
		}
		if w.end <= l {
			continue
		}
		if p, proven, ok := o.straddle(w); ok {
			if proven {
				o.Excused++
				continue
			}
			o.Unproven++
			if len(o.straddles) < maxStraddles {
				o.straddles = append(o.straddles, Straddle{Node: w.node, Epoch: w.epoch, Off: w.off, Len: w.n,
					StartedBeforeStopMS: float64(p.start-w.start) / 1e6, EndedAfterContMS: float64(w.end-p.end) / 1e6,
					AfterNextEpochMS: float64(w.end-l) / 1e6})
			}
			if !o.strict {
				continue
			}
		}
		bad++
		if bad <= 5 {
			o.violations = append(o.violations, fmt.Sprintf("two writers: node %d epoch %d wrote [%d,%d) from %d to %d ns, ending %.3f ms after epoch %d+'s first write started%s",
				w.node, w.epoch, w.off, w.off+w.n, w.start, w.end, float64(w.end-l)/1e6, w.epoch+1, o.describePause(w)))
		}
	}
	if bad > 5 {
		o.violations = append(o.violations, fmt.Sprintf("two writers: %d more writes overlap a higher epoch", bad-5))
	}
	o.pending = keep
	out := o.violations
	o.violations = nil
	return out, nil
}

// straddle reports whether w started before a SIGSTOP window of its node
// and ended after it (ok), and whether a thread of the node was inside that
// very write (pwrite64 with its offset and length) when it stopped
// (proven). A proven write was finished by the kernel before the thread
// stopped. An unproven one was stopped in user space either after the
// lease gate and before pwrite (then it reached the disk after SIGCONT: a
// real late write) or after pwrite returned and before its end was logged
// (harmless); the write log cannot tell these apart.
func (o *oneWriter) straddle(w write) (pause, bool, bool) {
	k := [2]int64{w.off, w.n}
	for _, p := range o.pauses {
		if p.node == w.node && w.start < p.start && w.end > p.end && p.inKernel[k] > 0 {
			p.inKernel[k]--
			return p, true, true
		}
	}
	for _, p := range o.pauses {
		if p.node == w.node && w.start < p.start && w.end > p.end {
			return p, false, true
		}
	}
	return pause{}, false, false
}

// Straddle is a write that started before a SIGSTOP window of its node and
// ended after it, with no thread of the node inside it at the stop.
type Straddle struct {
	Node                int     `json:"node"`
	Epoch               uint64  `json:"epoch"`
	Off                 int64   `json:"offset"`
	Len                 int64   `json:"length"`
	StartedBeforeStopMS float64 `json:"started_before_stop_ms"`
	EndedAfterContMS    float64 `json:"ended_after_sigcont_ms"`
	AfterNextEpochMS    float64 `json:"ended_after_next_epoch_first_write_ms"`
}

// maxStraddles bounds the unproven straddles listed (all are counted).
const maxStraddles = 100

// epochs returns the epochs seen, sorted.
func (o *oneWriter) epochs() []uint64 {
	out := make([]uint64, 0, len(o.first))
	for e := range o.first {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// describePause says which SIGSTOP window of its node a write overlaps,
// and what the node's threads were writing when it stopped.
func (o *oneWriter) describePause(w write) string {
	for _, p := range o.pauses {
		if p.node == w.node && w.start < p.end && w.end > p.start {
			return fmt.Sprintf(" (it overlaps node %d's SIGSTOP window %d..%d ns; the write started %.3f ms before the stop; writes in the kernel at the stop: %v)",
				p.node, p.start, p.end, float64(p.start-w.start)/1e6, p.inKernel)
		}
	}
	return ""
}

// Pause is a SIGSTOP window of a node (CLOCK_MONOTONIC ns, as in the write
// logs) and the writes (offset, length) its threads were inside the kernel
// with when it stopped (StoppedWrites).
type Pause struct {
	Node       int
	Start, End int64
	InKernel   map[[2]int64]int
}

// OneWriterResult is what CheckOneWriter found.
type OneWriterResult struct {
	Violations        []string
	PerEpoch          map[uint64]int // writes logged per epoch
	Excused, Unproven int64          // straddles of a pause: proven in the kernel, and not
	Straddles         []Straddle     // the unproven ones (at most maxStraddles)
}

// CheckOneWriter checks complete --test-write-log files with the soak's
// one-writer rule (see oneWriter): a write of epoch e ends before the first
// write of any higher epoch, one node per epoch; a write straddling one of
// pauses is excused when a thread was inside it in the kernel, and, unless
// strict, when that is unproven.
func CheckOneWriter(paths []string, pauses []Pause, strict bool) (OneWriterResult, error) {
	o := newOneWriter(paths...)
	o.strict = strict
	for _, p := range pauses {
		o.addPause(pause{node: p.Node, start: p.Start, end: p.End, inKernel: p.InKernel})
	}
	vs, err := o.check()
	if err != nil {
		return OneWriterResult{}, err
	}
	return OneWriterResult{Violations: vs, PerEpoch: o.count, Excused: o.Excused, Unproven: o.Unproven, Straddles: o.straddles}, nil
}
