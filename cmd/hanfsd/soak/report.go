package soak

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

// Outage is what one injected failure cost the clients.
type Outage struct {
	N    int    `json:"n"`
	Kind Kind   `json:"kind"`
	At   string `json:"at"`
	// Node is the node the failure hit; From and To the primary before and
	// after; Epoch the lease epoch after.
	Node  int    `json:"node"`
	From  int    `json:"primary_before"`
	To    int    `json:"primary_after"`
	Epoch uint64 `json:"epoch_after"`
	// OutageMS is the longest single client call in the failure's window
	// (the outage a client saw); GapMS the longest time in which no client
	// got any reply; RecoveryMS the time from the injection until the
	// cluster had settled again (one primary, the other node a backup
	// hearing it, killed nodes restarted).
	OutageMS   float64 `json:"outage_ms"`
	GapMS      float64 `json:"gap_ms"`
	RecoveryMS float64 `json:"recovery_ms"`
}

// Violation is a broken guarantee.
type Violation struct {
	Kind    string `json:"kind"`
	Detail  string `json:"detail"`
	At      string `json:"at"`
	Failure int    `json:"after_failure"` // failures injected when it was found
}

// KindStats summarises the outages of one kind.
type KindStats struct {
	Count    int     `json:"count"`
	MaxMS    float64 `json:"max_outage_ms"`
	MedianMS float64 `json:"median_outage_ms"`
	MeanMS   float64 `json:"mean_outage_ms"`
}

// Report is the soak's result, printed at the end and written as JSON.
type Report struct {
	Command          string `json:"command"`
	Seed             uint64 `json:"seed"`
	Clients          int    `json:"clients"`
	FailuresPlanned  int    `json:"failures_planned"`
	FailuresInjected int    `json:"failures_injected"`
	// Complete is false while the run is going on, and when it was stopped
	// early (Stopped says why).
	Complete  bool    `json:"complete"`
	Stopped   string  `json:"stopped,omitempty"`
	Started   string  `json:"started"`
	Finished  string  `json:"finished,omitempty"`
	DurationS float64 `json:"duration_s"`

	ByKind        map[Kind]int       `json:"failures_by_kind"`
	Restarts      int                `json:"restarts"`
	OutageByKind  map[Kind]KindStats `json:"outage_by_kind"`
	LongestOutage *Outage            `json:"longest_outage,omitempty"`
	Outages       []Outage           `json:"outages"`
	Anomalies     []string           `json:"anomalies"`

	Operations    map[string]int64 `json:"operations"`
	OpsTotal      int64            `json:"operations_total"`
	BytesWritten  int64            `json:"bytes_written"`
	BytesVerified int64            `json:"bytes_verified"`
	FinalBytes    int64            `json:"final_tree_bytes_verified"`
	WriteLogLines int64            `json:"write_log_writes_checked"`
	WritesExcused int64            `json:"write_log_writes_excused_sigstop"`
	// Unproven straddles: writes that straddled a SIGSTOP of their node with
	// no thread inside them at the stop (see oneWriter.straddle). They are
	// violations with StrictSigstop, excused (and listed) otherwise.
	StrictSigstop    bool       `json:"strict_sigstop"`
	UnprovenStraddle int64      `json:"write_log_unproven_sigstop_straddles"`
	Straddles        []Straddle `json:"unproven_sigstop_straddles"`
	Epochs           int        `json:"epochs"`
	FsckClean        bool       `json:"fsck_clean"`
	FsckOutput       string     `json:"fsck_output,omitempty"`

	ViolationCount int         `json:"violation_count"`
	Violations     []Violation `json:"violations"`
	OK             bool        `json:"ok"`
}

// maxViolations bounds the violations listed (all are counted).
const maxViolations = 200

func (r *Report) addViolation(v Violation) {
	r.ViolationCount++
	if len(r.Violations) < maxViolations {
		r.Violations = append(r.Violations, v)
	}
}

