//go:build !race

package btree

// raceEnabled is set when the race detector is on; long tests shrink then.
const raceEnabled = false
