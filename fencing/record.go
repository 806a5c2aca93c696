// Package fencing is the disk lease that makes one node the only writer of
// the shared file system: a lease record with an owner, an epoch that grows
// with every change of owner and a renewal counter, per-node presence records,
// the timing rules that make taking the lease safe, and self-fencing of a
// holder whose renewal deadline passed.
//
// The lease works like a sanlock delta lease, with no clock shared between
// nodes: the holder renews by bumping a counter; a taker must watch the
// record stay unchanged for a full lease period plus margins (measured by its
// own monotonic clock) before it claims the lease with epoch+1, then waits a
// settle delay and reads the record again to confirm its claim.
package fencing

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Record layouts. Both records fit in the first 512-byte sector of their
// block, so a power cut writes all of a record or none of it.
//
// Lease record (block Layout.LeaseStart), little endian:
//
//	[0:8)   magic "HNLEASE1"
//	[8:12)  state: 0 free (never held), 1 held, 2 released (switchover)
//	[12:16) owner node id (1..16; 0: none)
//	[16:24) epoch: grows by one with every new owner
//	[24:32) renewal counter: the owner bumps it on every renewal
//	[32:40) owner incarnation: random per process start
//	[40:44) hand-off target for a released lease (0: any node)
//	[44:48) crc32c of [0:44)
//
// Presence record of node n (block Layout.LeaseStart+n), little endian:
//
//	[0:8)    magic "HNNODE01"
//	[8:12)   node id
//	[12:20)  incarnation
//	[20:28)  counter, bumped on every write (about every renew interval)
//	[28:36)  wall-clock time of the write, unix nanoseconds (shown, never trusted)
//	[36:44)  epoch the node knows
//	[44:45)  role (0 stopped, 1 backup, 2 candidate, 3 primary, 4 fenced)
//	[45:46)  length of the status URL, then the URL (up to 96 bytes) at [46:142)
//	[142:143) length of the service address, then it (up to 64 bytes) at [143:207)
//	[508:512) crc32c of [0:508)
const (
	recordSize    = 512
	leaseMagic    = "HNLEASE1"
	nodeMagic     = "HNNODE01"
	maxURL        = 96
	maxService    = 64
	leaseCRCAt    = 44
	presenceCRCAt = 508
)

// MaxNodes is the number of node ids (1..MaxNodes) the lease area serves.
const MaxNodes = 16

// State is the lease record's state.
type State uint32

// Lease states.
const (
	Free     State = 0
	Held     State = 1
	Released State = 2
)

func (s State) String() string {
	switch s {
	case Free:
		return "free"
	case Held:
		return "held"
	case Released:
		return "released"
	}
	return fmt.Sprintf("state(%d)", uint32(s))
}

// Lease is the decoded lease record.
type Lease struct {
	State       State
	Owner       int
	Epoch       uint64
	Counter     uint64
	Incarnation uint64
	HandoffTo   int
}

// ErrCorrupt reports a record whose magic or checksum is wrong.
var ErrCorrupt = errors.New("fencing record corrupt")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// encode writes the lease record into b (at least recordSize bytes).
func (l Lease) encode(b []byte) {
	clear(b[:recordSize])
	copy(b[0:8], leaseMagic)
	le := binary.LittleEndian
	le.PutUint32(b[8:], uint32(l.State))
	le.PutUint32(b[12:], uint32(l.Owner))
	le.PutUint64(b[16:], l.Epoch)
	le.PutUint64(b[24:], l.Counter)
	le.PutUint64(b[32:], l.Incarnation)
	le.PutUint32(b[40:], uint32(l.HandoffTo))
	le.PutUint32(b[leaseCRCAt:], crc32.Checksum(b[:leaseCRCAt], castagnoli))
}

