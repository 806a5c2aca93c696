package fsstore

// Crash-consistency test (issue 2, "What must be shown", first bullet).
//
// Each case runs a seeded random workload (create, mkdir, symlink, link,
// write at random offsets and sizes, truncate up and down, chmod, unlink,
// rmdir, rename within and across directories, over existing targets; files
// pinned open and unlinked become orphans) from 1 to 4 goroutines on a store
// whose disk is wrapped in faultdisk, and cuts the power at one point: at the k-th flush (every k from 1 to the number of
// flushes the workload does), at a random write between flushes, or after
// the workload ended. A cut keeps a random subset of the writes not yet
// flushed and tears some of them. Then it reboots the disk and checks:
//
//  0. In one case of four, the power is cut again while the store opens
//     (replay and its checkpoint), at one of its first flushes or writes.
//  1. Fsck is clean (before replay: it reads through the journal).
//  2. Open replays the journal.
//  3. Each worker's subtree equals its model with every acknowledged
//     operation applied, and the operation in flight at the cut (at most one
//     per worker: a worker runs its operations one after another) either
//     wholly applied or not at all, except for in-place data sectors as
//     described at inflightFuzz. Names, inode numbers and generations of
//     acknowledged objects, the number of inodes in use (orphans freed),
//     modes, link counts, sizes, block counts, contents byte for byte and
//     symlink targets are compared. Workers own disjoint subtrees, so their
//     in-flight operations are independent.
//  4. Extending every file shows zeros past its old end (no stale bytes).
//  5. More random operations run on the reopened store; it closes cleanly,
//     Fsck is clean, and reopening it shows exactly the model (in one case
//     of crashFullEvery; in every case of the long test).
//
// The disk: a 64 MiB image formatted with a 256-block journal, so that
// checkpoints and journal wrap-around happen every few dozen operations; each
// case starts from a copy-on-write view of it (crash_disk_test.go).
//
// Environment:
//
//	HANFS_LONG_TEST=1       500 seeds of 30-120 operations, every cut
//	                        point checked fully: ~60,000 cut points, about
//	                        30 minutes with -race on 2 cores
//	HANFS_CRASH_SEED=N      run only seed N (every cut point of it)
//	HANFS_CRASH_CUT=C       with HANFS_CRASH_SEED: run only cut C, as printed
//	                        in a failure: flush:K, write:K or end
//	HANFS_CRASH_SEEDS=N     run seeds 1..N (default 130; long test 500)
//
// Every failure prints the seed and the cut. Replay is exact for the
// operations and the cut's choice of surviving writes; with one worker the
// interleaving is deterministic too, except that a checkpoint may overlap
// the next operation. With several workers the interleaving varies from run
// to run: replay a failure with -count=20 or so.

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hanfs/hanfs/shareddisk/faultdisk"
)

type crashParams struct {
	seed    uint64
	workers int
	ops     int // per worker, before the cut
	post    int // per worker, after reopening
	cache   int // Options.CacheBlocks
}

func crashParamsFor(seed uint64, long bool) crashParams {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	p := crashParams{seed: seed, workers: 1 + r.IntN(crashMaxWorkers), post: 3}
	total := 10 + r.IntN(10)
	if long {
		total = 30 + r.IntN(90)
		p.post = 10
	}
	p.ops = (total + p.workers - 1) / p.workers
	if r.IntN(3) == 0 {
		p.cache = 40 // a tiny metadata cache: evictions and re-reads through the journal images
	}
	return p
}

type cutKind int

const (
	cutEnd   cutKind = iota // after the workload: every operation acknowledged
	cutFlush                // at the k-th flush
	cutWrite                // at the k-th write
)

type crashCut struct {
	kind cutKind
	k    int
}

func (c crashCut) String() string {
	switch c.kind {
	case cutFlush:
		return fmt.Sprintf("flush:%d", c.k)
	case cutWrite:
		return fmt.Sprintf("write:%d", c.k)
	}
	return "end"
}

