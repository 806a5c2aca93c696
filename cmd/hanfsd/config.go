package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hanfs/hanfs/fencing"
	"github.com/hanfs/hanfs/nfs"
)

// serveConfig is what `hanfsd serve` runs with: flags override the config
// file. The config file has one setting per line ("key value"), # comments,
// and any number of "export PATH [NETWORKS [OPTIONS]]" lines:
//
//	disk    /dev/sdb
//	listen  0.0.0.0:2049
//	metrics 127.0.0.1:9049
//	export  /        10.0.0.0/8   rw,root_squash
//	export  /scratch 10.1.0.0/16  rw,no_root_squash
type serveConfig struct {
	disk    string
	listen  string
	metrics string
	exports []string
	debug   bool
	// exitAfter is a test-only fault: exit after a durable request of this
	// procedure, before its reply.
	exitAfter string
	// writeLog is a test-only file recording every file-system write.
	writeLog string
	// stallFile is a test-only marker: disk I/O stalls while it exists.
	stallFile string
	// fuseMount is a directory where the primary mounts the live store.
	fuseMount string
	// vip and vipDev: a virtual service address and its interface.
	vip, vipDev string
	// fenceCmd and watchdog: optional hard fencing.
	fenceCmd, watchdog string
	// readCache bounds the primary's read-ahead cache (0: none).
	readCache int64
	// journaledWrites is the largest write whose data is journaled.
	journaledWrites int64
	// pprof serves Go's profiler on the metrics address.
	pprof bool
	// procs is the number of goroutines running Go code at once
	// (GOMAXPROCS); 0: the default of serveProcs.
	procs int

	node         int
	heartbeat    string
	peers        []string
	timing       fencing.Timing
	hbInterval   time.Duration
	hbTimeout    time.Duration
	probeTimeout time.Duration
}

// configKeys are the settings a config file may hold, each named and
// meaning as its `hanfsd serve` flag.
var configKeys = []string{"disk", "listen", "metrics", "node", "heartbeat", "peer", "vip", "vip-dev", "export",
	"read-cache", "journaled-writes", "procs", "pprof", "fence-command", "watchdog"}

// loadConfigFile reads a config file into c, for the keys flags did not set.
func loadConfigFile(path string, c *serveConfig, set func(string) bool) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	var exports []string
	// The settings that are one value each, by kind.
	strs := map[string]*string{"disk": &c.disk, "listen": &c.listen, "metrics": &c.metrics, "vip": &c.vip,
		"vip-dev": &c.vipDev, "heartbeat": &c.heartbeat, "fence-command": &c.fenceCmd, "watchdog": &c.watchdog}
	ints := map[string]*int{"node": &c.node, "procs": &c.procs}
	sizes := map[string]*int64{"read-cache": &c.readCache, "journaled-writes": &c.journaledWrites}
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		if line == "" {
			continue
		}
		key, val, _ := strings.Cut(line, " ")
		val = strings.TrimSpace(val)
		if val == "" {
			return fmt.Errorf("%s:%d: %q needs a value", path, n, key)
		}
		if p, ok := strs[key]; ok {
			if !set(key) {
				*p = val
			}
			continue
		}
		if p, ok := ints[key]; ok {
			v, err := strconv.Atoi(val)
			if err != nil {
				return fmt.Errorf("%s:%d: %s %q: %w", path, n, key, val, err)
			}
			if !set(key) {
				*p = v
			}
			continue
		}
		if p, ok := sizes[key]; ok {
			v, err := parseSize(val)
			if err != nil {
				return fmt.Errorf("%s:%d: %s: %w", path, n, key, err)
			}
			if !set(key) {
				*p = v
			}
			continue
		}
		switch key {
		case "pprof":
			v, err := strconv.ParseBool(val)
			if err != nil {
				return fmt.Errorf("%s:%d: pprof %q: want true or false", path, n, val)
			}
			if !set("pprof") {
				c.pprof = v
			}
		case "peer":
			if !set("peer") {
				c.peers = append(c.peers, val)
			}
		case "export":
			if _, err := nfs.ParseExport(val); err != nil {
				return fmt.Errorf("%s:%d: %w", path, n, err)
			}
			exports = append(exports, val)
		default:
			return fmt.Errorf("%s:%d: unknown setting %q (want one of %s)", path, n, key, strings.Join(configKeys, ", "))
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	if !set("export") {
		c.exports = exports
	}
	return nil
}
