package fencing

import (
	"fmt"
	"time"
)

// Timing holds the lease's time constants. Every node of a cluster must use
// the same values.
type Timing struct {
	// LeasePeriod is how long a renewal keeps the lease.
	LeasePeriod time.Duration
	// RenewInterval is how often the holder renews.
	RenewInterval time.Duration
	// IOTimeout bounds every disk I/O (a hardware watchdog enforces it in
	// production). An I/O that takes longer is reported loudly.
	IOTimeout time.Duration
	// Drift bounds how much faster or slower one node's monotonic clock may
	// run than another's (0.01 = 1%).
	Drift float64
	// PollInterval is how often a backup reads the lease record.
	PollInterval time.Duration
}

// DefaultTiming is tuned for a failover of about 1.5 s on a local disk or
// image file; see docs/failover.md for the argument that it is safe.
func DefaultTiming() Timing {
	return Timing{
		LeasePeriod:   800 * time.Millisecond,
		RenewInterval: 100 * time.Millisecond,
		IOTimeout:     150 * time.Millisecond,
		Drift:         0.01,
		PollInterval:  25 * time.Millisecond,
	}
}

// TakeoverWait is how long a taker must see the lease record unchanged, by
// its own clock, before it may claim the lease: the lease period stretched
// by the worst clock drift, plus one I/O timeout for a renewal in flight.
func (t Timing) TakeoverWait() time.Duration {
	return time.Duration(float64(t.LeasePeriod)*(1+t.Drift)) + t.IOTimeout + t.PollInterval
}

// Validity is how long after starting a successful renewal the holder may
// still start writes, by its own clock: the lease period shrunk by the worst
// drift, less one I/O timeout so that a write started at the last moment
// lands before any taker can claim.
func (t Timing) Validity() time.Duration {
	return time.Duration(float64(t.LeasePeriod)*(1-t.Drift)) - t.IOTimeout
}

// SettleDelay is how long a claimant waits between writing its claim and
// reading it back. Any competing claim, and any renewal whose read came
// before our claim, lands within that time (each is one read and one write,
// at most 2 I/O timeouts); a holder whose renewal landed just before our
// claim reads the claim at its next renewal (one renew interval plus an I/O
// timeout later) and stops, and its last write lands within one more I/O
// timeout.
func (t Timing) SettleDelay() time.Duration {
	return t.RenewInterval + 3*t.IOTimeout
}

// RenewWindow is how long after starting a lease write (a claim or a
// renewal) the holder may still start the next lease write, by its own clock:
// no other node can claim before a watcher has seen the record unchanged for
// the takeover wait (stretched by drift on both clocks), and the write must
// land before that.
func (t Timing) RenewWindow() time.Duration {
	return time.Duration(float64(t.TakeoverWait())/((1+t.Drift)*(1+t.Drift))) - t.IOTimeout
}

// Validate checks that the constants make the lease safe and live.
func (t Timing) Validate() error {
	switch {
	case t.LeasePeriod <= 0 || t.RenewInterval <= 0 || t.IOTimeout <= 0 || t.PollInterval <= 0:
		return fmt.Errorf("lease timing: every duration must be positive (%+v)", t)
	case t.Drift < 0 || t.Drift >= 0.5:
		return fmt.Errorf("lease timing: drift %.3f must be in [0, 0.5)", t.Drift)
	case t.Validity() <= 2*t.RenewInterval:
		return fmt.Errorf("lease timing: the lease period %v leaves a validity of %v after drift and io-timeout; it must exceed two renew intervals (%v) so that one failed renewal does not fence the holder",
			t.LeasePeriod, t.Validity(), 2*t.RenewInterval)
	case t.SettleDelay()+t.IOTimeout+t.PollInterval >= t.RenewWindow():
		return fmt.Errorf("lease timing: a claim's settle delay %v plus its confirming read (io-timeout %v) and a poll interval must end before the renew window %v: raise the lease period",
			t.SettleDelay(), t.IOTimeout, t.RenewWindow())
	case t.PollInterval > t.LeasePeriod/4:
		return fmt.Errorf("lease timing: poll interval %v must be at most a quarter of the lease period %v", t.PollInterval, t.LeasePeriod)
	}
	return nil
}
