package fencing

import (
	"fmt"
	"time"

	"github.com/hanfs/hanfs/shareddisk"
)

// Area reads and writes the lease area of a shared disk. Every I/O is
// bounded by the I/O timeout: one that takes longer returns ErrIOTimeout (the
// I/O itself may still complete later; that is what the timeout accounts for).
type Area struct {
	d       shareddisk.Disk
	lay     shareddisk.Layout
	timeout time.Duration
}

// ErrIOTimeout reports a lease-area I/O that exceeded the I/O timeout.
var ErrIOTimeout = shareddisk.ErrIOTimeout

// NewArea returns the lease area of disk d with layout lay.
func NewArea(d shareddisk.Disk, lay shareddisk.Layout, ioTimeout time.Duration) (*Area, error) {
	if lay.LeaseBlocks < 1+MaxNodes {
		return nil, fmt.Errorf("%s: lease area of %d blocks cannot hold the lease and %d presence records", d.Name(), lay.LeaseBlocks, MaxNodes)
	}
	return &Area{d: d, lay: lay, timeout: ioTimeout}, nil
}

func checkNode(node int) error {
	if node < 1 || node > MaxNodes {
		return fmt.Errorf("node id %d out of range 1..%d", node, MaxNodes)
	}
	return nil
}

// io runs one block I/O bounded by the I/O timeout.
func (a *Area) io(write bool, blk uint64, buf []byte) error {
	if err := shareddisk.TimedIO(a.d, write, blk, buf, a.timeout); err != nil {
		return fmt.Errorf("lease area: %w", err)
	}
	return nil
}

// ReadLease reads the lease record; raw is its encoded form, for change
// detection.
func (a *Area) ReadLease() (Lease, []byte, error) {
	buf := shareddisk.AlignedBuf(shareddisk.BlockSize)
	if err := a.io(false, a.lay.LeaseStart, buf); err != nil {
		return Lease{}, nil, err
	}
	l, err := decodeLease(buf)
	if err != nil {
		return Lease{}, buf[:recordSize], fmt.Errorf("%s: block %d: %w", a.d.Name(), a.lay.LeaseStart, err)
	}
	return l, buf[:recordSize], nil
}

// WriteLease writes the lease record durably.
func (a *Area) WriteLease(l Lease) error {
	buf := shareddisk.AlignedBuf(shareddisk.BlockSize)
	l.encode(buf)
	return a.io(true, a.lay.LeaseStart, buf)
}

// ReadPresence reads node's presence record; ok is false if it never ran.
func (a *Area) ReadPresence(node int) (Presence, bool, error) {
	if err := checkNode(node); err != nil {
		return Presence{}, false, err
	}
	buf := shareddisk.AlignedBuf(shareddisk.BlockSize)
	blk := a.lay.LeaseStart + uint64(node)
	if err := a.io(false, blk, buf); err != nil {
		return Presence{}, false, err
	}
	p, ok, err := decodePresence(buf)
	if err != nil {
		return p, false, fmt.Errorf("%s: node %d presence (block %d): %w", a.d.Name(), node, blk, err)
	}
	return p, ok, nil
}

// WritePresence writes p durably into its node's presence block.
func (a *Area) WritePresence(p Presence) error {
	if err := checkNode(p.Node); err != nil {
		return err
	}
	buf := shareddisk.AlignedBuf(shareddisk.BlockSize)
	p.encode(buf)
	return a.io(true, a.lay.LeaseStart+uint64(p.Node), buf)
}
