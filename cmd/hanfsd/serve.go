package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/hanfs/hanfs/fsstore"
	"github.com/hanfs/hanfs/nfs"
	"github.com/hanfs/hanfs/shareddisk"
)

func newServeCmd(e *env) *cobra.Command {
	var c serveConfig
	var configFile string
	cmd := &cobra.Command{
		Use:   "serve --disk PATH --listen ADDR [--metrics ADDR] [--export SPEC]... [--config FILE]",
		Short: "Serve a hanfs disk over NFSv3",
		Long: `Serve opens the file system on a hanfs disk, replays its journal, bumps the
disk's epoch (which becomes the NFS write verifier, so clients resend data an
earlier server had not made durable) and serves NFSv3 and MOUNT v3 on one TCP
port. Every reply to a request that changes something is sent only after the
change is on the disk.

Exports name directories inside the store and the client networks allowed to
use them: --export "PATH [NETWORKS [OPTIONS]]", repeatable. NETWORKS is a
comma-separated list of CIDR prefixes or addresses, or * for any; OPTIONS are
rw (default), ro, root_squash (default), no_root_squash, all_squash,
anonuid=N, anongid=N. Without --export, / is exported to loopback clients
only (127.0.0.0/8 and ::1), read-write with root squashed.

A config file (--config) holds the same settings, one per line:
  disk /dev/sdb
  listen 0.0.0.0:2049
  metrics 127.0.0.1:9049
  export / 10.0.0.0/8 rw
Flags override the file.

--metrics serves Prometheus metrics on /metrics and the node's state as JSON
on /status. SIGINT or SIGTERM stops the server cleanly (the journal is
checkpointed).`,
		Example: `  hanfsd serve --disk ./data/hanfs.img --listen 127.0.0.1:2049 --metrics 127.0.0.1:9049 \
      --export "/ 127.0.0.0/8 rw,no_root_squash"
  # from a Linux client:
  mount -t nfs -o vers=3,proto=tcp,port=2049,mountport=2049,nolock,hard 127.0.0.1:/ /mnt`,
		Args: exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, args []string) error {
			if configFile != "" {
				if err := loadConfigFile(configFile, &c, func(n string) bool { return cmd.Flags().Changed(n) }); err != nil {
					return usageError{err}
				}
			}
			return runServe(e, &c)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&c.disk, "disk", "", "block device or image file holding the file system (required)")
	fl.StringVar(&c.listen, "listen", "127.0.0.1:2049", "address and port for NFS and MOUNT")
	fl.StringVar(&c.metrics, "metrics", "", "address for the HTTP endpoint with /metrics and /status (off when empty)")
	fl.StringArrayVar(&c.exports, "export", nil, `export "PATH [NETWORKS [OPTIONS]]" (repeatable)`)
	fl.StringVar(&configFile, "config", "", "config file (settings one per line; flags override it)")
	fl.BoolVar(&c.debug, "debug", false, "log debug messages")
	fl.StringVar(&c.exitAfter, "test-exit-after-commit", "", "fault injection for tests: exit at once (status 137, like kill -9) after the first durable request of this NFS procedure (e.g. CREATE), before replying")
	_ = fl.MarkHidden("test-exit-after-commit")
	return cmd
}

// verifierFor derives the NFSv3 write verifier from the disk's epoch.
func verifierFor(epoch uint64) [8]byte {
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], epoch)
	return v
}

func runServe(e *env, c *serveConfig) error {
	if err := requireDisk(c.disk); err != nil {
		return err
	}
	var exports []nfs.Export
	for _, spec := range c.exports {
		x, err := nfs.ParseExport(spec)
		if err != nil {
			return usageError{err}
		}
		exports = append(exports, x)
	}
	level := slog.LevelInfo
	if c.debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
	start := time.Now()
	d, err := shareddisk.OpenFile(c.disk, shareddisk.OpenOptions{})
	if err != nil {
		return err
	}
	defer d.Close()
	store, err := fsstore.Open(d, fsstore.Options{Logger: log})
	if err != nil {
		return err
	}
	defer store.Close()
	epoch, err := store.BumpEpoch()
	if err != nil {
		return fmt.Errorf("bump epoch: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cfg := nfs.Config{Exports: exports, Verifier: verifierFor(epoch), Logger: log, Registerer: reg}
	if c.exitAfter != "" {
		cfg.AfterCommit = func(proc string) {
			if proc == c.exitAfter {
				log.Warn("test fault: exiting after a durable request, before its reply", "proc", proc)
				os.Exit(137)
			}
		}
	}
	srv, err := nfs.New(store, cfg)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", c.listen)
	if err != nil {
		srv.Close()
		return fmt.Errorf("listen on %s: %w", c.listen, err)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(l) }()
	var hs *http.Server
	if c.metrics != "" {
		ml, err := net.Listen("tcp", c.metrics)
		if err != nil {
			srv.Close()
			return fmt.Errorf("listen for metrics on %s: %w", c.metrics, err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			st := store.StatFS()
			json.NewEncoder(w).Encode(map[string]any{
				"role": "primary", "mode": "single-node", "disk": c.disk, "epoch": epoch,
				"uuid": store.Superblock().UUIDString(), "listen": l.Addr().String(),
				"files": st.Files, "free_blocks": st.FreeBlocks, "total_blocks": st.TotalBlocks,
			})
		})
		hs = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go hs.Serve(ml)
		log.Info("metrics and status", "url", "http://"+ml.Addr().String()+"/metrics")
	}
	host, port, _ := net.SplitHostPort(l.Addr().String())
	log.Info("serving NFSv3", "listen", l.Addr().String(), "disk", c.disk, "epoch", epoch,
		"uuid", store.Superblock().UUIDString(), "startup", time.Since(start).Round(time.Millisecond))
	fmt.Fprintf(e.stdout, "hanfsd: serving %s on %s (epoch %d)\n", c.disk, l.Addr(), epoch)
	fmt.Fprintf(e.stdout, "mount it from a Linux client with:\n  mount -t nfs -o vers=3,proto=tcp,port=%s,mountport=%s,nolock,hard %s:/ /mnt\n", port, port, host)

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	var exitErr error
loop:
	for {
		select {
		case sig := <-sigs:
			log.Info("stopping", "signal", sig.String())
			break loop
		case err := <-serveErr:
			exitErr = err
			break loop
		case <-tick.C:
			if err := store.Err(); err != nil {
				log.Error("the store stopped: closing every client connection", "err", err)
				exitErr = fmt.Errorf("store stopped: %w", err)
				break loop
			}
		}
	}
	srv.Close()
	if hs != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		hs.Shutdown(ctx)
		cancel()
	}
	if err := store.Close(); err != nil && exitErr == nil && !errors.Is(err, store.Err()) {
		exitErr = fmt.Errorf("close store: %w", err)
	}
	return exitErr
}
