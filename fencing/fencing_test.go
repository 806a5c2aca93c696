package fencing

import (
	"errors"
	"testing"
	"time"

	"github.com/hanfs/hanfs/shareddisk"
)

func testArea(t *testing.T) *Area {
	t.Helper()
	d := shareddisk.NewMem(64 << 20)
	lay, err := shareddisk.ComputeLayout(64<<20, 0)
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewArea(d, lay, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestRecordsRoundTrip(t *testing.T) {
	a := testArea(t)
	l, _, err := a.ReadLease()
	if err != nil || l.State != Free {
		t.Fatalf("fresh lease: %+v %v", l, err)
	}
	want := Lease{State: Held, Owner: 2, Epoch: 7, Counter: 99, Incarnation: 12345}
	if err := a.WriteLease(want); err != nil {
		t.Fatal(err)
	}
	if got, _, err := a.ReadLease(); err != nil || got != want {
		t.Fatalf("lease round trip: %+v %v", got, err)
	}
	p := Presence{Node: 3, Incarnation: 5, Counter: 8, Epoch: 7, Role: RoleBackup, StatusURL: "http://127.0.0.1:9050", Service: "127.0.0.1:2049"}
	if err := a.WritePresence(p); err != nil {
		t.Fatal(err)
	}
	if got, ok, err := a.ReadPresence(3); err != nil || !ok || got != p {
		t.Fatalf("presence round trip: %+v %v %v", got, ok, err)
	}
	if _, ok, err := a.ReadPresence(4); err != nil || ok {
		t.Fatalf("unused presence: %v %v", ok, err)
	}
	if err := a.WritePresence(Presence{Node: 17}); err == nil {
		t.Fatal("node 17 accepted")
	}
}

func TestDecodeRejectsGarbage(t *testing.T) {
	b := make([]byte, recordSize)
	copy(b, leaseMagic)
	b[20] = 1
	if _, err := decodeLease(b); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("bad checksum: %v", err)
	}
	if _, _, err := decodePresence(b); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("bad presence: %v", err)
	}
}

func FuzzDecodeRecords(f *testing.F) {
	b := make([]byte, recordSize)
	Lease{State: Held, Owner: 1, Epoch: 3}.encode(b)
	f.Add(append([]byte(nil), b...))
	Presence{Node: 1, Role: RolePrimary, StatusURL: "x"}.encode(b)
	f.Add(append([]byte(nil), b...))
	f.Fuzz(func(t *testing.T, in []byte) {
		decodeLease(in)
		decodePresence(in)
	})
}

func TestTimingDefaultsValid(t *testing.T) {
	tm := DefaultTiming()
	if err := tm.Validate(); err != nil {
		t.Fatal(err)
	}
	// The safety argument of docs/failover.md: a taker claims no earlier
	// than TakeoverWait/(1+drift) of real time after the last renewal
	// started; the holder's last write starts before Validity*(1+drift) and
	// lands within IOTimeout.
	lastWriteLands := time.Duration(float64(tm.Validity())*(1+tm.Drift)) + tm.IOTimeout
	earliestClaim := time.Duration(float64(tm.TakeoverWait()) / (1 + tm.Drift))
	if lastWriteLands >= earliestClaim {
		t.Fatalf("unsafe defaults: the holder's last write may land at %v, a claim may come at %v", lastWriteLands, earliestClaim)
	}
	// The holder's last lease write (a renewal) must land before any claim.
	lastLeaseWriteLands := time.Duration(float64(tm.RenewWindow())*(1+tm.Drift)) + tm.IOTimeout
	if lastLeaseWriteLands >= earliestClaim {
		t.Fatalf("unsafe defaults: a renewal may land at %v, a claim may come at %v", lastLeaseWriteLands, earliestClaim)
	}
	bad := tm
	bad.LeasePeriod = 300 * time.Millisecond
	if bad.Validate() == nil {
		t.Fatal("a lease period that leaves no room for a failed renewal was accepted")
	}
}

// fakeClock is a settable clock.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestHolderRenewExpireAndLose(t *testing.T) {
	a := testArea(t)
	tm := DefaultTiming()
	clk := &fakeClock{t: time.Unix(1000, 0)}
	claim := ClaimFor(Lease{}, 1, 42)
	if err := a.WriteLease(claim); err != nil {
		t.Fatal(err)
	}
	var lostErr error
	h := NewHolder(a, tm, claim, clk.now(), clk.now, func(err error) { lostErr = err })
	if err := h.Gate(); err != nil {
		t.Fatalf("fresh holder gate: %v", err)
	}
	clk.t = clk.t.Add(tm.RenewInterval)
	if err := h.Renew(); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := a.ReadLease(); got.Counter != 1 {
		t.Fatalf("counter after renewal: %d", got.Counter)
	}
	// No renewal for the validity: the gate closes by the holder's own clock.
	clk.t = clk.t.Add(tm.Validity())
	if err := h.Gate(); !errors.Is(err, ErrLeaseExpired) {
		t.Fatalf("gate after the deadline: %v", err)
	}
	// A second holder: another node claims over it; its next renewal loses.
	claim2 := ClaimFor(claim, 1, 43)
	a.WriteLease(claim2)
	h2 := NewHolder(a, tm, claim2, clk.now(), clk.now, nil)
	a.WriteLease(ClaimFor(claim2, 2, 7))
	if err := h2.Renew(); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("renew after another node's claim: %v", err)
	}
	if err := h2.Gate(); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("gate after loss: %v", err)
	}
	if got, _, _ := a.ReadLease(); got.Owner != 2 {
		t.Fatalf("the losing holder overwrote the claim: %+v", got)
	}
	_ = lostErr
}

func TestWatcher(t *testing.T) {
	var w Watcher
	t0 := time.Unix(0, 0)
	if !w.Observe(Lease{Counter: 1}, []byte{1}, t0) {
		t.Fatal("first observation is a change")
	}
	if w.Observe(Lease{Counter: 1}, []byte{1}, t0.Add(time.Second)) {
		t.Fatal("same bytes reported as a change")
	}
	if w.UnchangedFor(t0.Add(time.Second)) != time.Second {
		t.Fatal("unchanged duration")
	}
	if !w.Observe(Lease{Counter: 2}, []byte{2}, t0.Add(2*time.Second)) || w.UnchangedFor(t0.Add(2*time.Second)) != 0 {
		t.Fatal("change not seen")
	}
}

func TestAcquireRefusesLiveHolder(t *testing.T) {
	a := testArea(t)
	tm := DefaultTiming()
	claim := ClaimFor(Lease{}, 1, 1)
	a.WriteLease(claim)
	h := NewHolder(a, tm, claim, time.Now(), nil, nil)
	stop := make(chan struct{})
	go h.Run(stop)
	if _, _, err := Acquire(a, tm, 16, 99); !errors.Is(err, ErrHeld) {
		t.Fatalf("acquire while renewed: %v", err)
	}
	close(stop)
	// The holder stopped renewing: after the takeover wait, the lease is ours.
	got, _, err := Acquire(a, tm, 16, 99)
	if err != nil || got.Owner != 16 || got.Epoch != 2 {
		t.Fatalf("acquire after the holder stopped: %+v %v", got, err)
	}
}