func parseCut(s string) (crashCut, error) {
	if s == "end" {
		return crashCut{kind: cutEnd}, nil
	}
	kind, num, ok := strings.Cut(s, ":")
	k, err := strconv.Atoi(num)
	if !ok || err != nil || k < 1 {
		return crashCut{}, fmt.Errorf("bad cut %q: want flush:K, write:K or end", s)
	}
	switch kind {
	case "flush":
		return crashCut{cutFlush, k}, nil
	case "write":
		return crashCut{cutWrite, k}, nil
	}
	return crashCut{}, fmt.Errorf("bad cut %q: want flush:K, write:K or end", s)
}

type crashWorker struct {
	id       int
	m        *model
	r        *rand.Rand
	hist     []crashOp // acknowledged operations
	inflight *crashOp
	ifErr    error
	pins     []Ino // pinned inodes (Store.Pin)
	err      error // an unexpected failure
}

func (w *crashWorker) run(s *Store, fd *faultdisk.Disk, n int) {
	for i := 0; i < n; i++ {
		w.pinOrUnpin(s)
		o := w.m.gen(w.r)
		res, err := w.m.exec(s, &o)
		if err != nil {
			if fd.Dead() {
				w.inflight, w.ifErr = &o, err
				return
			}
			w.err = fmt.Errorf("worker %d: operation %d %v failed before the cut: %w", w.id, i, &o, err)
			return
		}
		w.m.apply(&o, res)
		w.hist = append(w.hist, o)
	}
}

// pinOrUnpin sometimes pins a file (as an open FUSE file would be) or drops
// a pin: a pinned file whose last name goes becomes an orphan, freed at the
// last Unpin or, after a crash, when the store opens.
func (w *crashWorker) pinOrUnpin(s *Store) {
	if w.r.IntN(6) != 0 {
		return
	}
	if len(w.pins) > 0 && w.r.IntN(2) == 0 {
		i := w.r.IntN(len(w.pins))
		s.Unpin(w.pins[i])
		w.pins = slices.Delete(w.pins, i, i+1)
		return
	}
	for _, id := range w.m.sortedIDs() {
		if n := w.m.nodes[id]; n.kind == ModeRegular && w.r.IntN(2) == 0 {
			s.Pin(n.ino)
			w.pins = append(w.pins, n.ino)
			return
		}
	}
}

func (w *crashWorker) describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "worker %d: %d acknowledged operations", w.id, len(w.hist))
	from := max(0, len(w.hist)-6)
	if from > 0 {
		b.WriteString(" (last 6)")
	}
	for i := from; i < len(w.hist); i++ {
		fmt.Fprintf(&b, "\n\t\t%d: %v", i, &w.hist[i])
	}
	if w.inflight != nil {
		fmt.Fprintf(&b, "\n\t\tin flight: %v (returned %v)", w.inflight, w.ifErr)
	}
	return b.String()
}

type crashCount struct {
	flushes, writes int
	fired           bool // the cut happened during the workload
}

var errCrashCut = errors.New("power cut")

// runCrashCase runs one workload with one cut and checks the result.
func runCrashCase(tm *crashTemplate, p crashParams, cut crashCut, full bool) (crashCount, error) {
	var cnt crashCount
	disk := newCowDisk(tm.img, fmt.Sprintf("crash-disk(seed %d, cut %v)", p.seed, cut))
	fd := faultdisk.New(disk)
	cr := rand.New(rand.NewPCG(p.seed, uint64(cut.kind)<<32|uint64(cut.k)))
	fd.SetRand(cr)
	switch cut.kind {
	case cutFlush:
		fd.CutAtFlush(cut.k, cr)
	case cutWrite:
		fd.CutAtWrite(cut.k, cr)
	}
	s, err := Open(fd, Options{Logger: quietLogger(), CacheBlocks: p.cache})
	if err != nil {
		return cnt, fmt.Errorf("open: %w", err)
	}
	ws := make([]*crashWorker, p.workers)
	var wg sync.WaitGroup
	for i := range ws {
		w := &crashWorker{id: i, m: newModel(tm.tops[i], tm.gens[i]), r: rand.New(rand.NewPCG(p.seed, uint64(i)+1))}
		ws[i] = w
		wg.Go(func() { w.run(s, fd, p.ops) })
	}
	wg.Wait()
	cnt.flushes, cnt.writes, cnt.fired = fd.Flushes(), fd.Writes(), fd.Dead()
	for _, w := range ws {
		if w.err != nil {
			s.Kill(errCrashCut)
			return cnt, w.err
		}
	}
	if !cnt.fired {
		// The cut point lies past the workload: cut now, with everything
		// acknowledged (a checkpoint may still be running).
		if err := fd.PowerCutRandom(cr); err != nil && !errors.Is(err, faultdisk.ErrPowerCut) {
			return cnt, fmt.Errorf("power cut: %w", err) // ErrPowerCut: a checkpoint reached the cut point first
		}
	}
	s.Kill(errCrashCut)
	if cr.IntN(4) == 0 {
		if err := crashDuringRecovery(disk, p, cr); err != nil {
			return cnt, err
		}
	}
	return cnt, crashRecover(tm, p, disk, ws, full)
}

