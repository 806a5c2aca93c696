package soak

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/hanfs/hanfs/nfs/client"
	"github.com/hanfs/hanfs/nfs/rpcwire"
)

// soak is one run.
type soak struct {
	cfg     Config
	cluster *cluster
	work    *workload
	writes  *oneWriter
	start   time.Time

	mu     sync.Mutex // guards report
	report Report
}

// violate records a violation (safe for concurrent use).
func (s *soak) violate(kind, detail string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.report.addViolation(Violation{Kind: kind, Detail: detail, At: time.Now().Format(time.RFC3339Nano), Failure: s.report.FailuresInjected})
	s.cfg.Logger.Error("violation", "kind", kind, "detail", detail)
}

func (s *soak) violations() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.report.ViolationCount
}

// Run runs the soak until cfg.Failures failures were injected or ctx ends,
// verifies the end state and returns the report. An error means the soak
// itself could not run; violations are in the report (report.OK false).
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &soak{cfg: cfg, start: time.Now()}
	s.report = Report{Command: cfg.Command, Seed: cfg.Seed, Clients: cfg.Clients, FailuresPlanned: cfg.Failures,
		Started: s.start.Format(time.RFC3339), ByKind: map[Kind]int{}, Outages: []Outage{}, Anomalies: []string{},
		Violations: []Violation{}, Operations: map[string]int64{}}
	if s.cluster, err = newCluster(cfg); err != nil {
		return nil, err
	}
	s.writes = newOneWriter(s.cluster.nodes[0].writeLog, s.cluster.nodes[1].writeLog)
	s.writes.strict = cfg.StrictSigstop
	if err := s.cluster.start(cfg.Recover); err != nil {
		s.cluster.stop()
		return nil, fmt.Errorf("start the cluster: %w", err)
	}
	cfg.Logger.Info("cluster up", "service", s.cluster.service, "dir", cfg.Dir)
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	s.work, err = startWorkload(dctx, s.cluster.service, cfg.Clients, cfg.Seed, s.violate)
	cancel()
	if err != nil {
		s.cluster.stop()
		return nil, err
	}
	s.loop(ctx)
	s.finish()
	return &s.report, nil
}

// loop injects the scheduled failures, one at a time, each after the
// cluster settled and the workload ran for the interval.
func (s *soak) loop(ctx context.Context) {
	cfg := s.cfg
	if err := s.work.waitProgress(int64(4*cfg.Clients), cfg.Recover); err != nil {
		s.violate("workload_stuck", err.Error())
		s.stopEarly("the workload did not start")
		return
	}
	for i, k := range schedule(cfg.Kinds, cfg.Failures, cfg.Seed) {
		select {
		case <-ctx.Done():
			s.stopEarly("interrupted")
			return
		case <-time.After(cfg.Interval):
		}
		p, _, err := s.cluster.waitStable(cfg.Recover)
		if err != nil {
			s.violate("no_recovery", err.Error())
			s.stopEarly("the cluster did not settle")
			return
		}
		s.work.resetWindow()
		t0 := time.Now()
		in, ierr := s.inject(k, p)
		s.mu.Lock()
		s.report.FailuresInjected++
		s.report.ByKind[k]++
		s.report.Restarts += in.restarts
		s.mu.Unlock()
		if ierr != nil {
			s.violate("no_recovery", fmt.Sprintf("%s: %v", k, ierr))
		}
		to, st, err := s.cluster.waitStable(cfg.Recover)
		recovery := time.Since(t0)
		if err != nil {
			s.violate("no_recovery", fmt.Sprintf("%s: %v", k, err))
			s.stopEarly("the cluster did not settle")
			return
		}
		if err := s.work.waitProgress(int64(2*cfg.Clients), cfg.Recover); err != nil {
			s.violate("workload_stuck", fmt.Sprintf("after %s: %v", k, err))
			s.stopEarly("the workload stopped")
			return
		}
		wait, gap := s.work.window()
		if k == Partition && to != p {
			s.anomaly(fmt.Sprintf("failure %d: a network-only partition moved the primary from node %d to node %d", i+1, p, to))
		}
		vs, err := s.writes.check()
		if err != nil {
			s.cfg.Logger.Warn("write log check", "err", err)
		}
		for _, v := range vs {
			s.violate("two_writers", v)
		}
		o := Outage{N: i + 1, Kind: k, At: t0.Format(time.RFC3339Nano), Node: in.node, From: p, To: to, Epoch: st.LeaseEpoch,
			OutageMS: ms(wait), GapMS: ms(gap), RecoveryMS: ms(recovery)}
		s.mu.Lock()
		s.report.Outages = append(s.report.Outages, o)
		s.mu.Unlock()
		s.progress(o)
		s.saveJSON()
		if cfg.StopOnViolation && s.violations() > 0 {
			s.stopEarly("stopped at the first violation (--stop-on-violation)")
			return
		}
	}
	s.mu.Lock()
	s.report.Complete = true
	s.mu.Unlock()
}

