package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// VIP is a service address that moves between machines: the primary adds it
// to a network interface (netlink RTM_NEWADDR) and announces it with
// gratuitous ARP; a node that stops serving removes it.
type VIP struct {
	Prefix netip.Prefix // for example 10.0.0.100/24
	Dev    string       // interface name
}

// ParseVIP parses "ADDR/BITS" and an interface name.
func ParseVIP(prefix, dev string) (*VIP, error) {
	p, err := netip.ParsePrefix(prefix)
	if err != nil {
		return nil, fmt.Errorf("--vip %q: want ADDR/BITS, for example 10.0.0.100/24: %w", prefix, err)
	}
	if !p.Addr().Is4() {
		return nil, fmt.Errorf("--vip %q: only IPv4 virtual addresses are supported", prefix)
	}
	if dev == "" {
		return nil, errors.New("--vip needs --vip-dev, the interface to put the address on")
	}
	return &VIP{Prefix: p, Dev: dev}, nil
}

// Add puts the address on the interface (an address already there is fine)
// and sends gratuitous ARP so that neighbours update their caches.
func (v *VIP) Add() error {
	ifi, err := net.InterfaceByName(v.Dev)
	if err != nil {
		return fmt.Errorf("vip: interface %s: %w", v.Dev, err)
	}
	if err := v.addr(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_REPLACE, ifi.Index); err != nil {
		return fmt.Errorf("vip: add %s to %s: %w", v.Prefix, v.Dev, err)
	}
	for i := 0; i < 3; i++ {
		if err := gratuitousARP(ifi, v.Prefix.Addr()); err != nil {
			return fmt.Errorf("vip: gratuitous ARP for %s on %s: %w", v.Prefix.Addr(), v.Dev, err)
		}
	}
	return nil
}

// Remove takes the address off the interface (an absent address is fine).
func (v *VIP) Remove() error {
	ifi, err := net.InterfaceByName(v.Dev)
	if err != nil {
		return fmt.Errorf("vip: interface %s: %w", v.Dev, err)
	}
	err = v.addr(unix.RTM_DELADDR, 0, ifi.Index)
	if errors.Is(err, unix.EADDRNOTAVAIL) || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("vip: remove %s from %s: %w", v.Prefix, v.Dev, err)
	}
	return nil
}

// addr sends one RTM_NEWADDR or RTM_DELADDR request and reads the ack.
func (v *VIP) addr(typ uint16, flags uint16, index int) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("netlink bind: %w", err)
	}
	ip := v.Prefix.Addr().As4()
	attr := func(t uint16, data []byte) []byte {
		b := make([]byte, 4, 4+len(data)+3)
		binary.NativeEndian.PutUint16(b[0:], uint16(4+len(data)))
		binary.NativeEndian.PutUint16(b[2:], t)
		b = append(b, data...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
		return b
	}
	body := []byte{unix.AF_INET, byte(v.Prefix.Bits()), 0, unix.RT_SCOPE_UNIVERSE, 0, 0, 0, 0}
	binary.NativeEndian.PutUint32(body[4:], uint32(index))
	body = append(body, attr(unix.IFA_LOCAL, ip[:])...)
	body = append(body, attr(unix.IFA_ADDRESS, ip[:])...)
	msg := make([]byte, unix.NLMSG_HDRLEN, unix.NLMSG_HDRLEN+len(body))
	binary.NativeEndian.PutUint32(msg[0:], uint32(unix.NLMSG_HDRLEN+len(body)))
	binary.NativeEndian.PutUint16(msg[4:], typ)
	binary.NativeEndian.PutUint16(msg[6:], unix.NLM_F_REQUEST|unix.NLM_F_ACK|flags)
	binary.NativeEndian.PutUint32(msg[8:], 1)
	msg = append(msg, body...)
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("netlink send: %w", err)
	}
	buf := make([]byte, 4096)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return fmt.Errorf("netlink receive: %w", err)
	}
	if n < unix.NLMSG_HDRLEN+4 || binary.NativeEndian.Uint16(buf[4:]) != unix.NLMSG_ERROR {
		return fmt.Errorf("netlink: unexpected reply of %d bytes", n)
	}
	if code := int32(binary.NativeEndian.Uint32(buf[unix.NLMSG_HDRLEN:])); code != 0 {
		return syscall.Errno(-code)
	}
	return nil
}

// gratuitousARP broadcasts an ARP request for ip from ip on ifi.
func gratuitousARP(ifi *net.Interface, ip netip.Addr) error {
	if len(ifi.HardwareAddr) != 6 {
		return nil // no Ethernet address (loopback, tun): nothing to announce
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ARP)))
	if err != nil {
		return fmt.Errorf("packet socket: %w", err)
	}
	defer unix.Close(fd)
	a := ip.As4()
	pkt := make([]byte, 28)
	binary.BigEndian.PutUint16(pkt[0:], 1)      // Ethernet
	binary.BigEndian.PutUint16(pkt[2:], 0x0800) // IPv4
	pkt[4], pkt[5] = 6, 4
	binary.BigEndian.PutUint16(pkt[6:], 1) // request
	copy(pkt[8:], ifi.HardwareAddr)
	copy(pkt[14:], a[:])
	copy(pkt[24:], a[:])
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: ifi.Index, Halen: 6,
		Addr: [8]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}
	return unix.Sendto(fd, pkt, 0, sa)
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
