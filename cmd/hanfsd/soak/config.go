package soak

import (
	"fmt"
	"io"
	"log/slog"
	"time"
)

// Config is one soak run's settings. Zero values take the defaults of
// Defaults.
type Config struct {
	// Bin is the hanfsd binary the nodes run (the soak's own executable by
	// default).
	Bin string
	// Dir is the work directory: image, node logs, write logs, stall files.
	Dir string
	// ImageSize is the size of the image the soak formats.
	ImageSize string
	// Clients is the number of concurrent NFS clients.
	Clients int
	// Failures is how many failures to inject.
	Failures int
	// Interval is the workload time after a failure has recovered, before
	// the next one is injected.
	Interval time.Duration
	// Seed makes the schedule and the workload reproducible.
	Seed uint64
	// Kinds restricts the failures to these kinds (all by default).
	Kinds []Kind
	// StopFor, StallFor and PartitionFor are how long a SIGSTOP, a disk
	// stall and a partition last at least (they must exceed the lease
	// period; a stop and a stall also last until the backup has taken over).
	StopFor, StallFor, PartitionFor time.Duration
	// StrictSigstop counts a write that straddled a SIGSTOP of its node
	// without a thread inside it at the stop as a violation (by default it
	// is excused and listed; see oneWriter.straddle).
	StrictSigstop bool
	// StopOnViolation ends the run (final checks included) after the first
	// failure during which a violation was found.
	StopOnViolation bool
	// Recover bounds the wait for the cluster to settle after a failure.
	Recover time.Duration
	// ServeArgs are extra arguments for every `hanfsd serve`.
	ServeArgs []string
	// JSON, when set, receives the report after every failure and at the end.
	JSON string
	// Command is recorded in the report (the command line that ran it).
	Command string
	// Progress receives one line per failure (nil: none).
	Progress io.Writer
	// Logger receives diagnostics (nil: discarded).
	Logger *slog.Logger
}

// Defaults are the settings used where Config leaves zero values.
func Defaults() Config {
	return Config{ImageSize: "1GiB", Clients: 4, Failures: 36, Interval: 1500 * time.Millisecond, Seed: 1,
		StopFor: 2 * time.Second, StallFor: 2 * time.Second, PartitionFor: 1500 * time.Millisecond,
		Recover: 30 * time.Second}
}

// withDefaults fills zero fields from Defaults and checks the result.
func (c Config) withDefaults() (Config, error) {
	d := Defaults()
	if c.ImageSize == "" {
		c.ImageSize = d.ImageSize
	}
	if c.Clients == 0 {
		c.Clients = d.Clients
	}
	if c.Failures < 0 {
		return c, fmt.Errorf("failures %d: want >= 0", c.Failures)
	}
	if c.Interval == 0 {
		c.Interval = d.Interval
	}
	if c.StopFor == 0 {
		c.StopFor = d.StopFor
	}
	if c.StallFor == 0 {
		c.StallFor = d.StallFor
	}
	if c.PartitionFor == 0 {
		c.PartitionFor = d.PartitionFor
	}
	if c.Recover == 0 {
		c.Recover = d.Recover
	}
	if len(c.Kinds) == 0 {
		c.Kinds = AllKinds()
	}
	if c.Clients < 1 || c.Clients > 64 {
		return c, fmt.Errorf("clients %d: want 1..64", c.Clients)
	}
	if c.Bin == "" || c.Dir == "" {
		return c, fmt.Errorf("soak config needs Bin and Dir")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return c, nil
}
