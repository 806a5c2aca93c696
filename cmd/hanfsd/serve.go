package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/hanfs/hanfs/cmd/hanfsd/cluster"
	"github.com/hanfs/hanfs/fencing"
	"github.com/hanfs/hanfs/fsstore"
	"github.com/hanfs/hanfs/fsstore/txn"
	"github.com/hanfs/hanfs/fusemount"
	"github.com/hanfs/hanfs/nfs"
	"github.com/hanfs/hanfs/shareddisk"
)

func newServeCmd(e *env) *cobra.Command {
	c := serveConfig{timing: fencing.DefaultTiming()}
	var configFile string
	cmd := &cobra.Command{
		Use:   "serve --disk PATH [--node N --heartbeat ADDR --peer M=ADDR]... [--listen ADDR] [--metrics ADDR]",
		Short: "Run a node: serve a hanfs disk over NFSv3, or stand by to take over",
		Long: `Serve runs one hanfs node on a shared disk. A node starts as a backup. When it
holds the disk lease it is the primary: it replays the journal, bumps the
disk's epoch (which becomes the NFS write verifier, so clients resend data an
earlier primary had not made durable) and serves NFSv3 and MOUNT v3 on the
service address (--listen). Every reply to a request that changes something
is sent only after the change is on the disk.

A backup watches the primary with UDP heartbeats (--heartbeat, --peer). When
they stop, it probes the primary through its mailbox on the disk; only if that
stays silent too, and the lease stays unrenewed for the lease period plus
margins (by its own clock), does it claim the lease with a higher epoch and
take over, at the same service address, with the same file handles. A primary
that cannot renew its lease stops writing at its deadline, closes every client
connection, and rejoins as a backup. Run one serve per node with the same
--disk, a different --node, and the same --listen and timing flags.

Without --peer a node serves alone (a single-node server); the lease still
keeps a second server off the disk.

Exports: --export "PATH [NETWORKS [OPTIONS]]", repeatable. NETWORKS is a
comma-separated list of CIDR prefixes or addresses, or * for any; OPTIONS are
rw (default), ro, root_squash (default), no_root_squash, all_squash,
anonuid=N, anongid=N. Without --export, / is exported to loopback clients
only (127.0.0.0/8 and ::1), read-write, root squashed.

A config file (--config) holds the same settings, one per line ("key value"):
disk, listen, metrics, node, heartbeat, peer (N=ADDR), export. Flags override
the file.

--metrics serves Prometheus metrics on /metrics, the node's state as JSON on
/status, and POST /switchover?to=N (used by "hanfsd switchover").

Timing (defaults are safe on a local disk; every node must use the same):
the lease period, renew interval, io-timeout and drift decide how long a
backup waits before taking over; see docs/failover.md.`,
		Example: `  # one node
  hanfsd serve --disk ./data/hanfs.img --listen 127.0.0.1:2049 --export "/ 127.0.0.0/8 rw,no_root_squash"
  # two nodes on one machine, same disk and service address
  hanfsd serve --disk ./data/hanfs.img --node 1 --heartbeat 127.0.0.1:7001 --peer 2=127.0.0.1:7002 \
      --listen 127.0.0.1:2049 --metrics 127.0.0.1:9051
  hanfsd serve --disk ./data/hanfs.img --node 2 --heartbeat 127.0.0.1:7002 --peer 1=127.0.0.1:7001 \
      --listen 127.0.0.1:2049 --metrics 127.0.0.1:9052
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
	fl.StringVar(&c.listen, "listen", "127.0.0.1:2049", "NFS service address and port (MOUNT is served on the same port); the primary binds it")
	fl.StringVar(&c.metrics, "metrics", "", "address for the HTTP endpoint with /metrics, /status and /switchover (off when empty)")
	fl.StringArrayVar(&c.exports, "export", nil, `export "PATH [NETWORKS [OPTIONS]]" (repeatable)`)
	fl.StringVar(&configFile, "config", "", "config file: one \"key value\" setting per line, keys named as these flags (disk, listen, metrics, node, heartbeat, peer, vip, vip-dev, export, read-cache, journaled-writes, procs, pprof, fence-command, watchdog; see deploy/hanfsd.conf.example); flags override it")
	fl.IntVar(&c.node, "node", 1, "this node's id, 1..16, unique among the nodes on the disk")
	fl.StringVar(&c.heartbeat, "heartbeat", "127.0.0.1:0", "UDP address for heartbeats from the peers")
	fl.StringArrayVar(&c.peers, "peer", nil, "a peer node as ID=HOST:PORT (its --heartbeat address; repeatable)")
	addTimingFlags(fl, &c.timing)
	fl.DurationVar(&c.hbInterval, "heartbeat-interval", 100*time.Millisecond, "how often a node sends heartbeats")
	fl.DurationVar(&c.hbTimeout, "heartbeat-timeout", 400*time.Millisecond, "silence after which a backup probes the primary's mailbox")
	fl.DurationVar(&c.probeTimeout, "probe-timeout", 250*time.Millisecond, "how long a backup waits for the primary's mailbox answer")
	fl.BoolVar(&c.debug, "debug", false, "log debug messages")
	fl.StringVar(&c.vip, "vip", "", "a virtual service address ADDR/BITS that the primary adds to --vip-dev (and announces with gratuitous ARP); set --listen to ADDR:PORT")
	fl.StringVar(&c.vipDev, "vip-dev", "", "the network interface for --vip")
	fl.StringVar(&c.fenceCmd, "fence-command", "", "hard fencing: a shell command run when this node loses the lease while serving (env HANFS_NODE, HANFS_EPOCH, HANFS_REASON), e.g. to power itself off")
	fl.StringVar(&c.watchdog, "watchdog", "", "hard fencing: a watchdog device (e.g. /dev/watchdog) fed while this node serves with a valid lease; left unfed (so the machine resets) when the lease is lost")
	c.readCache = fsstore.DefaultReadCacheBytes
	fl.Var(sizeValue{&c.readCache}, "read-cache", "memory for file data read ahead of sequential readers, on the primary only (0: no read-ahead); see docs/operations.md")
	c.journaledWrites = txn.MaxJournaledBlocks * shareddisk.BlockSize
	fl.Var(sizeValue{&c.journaledWrites}, "journaled-writes", "writes of at most this size put their data into the journal (one disk write and one flush per commit; written home at the next checkpoint); 0 to 32KiB in whole 4KiB blocks, 0: off; see docs/operations.md")
	fl.BoolVar(&c.pprof, "pprof", false, "also serve Go's profiler at /debug/pprof/ on the --metrics address (CPU profiles, execution traces, goroutine dumps; for diagnosing a slow node)")
	fl.IntVar(&c.procs, "procs", 0, "how many goroutines may run Go code at once (GOMAXPROCS); 0: the GOMAXPROCS environment variable if set, else at least 8, so that requests keep running while others wait in disk syscalls (see docs/operations.md)")
	fl.StringVar(&c.fuseMount, "fuse-mount", "", "while this node is primary, also mount the live store on this directory through FUSE (unmounted when it stops being primary)")
	fl.StringVar(&c.exitAfter, "test-exit-after-commit", "", "fault injection for tests: exit at once (status 137, like kill -9) after the first durable request of this NFS procedure (e.g. CREATE), before replying")
	fl.StringVar(&c.writeLog, "test-write-log", "", "for tests: append every file-system write (node, epoch, monotonic start and end) to this file")
	fl.StringVar(&c.stallFile, "test-stall-file", "", "for tests: every disk I/O stalls while this file exists")
	_ = fl.MarkHidden("test-stall-file")
	_ = fl.MarkHidden("test-exit-after-commit")
	_ = fl.MarkHidden("test-write-log")
	return cmd
}

// minServeProcs is the least GOMAXPROCS a node runs with while it serves
// (a backup keeps the runtime's default). Every
// O_DIRECT write and fdatasync is a blocking system call that keeps its P
// until the runtime notices and hands the P on; with only as many Ps as CPUs,
// requests that are ready to run wait behind those calls. Measured on a
// 2-CPU machine (docs/BENCHMARKS.md): 8 Ps gave 1.5x the 4 KiB random durable
// writes with 8 in flight, and the same with 1 in flight.
const minServeProcs = 8

// serveProcs returns the GOMAXPROCS for serve: the flag if set; else the
// runtime's choice when the GOMAXPROCS variable is set; else at least
// minServeProcs.
func serveProcs(flag int, envSet bool, cpus int) int {
	switch {
	case flag > 0:
		return flag
	case envSet:
		return runtime.GOMAXPROCS(0)
	}
	return max(cpus, minServeProcs)
}

// addTimingFlags registers the lease timing flags (serve and mount).
func addTimingFlags(fl *pflag.FlagSet, t *fencing.Timing) {
	fl.DurationVar(&t.LeasePeriod, "lease-period", t.LeasePeriod, "how long one renewal keeps the lease")
	fl.DurationVar(&t.RenewInterval, "renew-interval", t.RenewInterval, "how often the holder renews the lease")
	fl.DurationVar(&t.IOTimeout, "io-timeout", t.IOTimeout, "the bound assumed for every disk I/O (enforce it with a watchdog in production; raise it for image files under heavy load)")
	fl.Float64Var(&t.Drift, "drift", t.Drift, "the most two nodes' clocks may differ in rate (0.01 = 1%)")
	fl.DurationVar(&t.PollInterval, "poll-interval", t.PollInterval, "how often a node reads the lease and its mailbox")
}

func parsePeers(specs []string) (map[int]string, error) {
	peers := make(map[int]string)
	for _, p := range specs {
		id, addr, ok := strings.Cut(p, "=")
		n, err := strconv.Atoi(id)
		if !ok || err != nil || addr == "" {
			return nil, fmt.Errorf("--peer %q: want ID=HOST:PORT, for example 2=10.0.0.2:7000", p)
		}
		if _, dup := peers[n]; dup {
			return nil, fmt.Errorf("--peer: node %d given twice", n)
		}
		peers[n] = addr
	}
	return peers, nil
}

// journaledWriteBlocks converts --journaled-writes to
// fsstore.Options.JournaledWriteBlocks (negative: off).
func journaledWriteBlocks(size int64) (int, error) {
	const most = txn.MaxJournaledBlocks * shareddisk.BlockSize
	if size < 0 || size > most || size%shareddisk.BlockSize != 0 {
		return 0, fmt.Errorf("--journaled-writes %d: must be 0 (off) to %d bytes (32KiB), in whole %d-byte blocks", size, most, shareddisk.BlockSize)
	}
	if size == 0 {
		return -1, nil
	}
	return int(size / shareddisk.BlockSize), nil
}

func runServe(e *env, c *serveConfig) error {
	if c.procs < 0 {
		return usageError{fmt.Errorf("--procs %d: must be 0 or more", c.procs)}
	}
	jw, err := journaledWriteBlocks(c.journaledWrites)
	if err != nil {
		return usageError{err}
	}
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
	peers, err := parsePeers(c.peers)
	if err != nil {
		return usageError{err}
	}
	if err := c.timing.Validate(); err != nil {
		return usageError{err}
	}
	level := slog.LevelInfo
	if c.debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
	f, err := shareddisk.OpenFile(c.disk, shareddisk.OpenOptions{})
	if err != nil {
		return err
	}
	defer f.Close()
	var d shareddisk.Disk = f
	if c.stallFile != "" {
		d = &stallDisk{Disk: f, marker: c.stallFile}
	}
	var wl *writeLog
	if c.writeLog != "" {
		if wl, err = openWriteLog(c.writeLog, c.node); err != nil {
			return err
		}
		defer wl.Close()
	}
	sb, err := shareddisk.ReadSuperblock(d)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	statusURL := ""
	var ml net.Listener
	if c.metrics != "" {
		if ml, err = net.Listen("tcp", c.metrics); err != nil {
			return fmt.Errorf("listen for metrics on %s: %w", c.metrics, err)
		}
		statusURL = "http://" + ml.Addr().String()
	}
	opts := cluster.Options{FenceCommand: c.fenceCmd, Watchdog: c.watchdog, Node: c.node, Disk: d, StoreDisk: f, Layout: sb.Layout, Service: c.listen, Heartbeat: c.heartbeat,
		Peers: peers, StatusURL: statusURL, Exports: exports, Timing: c.timing, HeartbeatInterval: c.hbInterval,
		HeartbeatTimeout: c.hbTimeout, ProbeTimeout: c.probeTimeout, Logger: log, Registerer: reg,
		ReadCacheBytes: c.readCache, JournaledWriteBlocks: jw}
	if c.readCache == 0 {
		opts.ReadCacheBytes = -1 // fsstore: negative is off, 0 the default
	}
	if c.exitAfter != "" {
		opts.AfterCommit = func(proc string) {
			if proc == c.exitAfter {
				log.Warn("test fault: exiting after a durable request, before its reply", "proc", proc)
				os.Exit(137)
			}
		}
	}
	// The store's writes go: stall (test) -> log (test) -> lease gate -> disk.
	opts.WrapStoreDisk = func(sd shareddisk.Disk, epoch func() uint64) shareddisk.Disk {
		if wl != nil {
			sd = wl.wrap(sd, epoch)
		}
		if c.stallFile != "" {
			sd = &stallDisk{Disk: sd, marker: c.stallFile}
		}
		return sd
	}
	if c.vip != "" {
		v, err := cluster.ParseVIP(c.vip, c.vipDev)
		if err != nil {
			return usageError{err}
		}
		opts.VIP = v
	}
	if c.fuseMount != "" {
		var fm *fusemount.Server
		opts.OnServing = func(st *fsstore.Store, serving bool) {
			if serving {
				if err := checkMountPoint(log, c.fuseMount); err != nil {
					log.Error("local FUSE mount", "err", err)
					return
				}
				m, err := fusemount.Mount(st, c.fuseMount, fusemount.Options{Logger: log})
				if err != nil {
					log.Error("local FUSE mount", "dir", c.fuseMount, "err", err)
					return
				}
				fm = m
				log.Info("live store mounted locally", "dir", c.fuseMount)
				return
			}
			if fm != nil {
				unmount(log, fm)
				fm = nil
				log.Info("local FUSE mount removed", "dir", c.fuseMount)
			}
		}
	}
	// More Ps only while serving: a backup is mostly idle, and extra Ps there
	// cost the primary CPU on a shared machine (docs/BENCHMARKS.md).
	idleProcs := runtime.GOMAXPROCS(0)
	servingProcs := serveProcs(c.procs, os.Getenv("GOMAXPROCS") != "", runtime.NumCPU())
	onServing := opts.OnServing
	opts.OnServing = func(st *fsstore.Store, serving bool) {
		if serving {
			runtime.GOMAXPROCS(servingProcs)
		} else {
			runtime.GOMAXPROCS(idleProcs)
		}
		if onServing != nil {
			onServing(st, serving)
		}
	}
	node, err := cluster.New(opts)
	if err != nil {
		if errors.Is(err, cluster.ErrNodeAlive) {
			return exitError{code: exitFailure, err: err}
		}
		return err
	}
	var hs *http.Server
	if ml != nil {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(node.Status())
		})
		mux.HandleFunc("/switchover", func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost {
				http.Error(w, "use POST", http.StatusMethodNotAllowed)
				return
			}
			to, _ := strconv.Atoi(r.URL.Query().Get("to"))
			if err := node.Switchover(to); err != nil {
				http.Error(w, err.Error(), http.StatusConflict)
				return
			}
			fmt.Fprintln(w, "switchover started")
		})
		if c.pprof {
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		}
		hs = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go hs.Serve(ml)
	}
	host, port, _ := net.SplitHostPort(c.listen)
	fmt.Fprintf(e.stdout, "hanfsd: node %d on %s, service address %s, status %s\n", c.node, c.disk, c.listen, statusURL)
	fmt.Fprintf(e.stdout, "mount it from a Linux client with:\n  mount -t nfs -o vers=3,proto=tcp,port=%s,mountport=%s,nolock,hard %s:/ /mnt\n", port, port, host)
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	err = node.Run(ctx)
	if hs != nil {
		sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
		hs.Shutdown(sctx)
		scancel()
	}
	return err
}