func (s *soak) anomaly(a string) {
	s.mu.Lock()
	s.report.Anomalies = append(s.report.Anomalies, a)
	s.mu.Unlock()
	s.cfg.Logger.Warn("anomaly", "what", a)
}

func (s *soak) stopEarly(why string) {
	s.mu.Lock()
	if s.report.Stopped == "" {
		s.report.Stopped = why
	}
	s.mu.Unlock()
}

// progress prints one line per failure.
func (s *soak) progress(o Outage) {
	if s.cfg.Progress == nil {
		return
	}
	w := s.work
	fmt.Fprintf(s.cfg.Progress, "%s [%d/%d] %-13s node %d: primary %d -> %d (epoch %d), outage %6.0f ms, gap %6.0f ms, settled in %6.0f ms | ops %d, written %d MiB, verified %d MiB, violations %d\n",
		time.Now().Format("15:04:05"), o.N, s.cfg.Failures, o.Kind, o.Node, o.From, o.To, o.Epoch, o.OutageMS, o.GapMS, o.RecoveryMS,
		w.total.Load(), w.written.Load()>>20, w.checked.Load()>>20, s.violations())
}

// fillCounters copies the workload's and checker's counters into the report.
func (s *soak) fillCounters() {
	w := s.work
	s.mu.Lock()
	defer s.mu.Unlock()
	r := &s.report
	r.Operations = map[string]int64{"create": w.ops.Create.Load(), "write": w.ops.Write.Load(), "read": w.ops.Read.Load(),
		"rename": w.ops.Rename.Load(), "remove": w.ops.Remove.Load()}
	r.OpsTotal = w.total.Load()
	r.BytesWritten = w.written.Load()
	r.BytesVerified = w.checked.Load() + r.FinalBytes
	r.WriteLogLines = s.writes.Lines
	r.WritesExcused = s.writes.Excused
	r.StrictSigstop = s.writes.strict
	r.UnprovenStraddle = s.writes.Unproven
	r.Straddles = append([]Straddle{}, s.writes.straddles...)
	r.Epochs = len(s.writes.epochs())
	r.DurationS = round(time.Since(s.start).Seconds())
	r.summarise()
}

// saveJSON writes the report so far (a long run leaves a partial report
// behind if it is killed).
func (s *soak) saveJSON() {
	if s.cfg.JSON == "" {
		return
	}
	s.fillCounters()
	s.mu.Lock()
	err := s.report.writeJSON(s.cfg.JSON)
	s.mu.Unlock()
	if err != nil {
		s.cfg.Logger.Warn("save report", "err", err)
	}
}

// finish stops the workload, verifies the tree through a fresh client,
// stops the nodes, checks the write logs a last time, runs fsck and
// writes the report.
func (s *soak) finish() {
	s.work.halt()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	c, err := client.DialConfig(ctx, client.Config{Addr: s.cluster.service, Cred: &rpcwire.AuthUnix{Machine: "soak-verify"}})
	cancel()
	if err != nil {
		s.violate("final_check", fmt.Sprintf("connect for the final check: %v", err))
	} else {
		n, err := s.work.verifyAll(c)
		if err != nil {
			s.violate("final_check", err.Error())
		}
		s.mu.Lock()
		s.report.FinalBytes = n
		s.mu.Unlock()
		c.Close()
	}
	s.work.close()
	s.cluster.stop()
	vs, err := s.writes.check()
	if err != nil {
		s.violate("final_check", fmt.Sprintf("write logs: %v", err))
	}
	for _, v := range vs {
		s.violate("two_writers", v)
	}
	for _, n := range s.cluster.nodes {
		if b, err := os.ReadFile(n.logPath); err == nil && strings.Contains(string(b), "panic:") {
			s.violate("node_panic", fmt.Sprintf("node %d logged a panic (see %s)", n.id, n.logPath))
		}
	}
	out, err := exec.Command(s.cfg.Bin, "fsck", "--disk", s.cluster.img).CombinedOutput()
	s.mu.Lock()
	s.report.FsckClean = err == nil
	s.report.FsckOutput = strings.TrimSpace(string(out))
	s.report.Finished = time.Now().Format(time.RFC3339)
	s.mu.Unlock()
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			s.violate("fsck", fmt.Sprintf("run fsck: %v", err))
		} else {
			s.violate("fsck", fmt.Sprintf("fsck exit status %d: %s", ee.ExitCode(), lastLines(string(out), 20)))
		}
	}
	s.saveJSON()
	if s.cfg.JSON == "" {
		s.fillCounters()
	}
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