// crashDuringRecovery cuts the power again while the store opens (replays
// the journal and checkpoints), at one of its first flushes or writes.
func crashDuringRecovery(disk *cowDisk, p crashParams, cr *rand.Rand) error {
	fd := faultdisk.New(disk)
	fd.SetRand(cr)
	var what string
	if cr.IntN(2) == 0 {
		k := 1 + cr.IntN(2)
		fd.CutAtFlush(k, cr)
		what = fmt.Sprintf("flush %d", k)
	} else {
		k := 1 + cr.IntN(6)
		fd.CutAtWrite(k, cr)
		what = fmt.Sprintf("write %d", k)
	}
	s, err := Open(fd, Options{Logger: quietLogger(), CacheBlocks: p.cache})
	if err != nil {
		if !fd.Dead() {
			return fmt.Errorf("open for the second cut (at %s of the recovery): %w", what, err)
		}
		return nil
	}
	if !fd.Dead() {
		if err := fd.PowerCutRandom(cr); err != nil && !errors.Is(err, faultdisk.ErrPowerCut) {
			return fmt.Errorf("second power cut: %w", err)
		}
	}
	s.Kill(errCrashCut)
	return nil
}

// crashRecover reboots the disk and runs the checks of the file comment.
// Check 5 (more operations, close, fsck, reopen) runs only when full is set.
func crashRecover(tm *crashTemplate, p crashParams, disk *cowDisk, ws []*crashWorker, full bool) error {
	rep, err := Fsck(disk)
	if err != nil {
		return fmt.Errorf("fsck after the cut did not run: %w", err)
	}
	if !rep.OK() {
		return fmt.Errorf("fsck after the cut (before replay):\n%s", rep)
	}
	s, err := Open(disk, Options{Logger: quietLogger(), CacheBlocks: p.cache})
	if err != nil {
		return fmt.Errorf("reopen (journal replay) after the cut: %w", err)
	}
	defer func() { s.Kill(errCrashCut) }() // no-op after a successful Close
	if err := checkCrashRoot(s, tm); err != nil {
		return fmt.Errorf("after the cut: %w", err)
	}
	for i, w := range ws {
		snap, err := crashSnapshot(s, tm.tops[i])
		if err != nil {
			return fmt.Errorf("after the cut: worker %d: %w\n\t%s", i, err, w.describe())
		}
		a := w.m
		var b *model
		if w.inflight != nil {
			b = a.clone()
			b.apply(w.inflight, Attr{})
		}
		fa, fb := inflightFuzz(a, b, w.inflight)
		chosen, fz := a, fa
		inos, da := a.compare(snap, fa)
		if len(da) > 0 {
			if b == nil {
				return fmt.Errorf("after the cut: worker %d: the store lost or changed acknowledged operations:%s\n\t%s", i, joinDiffs(da), w.describe())
			}
			var db []string
			inos, db = b.compare(snap, fb)
			if len(db) > 0 {
				return fmt.Errorf("after the cut: worker %d: the store matches neither the acknowledged operations nor them plus the one in flight (half applied, or acknowledged work lost)\n\twithout %v:%s\n\twith it:%s\n\t%s",
					i, w.inflight, joinDiffs(da), joinDiffs(db), w.describe())
			}
			chosen, fz = b, fb
		}
		for id, a := range inos {
			chosen.nodes[id].ino, chosen.nodes[id].gen = a.Ino, a.Gen
		}
		if fz != nil { // adopt the sectors the checker allowed either way
			for path, id := range chosen.expect() {
				if id == fz.node {
					chosen.nodes[id].data = slices.Clone(snap[path].data)
					break
				}
			}
		}
		w.m = chosen
	}

	if err := checkCrashInodes(s, ws); err != nil {
		return fmt.Errorf("after the cut: %w", err)
	}
	// Extending a file must show zeros past its old end.
	for i, w := range ws {
		exp := w.m.expect()
		paths := make([]string, 0, len(exp))
		for path := range exp {
			paths = append(paths, path)
		}
		slices.Sort(paths)
		done := map[int]bool{}
		for _, path := range paths {
			id := exp[path]
			n := w.m.nodes[id]
			if n.kind != ModeRegular || done[id] {
				continue
			}
			done[id] = true
			old := len(n.data)
			newSize := uint64((old/bs+1)*bs + 100)
			if _, err := s.Setattr(nil, n.ino, SetAttr{Size: &newSize}); err != nil {
				return fmt.Errorf("after the cut: worker %d: extend %q to %d: %w", i, path, newSize, err)
			}
			w.m.apply(&crashOp{kind: opTruncate, node: id, size: newSize}, Attr{})
			buf := make([]byte, int(newSize)-old)
			if k, _, err := s.Read(nil, n.ino, buf, int64(old)); err != nil || k != len(buf) {
				return fmt.Errorf("after the cut: worker %d: read %q past its old end: %d bytes, %v", i, path, k, err)
			}
			for j, c := range buf {
				if c != 0 {
					return fmt.Errorf("after the cut: worker %d: file %q (inode %d) extended from %d to %d bytes shows stale byte %#x at offset %d, not zero: bytes past the end of file were left on disk\n\t%s",
						i, path, n.ino, old, newSize, c, old+j, w.describe())
				}
			}
		}
	}
	if !full {
		return nil
	}
	// More operations on the recovered store.
	for i, w := range ws {
		for j := 0; j < p.post; j++ {
			o := w.m.gen(w.r)
			res, err := w.m.exec(s, &o)
			if err != nil {
				return fmt.Errorf("after the cut: worker %d: operation %v on the recovered store: %w\n\t%s", i, &o, err, w.describe())
			}
			w.m.apply(&o, res)
		}
	}
	if err := s.Close(); err != nil {
		return fmt.Errorf("after the cut: close the recovered store: %w", err)
	}
	if rep, err := Fsck(disk); err != nil || !rep.OK() {
		return fmt.Errorf("after the cut, more operations and a clean close: fsck: %v\n%v", err, rep)
	}
	s2, err := Open(disk, Options{Logger: quietLogger()})
	if err != nil {
		return fmt.Errorf("after the cut: second reopen: %w", err)
	}
	defer s2.Close()
	if err := checkCrashRoot(s2, tm); err != nil {
		return fmt.Errorf("after the second reopen: %w", err)
	}
	if err := checkCrashInodes(s2, ws); err != nil {
		return fmt.Errorf("after the second reopen: %w", err)
	}
	for i, w := range ws {
		snap, err := crashSnapshot(s2, tm.tops[i])
		if err != nil {
			return fmt.Errorf("after the second reopen: worker %d: %w", i, err)
		}
		if _, d := w.m.compare(snap, nil); len(d) > 0 {
			return fmt.Errorf("after the second reopen: worker %d: state differs from the model:%s\n\t%s", i, joinDiffs(d), w.describe())
		}
	}
	return nil
}

