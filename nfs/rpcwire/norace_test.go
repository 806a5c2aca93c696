//go:build !race

package rpcwire

// raceEnabled tells the allocation tests that the race detector changes allocation counts.
const raceEnabled = false
