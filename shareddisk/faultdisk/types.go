package faultdisk

import (
	"errors"
	"fmt"
)

// SectorSize is the unit of a torn write: a power cut keeps a prefix of
// whole sectors of a write.
const SectorSize = 512

// ErrPowerCut is returned by every call on a disk after its power cut.
var ErrPowerCut = errors.New("faultdisk: power cut")

// Op names a disk operation, for fault and stall hooks.
type Op int

// The operations.
const (
	Read  Op = iota // ReadAt
	Write           // WriteAt
	Flush           // Flush
)

// String returns "read", "write" or "flush".
func (o Op) String() string {
	switch o {
	case Read:
		return "read"
	case Write:
		return "write"
	case Flush:
		return "flush"
	}
	return fmt.Sprintf("Op(%d)", int(o))
}

// Keep says how much of a pending write survives a power cut: a value k >= 0
// keeps the first k sectors (0 drops the write), KeepAll keeps all of it and
// Torn keeps a random prefix that is neither empty nor complete.
type Keep int

// Fates of a pending write at a power cut.
const (
	Drop    Keep = 0  // the write is lost
	KeepAll Keep = -1 // the write reached the medium whole
	Torn    Keep = -2 // a random non-empty, incomplete prefix of sectors reached it
)

// TornSectors returns the Keep that keeps the first k sectors of a write.
func TornSectors(k int) Keep {
	return Keep(max(k, 0))
}

// pendingWrite is a write in the volatile cache.
type pendingWrite struct {
	off  int64
	data []byte
}
