package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/hanfs/hanfs/cmd/hanfsd/soak"
)

// soakFlags are the command-line settings of `hanfsd soak`.
type soakFlags struct {
	cfg   soak.Config
	kinds string
	keep  bool
}

func newSoakCmd(e *env) *cobra.Command {
	f := soakFlags{cfg: soak.Defaults()}
	cmd := &cobra.Command{
		Use:   "soak [--failures N] [--interval D] [--seed S] [--json FILE]",
		Short: "Run a failover drill: a local two-node cluster, a checked workload, injected failures",
		Long: `Soak formats an image in a work directory and runs two "hanfsd serve" nodes on
it, their heartbeats through an in-process UDP relay (so the server link can be
cut), each with a write log and a stall file. Concurrent hard-mount NFS
clients create, write (FILE_SYNC), rename, remove and read files in their own
directories, and the soak records every acknowledged operation.

It injects --failures failures, one every --interval once the cluster has
settled, in seeded rounds of every kind: kill_primary (kill -9, then restart
it), stop_primary (SIGSTOP past the lease, then SIGCONT), partition (the
server link cut both ways, then healed), stall_primary (the primary's disk
stops answering past the lease), switchover, kill_backup (kill -9, then
restart it).

It checks all along and at the end: no client call fails, every
acknowledged write reads back byte for byte (and the final tree matches the
model), at most one node writes per epoch (the merged write logs), and fsck
finds the disk clean once the nodes are stopped. One line per failure shows
its kind and the outage the clients saw; the report at the end (also --json)
lists failures by kind, every outage, bytes verified and violations.
Ctrl-C stops injecting, verifies and reports (marked incomplete).

Exit status: 0 when there was no violation, 1 otherwise.`,
		Example: `  hanfsd soak --failures 36 --interval 1.5s
  hanfsd soak --failures 1000 --json docs/soak-report.json`,
		Args: exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSoak(e, &f, "hanfsd soak "+strings.Join(os.Args[2:], " "))
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&f.cfg.Failures, "failures", f.cfg.Failures, "how many failures to inject")
	fl.DurationVar(&f.cfg.Interval, "interval", f.cfg.Interval, "workload time between a failure's recovery and the next failure")
	fl.Uint64Var(&f.cfg.Seed, "seed", f.cfg.Seed, "seed of the schedule and the workload")
	fl.IntVar(&f.cfg.Clients, "clients", f.cfg.Clients, "concurrent NFS clients")
	fl.StringVar(&f.kinds, "kinds", "all", "comma-separated failure kinds to inject (kill_primary, stop_primary, partition, stall_primary, switchover, kill_backup)")
	fl.DurationVar(&f.cfg.StopFor, "stop-for", f.cfg.StopFor, "how long a SIGSTOP lasts at least (and until the backup took over)")
	fl.DurationVar(&f.cfg.StallFor, "stall-for", f.cfg.StallFor, "how long a disk stall lasts at least (and until the backup took over)")
	fl.DurationVar(&f.cfg.PartitionFor, "partition-for", f.cfg.PartitionFor, "how long a partition lasts")
	fl.DurationVar(&f.cfg.Recover, "recover-timeout", f.cfg.Recover, "how long the cluster may take to settle after a failure")
	fl.BoolVar(&f.cfg.StrictSigstop, "strict-sigstop", false, "count a write that straddled a SIGSTOP without being inside the kernel at the stop as a violation (default: excuse and list it)")
	fl.BoolVar(&f.cfg.StopOnViolation, "stop-on-violation", false, "stop injecting after the first failure that found a violation (then verify and report)")
	fl.StringVar(&f.cfg.Dir, "dir", "", "work directory (image, node logs, write logs; default a new temporary directory)")
	fl.BoolVar(&f.keep, "keep", false, "keep the work directory even when the soak passes")
	fl.StringVar(&f.cfg.ImageSize, "image-size", f.cfg.ImageSize, "size of the image to format")
	fl.StringVar(&f.cfg.Bin, "bin", "", "hanfsd binary the nodes run (default: this one)")
	fl.StringArrayVar(&f.cfg.ServeArgs, "serve-arg", nil, "an extra argument for every hanfsd serve (repeatable)")
	fl.StringVar(&f.cfg.JSON, "json", "", "write the report as JSON to this file (updated after every failure)")
	return cmd
}

func runSoak(e *env, f *soakFlags, command string) error {
	kinds, err := soak.ParseKinds(f.kinds)
	if err != nil {
		return usageError{err}
	}
	cfg := f.cfg
	cfg.Kinds, cfg.Command = kinds, command
	if cfg.Bin == "" {
		if cfg.Bin, err = os.Executable(); err != nil {
			return fmt.Errorf("soak: find own executable: %w", err)
		}
	}
	tmp := cfg.Dir == ""
	if tmp {
		if cfg.Dir, err = os.MkdirTemp("", "hanfs-soak-"); err != nil {
			return fmt.Errorf("soak: work directory: %w", err)
		}
	} else if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return fmt.Errorf("soak: work directory: %w", err)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg.Progress = e.stdout
	fmt.Fprintf(e.stdout, "hanfs soak: %d failures, interval %v, seed %d, %d clients, work directory %s\n",
		cfg.Failures, cfg.Interval, cfg.Seed, cfg.Clients, cfg.Dir)
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	rep, err := soak.Run(ctx, cfg)
	if err != nil {
		return fmt.Errorf("soak: %w (work directory %s)", err, cfg.Dir)
	}
	rep.Print(e.stdout)
	if cfg.JSON != "" {
		fmt.Fprintf(e.stdout, "report written to %s\n", cfg.JSON)
	}
	if rep.ViolationCount > 0 {
		return exitError{exitFailure, fmt.Errorf("soak: %d violation(s); logs in %s", rep.ViolationCount, cfg.Dir)}
	}
	if tmp && !f.keep {
		os.RemoveAll(cfg.Dir)
	} else {
		fmt.Fprintf(e.stdout, "work directory kept: %s\n", cfg.Dir)
	}
	return nil
}
