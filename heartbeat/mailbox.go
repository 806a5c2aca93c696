// Package heartbeat tells a backup whether the primary is alive: network
// heartbeats between the nodes, and, when they stop, a probe through a
// mailbox on the shared disk that the primary answers within one poll
// interval. A fence message in the mailbox tells its receiver to stop.
package heartbeat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"sync"
	"time"

	"github.com/hanfs/hanfs/shareddisk"
)

// Mailbox slot layout: node n owns the first block of its slot
// (Layout.MailboxStart + 4*(n-1)) and is its only writer; other nodes only
// read it. Little endian, within the first 512-byte sector:
//
//	[0:8)     magic "HNMBOX01"
//	[8:12)    node id
//	[12:20)   write sequence number
//	[20:148)  probe[j]: the last probe sequence number sent to node j+1
//	[148:276) ack[j]: the last probe from node j+1 that this node answered
//	[276:404) fence[j]: an epoch; node j+1 must stop if its epoch is lower
//	[508:512) crc32c of [0:508)
const (
	slotMagic = "HNMBOX01"
	slotSize  = 512
	// MaxNodes is the number of mailbox slots.
	MaxNodes     = 16
	blocksPerBox = 4
	crcAt        = 508
)

// Slot is one node's mailbox record.
type Slot struct {
	Node  int
	Seq   uint64
	Probe [MaxNodes]uint64
	Ack   [MaxNodes]uint64
	Fence [MaxNodes]uint64
}

// ErrCorrupt reports a mailbox slot with a bad magic or checksum.
var ErrCorrupt = errors.New("mailbox slot corrupt")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func (s *Slot) encode(b []byte) {
	clear(b[:slotSize])
	copy(b, slotMagic)
	le := binary.LittleEndian
	le.PutUint32(b[8:], uint32(s.Node))
	le.PutUint64(b[12:], s.Seq)
	for j := 0; j < MaxNodes; j++ {
		le.PutUint64(b[20+8*j:], s.Probe[j])
		le.PutUint64(b[148+8*j:], s.Ack[j])
		le.PutUint64(b[276+8*j:], s.Fence[j])
	}
	le.PutUint32(b[crcAt:], crc32.Checksum(b[:crcAt], castagnoli))
}

func decodeSlot(b []byte) (Slot, error) {
	var s Slot
	if len(b) < slotSize {
		return s, fmt.Errorf("mailbox slot of %d bytes: %w", len(b), ErrCorrupt)
	}
	zero := true
	for _, c := range b[:slotSize] {
		if c != 0 {
			zero = false
			break
		}
	}
	if zero {
		return s, nil // never written
	}
	le := binary.LittleEndian
	if string(b[:8]) != slotMagic || le.Uint32(b[crcAt:]) != crc32.Checksum(b[:crcAt], castagnoli) {
		return s, fmt.Errorf("mailbox slot: bad magic or checksum: %w", ErrCorrupt)
	}
	s.Node = int(le.Uint32(b[8:]))
	s.Seq = le.Uint64(b[12:])
	for j := 0; j < MaxNodes; j++ {
		s.Probe[j] = le.Uint64(b[20+8*j:])
		s.Ack[j] = le.Uint64(b[148+8*j:])
		s.Fence[j] = le.Uint64(b[276+8*j:])
	}
	return s, nil
}

// Mailbox is one node's view of the mailbox area: it writes its own slot and
// reads its peers'.
type Mailbox struct {
	d       shareddisk.Disk
	lay     shareddisk.Layout
	node    int
	timeout time.Duration

	mu  sync.Mutex
	own Slot
}

// Open returns node's mailbox on disk d and loads the node's slot, so that
// sequence numbers continue where an earlier process left them.
func Open(d shareddisk.Disk, lay shareddisk.Layout, node int, ioTimeout time.Duration) (*Mailbox, error) {
	if node < 1 || node > MaxNodes {
		return nil, fmt.Errorf("node id %d out of range 1..%d", node, MaxNodes)
	}
	if lay.MailboxBlocks < MaxNodes*blocksPerBox {
		return nil, fmt.Errorf("%s: mailbox area of %d blocks is too small", d.Name(), lay.MailboxBlocks)
	}
	m := &Mailbox{d: d, lay: lay, node: node, timeout: ioTimeout}
	s, err := m.Read(node)
	if err != nil && !errors.Is(err, ErrCorrupt) {
		return nil, err
	}
	m.own = s
	m.own.Node = node
	return m, nil
}

func (m *Mailbox) block(node int) uint64 {
	return m.lay.MailboxStart + uint64(blocksPerBox*(node-1))
}

// io runs one block I/O bounded by the I/O timeout.
func (m *Mailbox) io(write bool, blk uint64, buf []byte) error {
	if err := shareddisk.TimedIO(m.d, write, blk, buf, m.timeout); err != nil {
		return fmt.Errorf("mailbox: %w", err)
	}
	return nil
}

// Read reads node's slot.
func (m *Mailbox) Read(node int) (Slot, error) {
	if node < 1 || node > MaxNodes {
		return Slot{}, fmt.Errorf("node id %d out of range", node)
	}
	buf := shareddisk.AlignedBuf(shareddisk.BlockSize)
	if err := m.io(false, m.block(node), buf); err != nil {
		return Slot{}, err
	}
	s, err := decodeSlot(buf)
	if err != nil {
		return s, fmt.Errorf("%s: node %d mailbox: %w", m.d.Name(), node, err)
	}
	return s, nil
}

// writeOwn writes the node's slot with the sequence bumped. Caller holds mu.
func (m *Mailbox) writeOwnLocked() error {
	m.own.Seq++
	buf := shareddisk.AlignedBuf(shareddisk.BlockSize)
	m.own.encode(buf)
	return m.io(true, m.block(m.node), buf)
}

// Probe asks node target to answer; it returns the probe's number.
func (m *Mailbox) Probe(target int) (uint64, error) {
	if target < 1 || target > MaxNodes {
		return 0, fmt.Errorf("probe: node id %d out of range", target)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.own.Probe[target-1]++
	return m.own.Probe[target-1], m.writeOwnLocked()
}

// Answered reports whether node target answered probe seq.
func (m *Mailbox) Answered(target int, seq uint64) (bool, error) {
	s, err := m.Read(target)
	if err != nil {
		return false, err
	}
	return s.Ack[m.node-1] >= seq, nil
}

// Fence tells node target to stop unless its epoch is at least epoch.
func (m *Mailbox) Fence(target int, epoch uint64) error {
	if target < 1 || target > MaxNodes {
		return fmt.Errorf("fence: node id %d out of range", target)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.own.Fence[target-1] >= epoch {
		return nil
	}
	m.own.Fence[target-1] = epoch
	return m.writeOwnLocked()
}

// Serve answers the probes that peers sent to this node since the last call
// and returns the highest fence epoch any peer set for it (0: none).
func (m *Mailbox) Serve(peers []int) (fence uint64, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	dirty := false
	var firstErr error
	for _, p := range peers {
		s, err := m.readLocked(p)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if q := s.Probe[m.node-1]; q > m.own.Ack[p-1] {
			m.own.Ack[p-1] = q
			dirty = true
		}
		fence = max(fence, s.Fence[m.node-1])
	}
	if dirty {
		if err := m.writeOwnLocked(); err != nil {
			return fence, err
		}
	}
	return fence, firstErr
}

func (m *Mailbox) readLocked(node int) (Slot, error) {
	buf := shareddisk.AlignedBuf(shareddisk.BlockSize)
	if err := m.io(false, m.block(node), buf); err != nil {
		return Slot{}, err
	}
	return decodeSlot(buf)
}
