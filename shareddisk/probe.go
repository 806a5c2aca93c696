package shareddisk

import (
	"errors"
	"fmt"
)

// Status is what Probe finds on a disk.
type Status int

// Probe results.
const (
	// StatusEmpty: no hanfs superblock and the first MiB is all zero.
	StatusEmpty Status = iota
	// StatusHanfs: a usable hanfs superblock.
	StatusHanfs
	// StatusDamaged: a hanfs superblock that is corrupt or larger than the disk.
	StatusDamaged
	// StatusOther: no hanfs superblock, and other data in the first MiB.
	StatusOther
)

// String returns a short name of the status.
func (s Status) String() string {
	switch s {
	case StatusEmpty:
		return "empty"
	case StatusHanfs:
		return "hanfs"
	case StatusDamaged:
		return "damaged hanfs"
	case StatusOther:
		return "other data"
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// Probe tells whether d is empty, holds hanfs, a damaged hanfs or other
// data. It fails only on an I/O error.
func Probe(d Disk) (Status, error) {
	_, err := ReadSuperblock(d)
	switch {
	case err == nil:
		return StatusHanfs, nil
	case errors.Is(err, ErrCorrupt) || errors.Is(err, ErrTruncated):
		return StatusDamaged, nil
	case !errors.Is(err, ErrNotHanfs):
		return 0, fmt.Errorf("probe: %w", err)
	}
	empty, err := startIsZero(d)
	if err != nil {
		return 0, fmt.Errorf("probe %s: %w", d.Name(), err)
	}
	if empty {
		return StatusEmpty, nil
	}
	return StatusOther, nil
}
