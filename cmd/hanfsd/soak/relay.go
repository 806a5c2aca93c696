package soak

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
)

// relay forwards the heartbeats between the two nodes, so the soak can cut
// the server-to-server link while the disk and the client network work.
// A node's peer address is the relay's inbound socket for that direction.
type relay struct {
	in    [2]*net.UDPConn // in[0]: heartbeats to node a; in[1]: to node b
	to    [2]*net.UDPAddr
	drop  atomic.Bool
	drops atomic.Int64
	wg    sync.WaitGroup
}

// newRelay opens the relay's two sockets, forwarding to hbA and hbB.
func newRelay(hbA, hbB string) (*relay, error) {
	r := &relay{}
	for i, hb := range []string{hbA, hbB} {
		to, err := net.ResolveUDPAddr("udp", hb)
		if err != nil {
			r.close()
			return nil, fmt.Errorf("relay: %w", err)
		}
		in, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			r.close()
			return nil, fmt.Errorf("relay: %w", err)
		}
		r.in[i], r.to[i] = in, to
	}
	for i := range r.in {
		r.wg.Add(1)
		go r.pump(i)
	}
	return r, nil
}

// addr is the address a peer sends heartbeats for node i (0 or 1) to.
func (r *relay) addr(i int) string { return r.in[i].LocalAddr().String() }

// cut drops (true) or forwards (false) every heartbeat, both directions.
func (r *relay) cut(on bool) { r.drop.Store(on) }

func (r *relay) pump(i int) {
	defer r.wg.Done()
	buf := make([]byte, 2048)
	for {
		k, _, err := r.in[i].ReadFromUDP(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if r.drop.Load() {
			r.drops.Add(1)
			continue
		}
		_, _ = r.in[i].WriteToUDP(buf[:k], r.to[i])
	}
}

func (r *relay) close() {
	for _, c := range r.in {
		if c != nil {
			c.Close()
		}
	}
	r.wg.Wait()
}
