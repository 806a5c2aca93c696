package main

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/hanfs/hanfs/fencing"
	"github.com/hanfs/hanfs/fsstore"
	"github.com/hanfs/hanfs/fusemount"
	"github.com/hanfs/hanfs/shareddisk"
)

type mountFlags struct {
	disk   string
	debug  bool
	node   int
	timing fencing.Timing
}

func newMountCmd(e *env) *cobra.Command {
	f := mountFlags{timing: fencing.DefaultTiming()}
	cmd := &cobra.Command{
		Use:   "mount --disk PATH DIR [--debug]",
		Short: "Mount a hanfs disk on a local directory through FUSE",
		Long: `Mount opens the file system on a hanfs disk, replays its journal, and serves it
on directory DIR through FUSE until it is unmounted. It runs in the foreground
and logs to stderr. SIGINT (Ctrl-C) or SIGTERM unmounts cleanly; "umount DIR"
works too. Every write is on the disk when the system call returns.

As root, the mount is made with mount(2) directly and needs no fusermount.

The mount takes part in the disk lease, as a node of its own (--node, default
16): it refuses to mount while a live node holds the lease (the error names
it), waits out the lease of a node that died, and renews the lease while
mounted. If it loses the lease, it stops writing at once. So a FUSE mount and
an NFS server never write the disk together. To get a local mount on a
running cluster, use "hanfsd serve --fuse-mount DIR" on the nodes instead.`,
		Example: `  mkdir -p ./data/mnt
  sudo hanfsd mount --disk ./data/hanfs.img ./data/mnt`,
		Args: exactArgs(1, "the mount point DIR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runMount(e, &f, args[0])
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.disk, "disk", "", "block device or image file holding the file system (required)")
	fl.BoolVar(&f.debug, "debug", false, "log debug messages and every FUSE request")
	fl.IntVar(&f.node, "node", 16, "the node id the mount uses in the disk lease (1..16, unused by the cluster's nodes)")
	addTimingFlags(fl, &f.timing)
	return cmd
}

func runMount(e *env, f *mountFlags, dir string) error {
	if err := requireDisk(f.disk); err != nil {
		return err
	}
	level := slog.LevelInfo
	if f.debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
	if err := checkMountPoint(log, dir); err != nil {
		return err
	}

	d, err := shareddisk.OpenFile(f.disk, shareddisk.OpenOptions{})
	if err != nil {
		return err
	}
	defer d.Close()
	start := time.Now()
	if err := f.timing.Validate(); err != nil {
		return usageError{err}
	}
	holder, stopRenew, err := acquireLocalLease(log, d, f.node, f.timing)
	if err != nil {
		return err
	}
	defer close(stopRenew)
	store, err := fsstore.Open(d, fsstore.Options{Logger: log, WriteGate: holder.Gate})
	if err != nil {
		return err
	}
	sb := store.Superblock()
	if sb.OtherCopyErr != nil {
		log.Warn("superblock copy damaged; run hanfsd fsck", "disk", f.disk, "using", sb.ReadFrom.String(), "err", sb.OtherCopyErr)
	}
	srv, err := fusemount.Mount(store, dir, fusemount.Options{Logger: log, Debug: f.debug})
	if err != nil {
		store.Close()
		return err
	}
	log.Info("mounted", "disk", f.disk, "dir", dir, "uuid", sb.UUIDString(), "label", sb.Label,
		"open_time", time.Since(start).Round(time.Millisecond))

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	done := make(chan struct{})
	go func() { srv.Wait(); close(done) }()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()

	var exitErr error
	unmounting := false
loop:
	for {
		select {
		case <-done:
			break loop
		case sig := <-sigs:
			if unmounting {
				log.Warn("second signal: exiting without waiting for open files", "signal", sig.String())
				exitErr = errors.New("interrupted while files on the mount were still open")
				break loop
			}
			unmounting = true
			log.Info("unmounting", "signal", sig.String(), "dir", dir)
			unmount(log, srv)
		case <-tick.C:
			if err := store.Err(); err != nil && !unmounting {
				log.Error("the store stopped; unmounting", "err", err)
				exitErr = fmt.Errorf("store stopped: %w", err)
				unmounting = true
				unmount(log, srv)
			}
		}
	}
	if err := store.Close(); err != nil && exitErr == nil {
		exitErr = fmt.Errorf("close store: %w", err)
	}
	if holder.Err() == nil {
		if err := holder.Release(0); err != nil {
			log.Warn("release the disk lease", "err", err)
		}
	}
	if exitErr == nil {
		log.Info("unmounted", "dir", dir)
	}
	return exitErr
}

// unmount unmounts srv, detaching it lazily when files on it are open.
func unmount(log *slog.Logger, srv *fusemount.Server) {
	err := srv.Unmount()
	if err == nil {
		return
	}
	if errors.Is(err, syscall.EBUSY) {
		log.Warn("mount point busy: detaching it; exiting when the last open file is closed (signal again to exit now)", "dir", srv.Dir())
	} else {
		log.Warn("unmount failed; detaching", "dir", srv.Dir(), "err", err)
	}
	if err := srv.UnmountLazy(); err != nil {
		log.Error("lazy unmount failed", "dir", srv.Dir(), "err", err)
	}
}

// checkMountPoint checks that dir is a directory, first detaching a dead
// FUSE mount left on it by a killed process.
func checkMountPoint(log *slog.Logger, dir string) error {
	st, err := os.Stat(dir)
	if errors.Is(err, syscall.ENOTCONN) {
		log.Warn("mount point holds a dead FUSE mount (its server was killed); detaching it", "dir", dir)
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			return fmt.Errorf("mount point %s holds a dead FUSE mount and detaching it failed: %w (try: umount -l %s)", dir, err, dir)
		}
		st, err = os.Stat(dir)
	}
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("mount point %s does not exist (create it with mkdir -p %s)", dir, dir)
	case err != nil:
		return fmt.Errorf("mount point: %w", err)
	case !st.IsDir():
		return fmt.Errorf("mount point %s is not a directory", dir)
	}
	return nil
}

// acquireLocalLease takes the disk lease for a local mount and keeps it
// renewed until stop is closed.
func acquireLocalLease(log *slog.Logger, d shareddisk.Disk, node int, t fencing.Timing) (*fencing.Holder, chan struct{}, error) {
	sb, err := shareddisk.ReadSuperblock(d)
	if err != nil {
		return nil, nil, err
	}
	area, err := fencing.NewArea(d, sb.Layout, t.IOTimeout)
	if err != nil {
		return nil, nil, err
	}
	var b [8]byte
	rand.Read(b[:])
	inc := binary.LittleEndian.Uint64(b[:]) | 1
	log.Info("taking the disk lease (waits out a dead holder's lease)", "node", node)
	claim, claimStart, err := fencing.Acquire(area, t, node, inc)
	if err != nil {
		return nil, nil, exitError{code: exitFailure, err: fmt.Errorf("refusing to mount %s read-write: %w", d.Name(), err)}
	}
	h := fencing.NewHolder(area, t, claim, claimStart, nil, func(err error) {
		log.Error("lost the disk lease: no more writes", "err", err)
	})
	// The claim's write started the lease; the settle delay used part of
	// it. Renew at once, so writing starts with a full lease.
	if err := h.RenewAfterConfirm(); err != nil {
		return nil, nil, fmt.Errorf("first renewal of the disk lease: %w", err)
	}
	stop := make(chan struct{})
	go h.Run(stop)
	log.Info("holding the disk lease", "node", node, "epoch", claim.Epoch)
	return h, stop, nil
}