// checkCrashInodes checks the store's inode count against the models: the
// root, the top directories and every object of every worker, so orphans
// (pinned when the power went) were freed when the store opened.
func checkCrashInodes(s *Store, ws []*crashWorker) error {
	want := uint64(1 + crashMaxWorkers)
	for _, w := range ws {
		want += uint64(len(w.m.nodes) - 1)
	}
	if got := s.StatFS().Files; got != want {
		return fmt.Errorf("%d inodes in use, want %d (orphans not freed, or inodes leaked)", got, want)
	}
	return nil
}

// checkCrashRoot checks that the root holds exactly the workers' top
// directories, which no worker changes.
func checkCrashRoot(s *Store, tm *crashTemplate) error {
	ra, err := s.Getattr(RootIno)
	if err != nil {
		return fmt.Errorf("root: %w", err)
	}
	if ra.Nlink != 2+crashMaxWorkers || ra.Size != crashMaxWorkers || ra.Mode != ModeDir|0o755 {
		return fmt.Errorf("root: nlink %d size %d mode %o", ra.Nlink, ra.Size, ra.Mode)
	}
	var got []string
	if err := s.ReadDir(nil, RootIno, 0, func(e DirEntry) bool {
		got = append(got, fmt.Sprintf("%s=%d", e.Name, e.Ino))
		return true
	}); err != nil {
		return fmt.Errorf("readdir root: %w", err)
	}
	var want []string
	for i, ino := range tm.tops {
		want = append(want, fmt.Sprintf("w%d=%d", i, ino))
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		return fmt.Errorf("root lists %v, want %v", got, want)
	}
	return nil
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return n
}