// decodeLease parses a lease record. An all-zero block is a free lease (a
// freshly formatted disk).
func decodeLease(b []byte) (Lease, error) {
	if len(b) < recordSize {
		return Lease{}, fmt.Errorf("lease record of %d bytes: %w", len(b), ErrCorrupt)
	}
	if allZero(b[:recordSize]) {
		return Lease{State: Free}, nil
	}
	if string(b[0:8]) != leaseMagic {
		return Lease{}, fmt.Errorf("lease record: bad magic: %w", ErrCorrupt)
	}
	le := binary.LittleEndian
	if le.Uint32(b[leaseCRCAt:]) != crc32.Checksum(b[:leaseCRCAt], castagnoli) {
		return Lease{}, fmt.Errorf("lease record: checksum mismatch: %w", ErrCorrupt)
	}
	l := Lease{State: State(le.Uint32(b[8:])), Owner: int(le.Uint32(b[12:])), Epoch: le.Uint64(b[16:]),
		Counter: le.Uint64(b[24:]), Incarnation: le.Uint64(b[32:]), HandoffTo: int(le.Uint32(b[40:]))}
	if l.State > Released || l.Owner < 0 || l.Owner > MaxNodes || l.HandoffTo < 0 || l.HandoffTo > MaxNodes {
		return Lease{}, fmt.Errorf("lease record: state %d owner %d hand-off %d out of range: %w", l.State, l.Owner, l.HandoffTo, ErrCorrupt)
	}
	return l, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// Role is what a node does, as recorded in its presence record.
type Role uint8

// Roles.
const (
	RoleStopped Role = iota
	RoleBackup
	RoleCandidate
	RolePrimary
	RoleFenced
)

func (r Role) String() string {
	switch r {
	case RoleStopped:
		return "stopped"
	case RoleBackup:
		return "backup"
	case RoleCandidate:
		return "candidate"
	case RolePrimary:
		return "primary"
	case RoleFenced:
		return "fenced"
	}
	return fmt.Sprintf("role(%d)", uint8(r))
}

// Presence is a node's presence record: proof that it runs, and what it is.
type Presence struct {
	Node        int
	Incarnation uint64
	Counter     uint64
	WallTime    int64
	Epoch       uint64
	Role        Role
	StatusURL   string
	Service     string
}

func (p Presence) encode(b []byte) {
	clear(b[:recordSize])
	copy(b[0:8], nodeMagic)
	le := binary.LittleEndian
	le.PutUint32(b[8:], uint32(p.Node))
	le.PutUint64(b[12:], p.Incarnation)
	le.PutUint64(b[20:], p.Counter)
	le.PutUint64(b[28:], uint64(p.WallTime))
	le.PutUint64(b[36:], p.Epoch)
	b[44] = byte(p.Role)
	url := p.StatusURL
	if len(url) > maxURL {
		url = url[:maxURL]
	}
	b[45] = byte(len(url))
	copy(b[46:], url)
	svc := p.Service
	if len(svc) > maxService {
		svc = svc[:maxService]
	}
	b[142] = byte(len(svc))
	copy(b[143:], svc)
	le.PutUint32(b[presenceCRCAt:], crc32.Checksum(b[:presenceCRCAt], castagnoli))
}

// decodePresence parses a presence record; an all-zero block means the node
// never ran (ok false).
func decodePresence(b []byte) (p Presence, ok bool, err error) {
	if len(b) < recordSize {
		return p, false, fmt.Errorf("presence record of %d bytes: %w", len(b), ErrCorrupt)
	}
	if allZero(b[:recordSize]) {
		return p, false, nil
	}
	le := binary.LittleEndian
	if string(b[0:8]) != nodeMagic || le.Uint32(b[presenceCRCAt:]) != crc32.Checksum(b[:presenceCRCAt], castagnoli) {
		return p, false, fmt.Errorf("presence record: bad magic or checksum: %w", ErrCorrupt)
	}
	if b[45] > maxURL || b[142] > maxService || b[44] > byte(RoleFenced) {
		return p, false, fmt.Errorf("presence record: field out of range: %w", ErrCorrupt)
	}
	p = Presence{Node: int(le.Uint32(b[8:])), Incarnation: le.Uint64(b[12:]), Counter: le.Uint64(b[20:]),
		WallTime: int64(le.Uint64(b[28:])), Epoch: le.Uint64(b[36:]), Role: Role(b[44]),
		StatusURL: string(b[46 : 46+int(b[45])]), Service: string(b[143 : 143+int(b[142])])}
	return p, true, nil
}
