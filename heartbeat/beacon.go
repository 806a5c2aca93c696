package heartbeat

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"net"
	"sync"
	"time"
)

// Message is one network heartbeat.
type Message struct {
	Node        int
	Incarnation uint64
	Epoch       uint64
	Role        uint8
	Seq         uint64
}

// Heartbeat datagram layout (big endian): [0:4) magic "HNHB", [4:8) node,
// [8:16) incarnation, [16:24) epoch, [24] role, [25:33) sequence,
// [33:37) crc32c of [0:33).
const msgSize = 37

func (m Message) encode() []byte {
	b := make([]byte, msgSize)
	copy(b, "HNHB")
	binary.BigEndian.PutUint32(b[4:], uint32(m.Node))
	binary.BigEndian.PutUint64(b[8:], m.Incarnation)
	binary.BigEndian.PutUint64(b[16:], m.Epoch)
	b[24] = m.Role
	binary.BigEndian.PutUint64(b[25:], m.Seq)
	binary.BigEndian.PutUint32(b[33:], crc32.Checksum(b[:33], castagnoli))
	return b
}

// ErrBadMessage reports a datagram that is not a valid heartbeat.
var ErrBadMessage = errors.New("not a hanfs heartbeat")

// DecodeMessage parses a heartbeat datagram.
func DecodeMessage(b []byte) (Message, error) {
	if len(b) != msgSize || string(b[:4]) != "HNHB" || binary.BigEndian.Uint32(b[33:]) != crc32.Checksum(b[:33], castagnoli) {
		return Message{}, ErrBadMessage
	}
	m := Message{Node: int(binary.BigEndian.Uint32(b[4:])), Incarnation: binary.BigEndian.Uint64(b[8:]),
		Epoch: binary.BigEndian.Uint64(b[16:]), Role: b[24], Seq: binary.BigEndian.Uint64(b[25:])}
	if m.Node < 1 || m.Node > MaxNodes {
		return Message{}, ErrBadMessage
	}
	return m, nil
}

// Beacon sends heartbeats to the peers over UDP and receives theirs.
type Beacon struct {
	conn  *net.UDPConn
	peers map[int]*net.UDPAddr

	mu    sync.Mutex
	heard map[int]time.Time
	last  map[int]Message
	seq   uint64
}

// Listen opens the beacon on addr, sending to peers (node id -> address).
func Listen(addr string, peers map[int]string) (*Beacon, error) {
	la, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("heartbeat address %q: %w", addr, err)
	}
	conn, err := net.ListenUDP("udp", la)
	if err != nil {
		return nil, fmt.Errorf("heartbeat listen on %s: %w", addr, err)
	}
	b := &Beacon{conn: conn, peers: make(map[int]*net.UDPAddr), heard: make(map[int]time.Time), last: make(map[int]Message)}
	for n, a := range peers {
		ua, err := net.ResolveUDPAddr("udp", a)
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("peer %d heartbeat address %q: %w", n, a, err)
		}
		b.peers[n] = ua
	}
	return b, nil
}

// Addr returns the local address.
func (b *Beacon) Addr() net.Addr { return b.conn.LocalAddr() }

// Send sends m to every peer.
func (b *Beacon) Send(m Message) {
	b.mu.Lock()
	b.seq++
	m.Seq = b.seq
	b.mu.Unlock()
	pkt := m.encode()
	for _, a := range b.peers {
		_, _ = b.conn.WriteToUDP(pkt, a)
	}
}

// Receive reads heartbeats until the beacon is closed, calling fn for each.
func (b *Beacon) Receive(fn func(m Message, at time.Time)) {
	buf := make([]byte, 128)
	for {
		n, _, err := b.conn.ReadFromUDP(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		m, err := DecodeMessage(buf[:n])
		if err != nil {
			continue
		}
		now := time.Now()
		b.mu.Lock()
		b.heard[m.Node] = now
		b.last[m.Node] = m
		b.mu.Unlock()
		if fn != nil {
			fn(m, now)
		}
	}
}

// LastHeard returns when node was last heard from, and its last message.
func (b *Beacon) LastHeard(node int) (time.Time, Message, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.heard[node]
	return t, b.last[node], ok
}

// Close stops the beacon.
func (b *Beacon) Close() error { return b.conn.Close() }