// summarise fills the derived fields from Outages.
func (r *Report) summarise() {
	r.OutageByKind = map[Kind]KindStats{}
	per := map[Kind][]float64{}
	r.LongestOutage = nil
	for i := range r.Outages {
		o := &r.Outages[i]
		per[o.Kind] = append(per[o.Kind], o.OutageMS)
		if r.LongestOutage == nil || o.OutageMS > r.LongestOutage.OutageMS {
			r.LongestOutage = o
		}
	}
	for k, v := range per {
		sort.Float64s(v)
		sum := 0.0
		for _, x := range v {
			sum += x
		}
		r.OutageByKind[k] = KindStats{Count: len(v), MaxMS: v[len(v)-1], MedianMS: v[len(v)/2], MeanMS: round(sum / float64(len(v)))}
	}
	r.OK = r.ViolationCount == 0 && r.Complete
}

func round(ms float64) float64 { return float64(int64(ms*10+0.5)) / 10 }

func ms(d time.Duration) float64 { return round(float64(d) / 1e6) }

// writeJSON writes the report to path (atomically: temp file and rename).
func (r *Report) writeJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// Print writes the human-readable summary.
func (r *Report) Print(w io.Writer) {
	status := "PASS"
	switch {
	case r.ViolationCount > 0:
		status = "FAIL"
	case !r.Complete:
		status = "INCOMPLETE (no violation so far)"
	}
	fmt.Fprintf(w, "\nsoak %s: %d of %d failures injected in %.0fs (seed %d, %d clients)", status,
		r.FailuresInjected, r.FailuresPlanned, r.DurationS, r.Seed, r.Clients)
	if r.Stopped != "" {
		fmt.Fprintf(w, ", stopped early: %s", r.Stopped)
	}
	fmt.Fprintln(w)
	kinds := make([]string, 0, len(r.ByKind))
	for k := range r.ByKind {
		kinds = append(kinds, string(k))
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		s := r.OutageByKind[Kind(k)]
		fmt.Fprintf(w, "  %-14s %5d  outage median %7.0f ms, max %7.0f ms\n", k, r.ByKind[Kind(k)], s.MedianMS, s.MaxMS)
	}
	fmt.Fprintf(w, "  restarts %d, epochs %d\n", r.Restarts, r.Epochs)
	if r.LongestOutage != nil {
		o := r.LongestOutage
		fmt.Fprintf(w, "  longest outage: %.0f ms (failure %d, %s at %s)\n", o.OutageMS, o.N, o.Kind, o.At)
	}
	ops := make([]string, 0, len(r.Operations))
	for k, v := range r.Operations {
		ops = append(ops, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(ops)
	fmt.Fprintf(w, "  operations %d (%s)\n", r.OpsTotal, strings.Join(ops, ", "))
	fmt.Fprintf(w, "  bytes written %d, bytes verified %d (final tree %d)\n", r.BytesWritten, r.BytesVerified, r.FinalBytes)
	fmt.Fprintf(w, "  write log: %d writes checked, %d excused (in the kernel at SIGSTOP), %d straddled a SIGSTOP unproven (strict %v)\n",
		r.WriteLogLines, r.WritesExcused, r.UnprovenStraddle, r.StrictSigstop)
	fmt.Fprintf(w, "  fsck clean: %v\n", r.FsckClean)
	for _, a := range r.Anomalies {
		fmt.Fprintf(w, "  anomaly: %s\n", a)
	}
	fmt.Fprintf(w, "  violations: %d\n", r.ViolationCount)
	for i, v := range r.Violations {
		if i == 20 {
			fmt.Fprintf(w, "    ... (%d more in the JSON report)\n", len(r.Violations)-20)
			break
		}
		fmt.Fprintf(w, "    [%s] after failure %d: %s\n", v.Kind, v.Failure, v.Detail)
	}
}