// crashFullEvery: one case in this many (and every case of the long test)
// runs check 5, which costs about a third of a case. Raise it to trade check 5
// for more cut points in the time budget.
const crashFullEvery = 2

// crashWriteCuts is how many random write numbers each seed cuts at.
func crashWriteCuts(long bool, flushes int) int {
	if long {
		return flushes
	}
	return max(4, flushes/3)
}

func TestCrashConsistency(t *testing.T) {
	tm, err := getCrashTemplate()
	if err != nil {
		t.Fatal(err)
	}
	long := os.Getenv("HANFS_LONG_TEST") == "1"
	nseeds := 130
	if long {
		nseeds = 500
	}
	nseeds = envInt(t, "HANFS_CRASH_SEEDS", nseeds)
	var seeds []uint64
	for i := 1; i <= nseeds; i++ {
		seeds = append(seeds, uint64(i))
	}
	var only *crashCut
	if v := os.Getenv("HANFS_CRASH_SEED"); v != "" {
		seeds = []uint64{uint64(envInt(t, "HANFS_CRASH_SEED", 0))}
		if c := os.Getenv("HANFS_CRASH_CUT"); c != "" {
			cut, err := parseCut(c)
			if err != nil {
				t.Fatal(err)
			}
			only = &cut
		}
	}
	start := time.Now()
	var cases, fired atomic.Int64
	t.Run("seeds", func(t *testing.T) {
		for _, seed := range seeds {
			p := crashParamsFor(seed, long)
			t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
				t.Parallel()
				failures := 0
				n := 0
				run := func(cut crashCut) crashCount {
					n++
					cnt, err := runCrashCase(tm, p, cut, long || only != nil || (n-1)%crashFullEvery == 0)
					cases.Add(1)
					if cnt.fired {
						fired.Add(1)
					}
					if err != nil {
						failures++
						t.Errorf("seed=%d cut=%v (workers=%d, ops/worker=%d, cache=%d): %v\n\treplay: HANFS_CRASH_SEED=%d HANFS_CRASH_CUT=%v go test -race -run TestCrashConsistency ./fsstore/",
							p.seed, cut, p.workers, p.ops, p.cache, err, p.seed, cut)
					}
					return cnt
				}
				if only != nil {
					run(*only)
					return
				}
				cnt := run(crashCut{kind: cutEnd})
				for k := 1; k <= cnt.flushes && failures < 3; k++ {
					run(crashCut{cutFlush, k})
				}
				wr := rand.New(rand.NewPCG(p.seed, 0x77))
				for j := crashWriteCuts(long, cnt.flushes); j > 0 && failures < 3 && cnt.writes > 0; j-- {
					run(crashCut{cutWrite, 1 + wr.IntN(cnt.writes)})
				}
			})
		}
	})
	t.Logf("%d cut points (%d cut during the workload) over %d seeds in %v", cases.Load(), fired.Load(), len(seeds), time.Since(start).Round(time.Millisecond))
}
