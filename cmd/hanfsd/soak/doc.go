// Package soak is the failover drill behind `hanfsd soak`: it runs a local
// two-node hanfs cluster on an image file, a concurrent NFS workload that
// records every acknowledged operation, and injects failures on a schedule
// (kill -9, SIGSTOP/SIGCONT, server-link partition, disk stall, switchover,
// kill of the backup, restarts), while it checks that
//
//   - no client call fails (the clients are hard mounts: any error returned to
//     one is a violation),
//   - every acknowledged write reads back byte for byte, during the run and at
//     the end (and the final tree matches the model),
//   - at most one node writes the shared disk per epoch (the nodes'
//     --test-write-log files, merged), and
//   - `hanfsd fsck` finds the disk clean after the nodes stop.
//
// The files: config.go (settings), kinds.go (failure kinds and schedule),
// proc.go (one node process), relay.go (the heartbeat relay), cluster.go
// (the nodes together), workload.go (clients and model), outage.go (the gap
// clients see), writelog.go and stopped.go (the one-writer check),
// inject.go (each failure), report.go (the report), run.go (the drill).
package soak
