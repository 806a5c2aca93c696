package soak

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// Kind is a kind of failure the soak injects.
type Kind string

// The failure kinds. Restarts of killed nodes are part of kill_primary and
// kill_backup (counted apart in the report).
const (
	KillPrimary  Kind = "kill_primary"  // kill -9 of the primary, then restart it
	StopPrimary  Kind = "stop_primary"  // SIGSTOP of the primary past the lease, then SIGCONT
	Partition    Kind = "partition"     // the server-to-server link cut both ways, then healed
	StallPrimary Kind = "stall_primary" // the primary's disk stops answering past the lease
	Switchover   Kind = "switchover"    // graceful hand-off to the backup
	KillBackup   Kind = "kill_backup"   // kill -9 of the backup, then restart it
)

// AllKinds lists every kind in a fixed order.
func AllKinds() []Kind {
	return []Kind{KillPrimary, StopPrimary, Partition, StallPrimary, Switchover, KillBackup}
}

// ParseKinds parses a comma-separated list of kinds ("" or "all": all).
func ParseKinds(s string) ([]Kind, error) {
	if s == "" || s == "all" {
		return AllKinds(), nil
	}
	var out []Kind
	for _, f := range strings.Split(s, ",") {
		k := Kind(strings.TrimSpace(f))
		ok := false
		for _, a := range AllKinds() {
			ok = ok || a == k
		}
		if !ok {
			return nil, fmt.Errorf("unknown failure kind %q (want some of %v)", k, AllKinds())
		}
		out = append(out, k)
	}
	return out, nil
}

// schedule returns n failures: kinds in rounds, each round a seeded shuffle
// of every kind, so any len(kinds) consecutive rounds cover them all and
// the counts stay even.
func schedule(kinds []Kind, n int, seed uint64) []Kind {
	r := rand.New(rand.NewPCG(seed, 0x50a4))
	out := make([]Kind, 0, n)
	for len(out) < n {
		round := append([]Kind(nil), kinds...)
		r.Shuffle(len(round), func(i, j int) { round[i], round[j] = round[j], round[i] })
		out = append(out, round...)
	}
	return out[:n]
}
