// Package client is a small NFSv3 client over TCP that behaves like a Linux
// "hard" mount: an NFS call never fails because the server went away.
//
// A Client keeps one TCP connection to the service address and lets any
// number of goroutines have calls in flight on it; replies are matched by
// xid. When the connection breaks, or when a call gets no reply within
// Config.Timeout (default 2 s), the client closes the connection, reconnects
// (retrying every Config.RetryInterval, default 20 ms, until the caller's
// context ends) and retransmits every outstanding call with the same xid and
// the same bytes. A retransmission that reaches a new primary after a
// failover is answered by the server's duplicate-request cache, so a CREATE
// that had been executed before the crash succeeds again instead of failing
// with EXIST.
//
// Call is the raw RPC layer: it returns the reply body starting at the
// procedure's results. The helpers (Mount, Lookup, Getattr, Create, Mkdir,
// Write, Read, Remove, Rename, ReadDirPlus, Null) encode the arguments and
// decode the results of the NFSv3 and MOUNT v3 procedures; an NFS status
// other than NFS3_OK comes back as a *StatusError.
//
// Only the caller's context bounds a call: with no deadline, a call waits
// until the server answers, however long that takes (the hard-mount rule).
// Stats reports how many reconnects and retransmissions happened and the
// longest time any call waited for its reply.
package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hanfs/hanfs/nfs/rpcwire"
)

// Config configures a Client. Only Addr is required.
type Config struct {
	// Addr is the service address, host:port.
	Addr string
	// Cred is the AUTH_UNIX credential sent with every call (nil: AUTH_NONE).
	Cred *rpcwire.AuthUnix
	// Timeout is how long a call may wait for its reply on one connection
	// before the client reconnects and retransmits (default 2 s). It also
	// bounds each connection attempt.
	Timeout time.Duration
	// RetryInterval is the pause between failed connection attempts
	// (default 20 ms).
	RetryInterval time.Duration
	// Logf, when set, receives a line for every reconnect.
	Logf func(format string, args ...any)
}

// Stats are a client's counters since Dial (or the last ResetStats).
type Stats struct {
	// Calls is the number of calls that got a reply.
	Calls uint64
	// Reconnects counts connections made after the first one.
	Reconnects uint64
	// Retransmissions counts calls sent again on a new connection.
	Retransmissions uint64
	// Timeouts counts connections dropped because a reply was overdue.
	Timeouts uint64
	// MaxWait is the longest time a call waited, from Call to its reply.
	MaxWait time.Duration
}

// ErrClosed is returned by calls on a closed client.
var ErrClosed = errors.New("nfs client closed")

// RPCError reports a reply that is not an accepted, successful RPC reply
// (PROG_UNAVAIL, GARBAGE_ARGS, AUTH_ERROR, ...).
type RPCError struct {
	Proc  uint32
	Reply *rpcwire.Reply
}

func (e *RPCError) Error() string {
	if !e.Reply.Accepted {
		if e.Reply.RejectStat == rpcwire.RejectAuthError {
			return fmt.Sprintf("rpc: procedure %d: call denied: %v", e.Proc, e.Reply.AuthStat)
		}
		return fmt.Sprintf("rpc: procedure %d: call denied: RPC_MISMATCH (%d..%d)", e.Proc, e.Reply.Low, e.Reply.High)
	}
	return fmt.Sprintf("rpc: procedure %d: %v", e.Proc, e.Reply.AcceptStat)
}

// Client is an NFSv3 client with hard-mount semantics. It is safe for
// concurrent use.
type Client struct {
	cfg  Config
	kick chan struct{} // wakes the manager: the connection broke
	stop chan struct{} // closed by Close
	done chan struct{} // closed when the manager has exited

	mu      sync.Mutex
	conn    *conn // nil while disconnected
	ever    bool  // a connection was made once
	pending map[uint32]*call
	xid     uint32
	closed  bool
	stats   Stats
}

// call is one outstanding RPC.
type call struct {
	xid    uint32
	proc   uint32
	frame  []byte // record mark and call, sent as is on every connection
	on     *conn  // the connection it was last sent on (nil: not yet)
	sentAt time.Time
	sends  int
	done   chan struct{}
	reply  []byte
}

type conn struct {
	nc   net.Conn
	wmu  sync.Mutex
	once sync.Once
}

// Dial connects to the NFS service at addr with credential cred (nil:
// AUTH_NONE) and default settings. It retries until ctx ends.
func Dial(ctx context.Context, addr string, cred *rpcwire.AuthUnix) (*Client, error) {
	return DialConfig(ctx, Config{Addr: addr, Cred: cred})
}

// DialConfig connects with cfg. Like every reconnect, the first connection is
// retried every cfg.RetryInterval until it succeeds or ctx ends.
func DialConfig(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.Addr == "" {
		return nil, errors.New("nfs client: no address")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = 20 * time.Millisecond
	}
	c := &Client{cfg: cfg, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
		pending: make(map[uint32]*call)}
	var b [4]byte
	rand.Read(b[:])
	// A random first xid: the server's duplicate-request cache keys on the
	// client's address and the xid, and many clients share one address.
	c.xid = binary.BigEndian.Uint32(b[:])
	up := make(chan struct{})
	go c.manage(up)
	select {
	case <-up:
		return c, nil
	case <-ctx.Done():
		c.Close()
		return nil, fmt.Errorf("nfs client: connect to %s: %w", cfg.Addr, ctx.Err())
	}
}

// Addr returns the service address.
func (c *Client) Addr() string { return c.cfg.Addr }

// Close closes the connection; calls in flight return ErrClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		<-c.done
		return nil
	}
	c.closed = true
	cn := c.conn
	c.conn = nil
	for xid, cl := range c.pending {
		delete(c.pending, xid)
		close(cl.done)
	}
	c.mu.Unlock()
	close(c.stop)
	if cn != nil {
		cn.close()
	}
	<-c.done
	return nil
}

// Stats returns the counters.
func (c *Client) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// ResetStats zeroes the counters (to measure one phase of a test).
func (c *Client) ResetStats() {
	c.mu.Lock()
	c.stats = Stats{}
	c.mu.Unlock()
}

// Reconnect drops the current connection, as a broken one would be: the
// client reconnects and retransmits every outstanding call.
func (c *Client) Reconnect() {
	c.mu.Lock()
	cn := c.conn
	c.mu.Unlock()
	if cn != nil {
		c.broken(cn)
	}
}

// Call sends an RPC call and waits for its reply, across reconnects, until
// ctx ends. It returns the reply's body from the procedure's results on. A
// reply other than an accepted SUCCESS is an *RPCError.
func (c *Client) Call(ctx context.Context, prog, vers, proc uint32, args []byte) ([]byte, error) {
	start := time.Now()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	c.xid++
	for c.pending[c.xid] != nil {
		c.xid++
	}
	xid := c.xid
	var fb bytes.Buffer
	if err := rpcwire.WriteRecord(&fb, rpcwire.BuildCall(xid, prog, vers, proc, c.cfg.Cred, args)); err != nil {
		c.mu.Unlock()
		return nil, err
	}
	cl := &call{xid: xid, proc: proc, frame: fb.Bytes(), done: make(chan struct{})}
	c.pending[xid] = cl
	cn := c.conn
	if cn != nil {
		cl.on, cl.sentAt, cl.sends = cn, time.Now(), 1
	}
	c.mu.Unlock()
	if cn != nil {
		c.send(cn, cl)
	}
	select {
	case <-cl.done:
	case <-ctx.Done():
		c.mu.Lock()
		if c.pending[xid] == cl {
			delete(c.pending, xid)
		}
		c.mu.Unlock()
		select {
		case <-cl.done: // the reply won the race
		default:
			return nil, fmt.Errorf("nfs client: procedure %d (xid %#x): %w", proc, xid, ctx.Err())
		}
	}
	if cl.reply == nil {
		return nil, ErrClosed
	}
	wait := time.Since(start)
	c.mu.Lock()
	c.stats.Calls++
	if wait > c.stats.MaxWait {
		c.stats.MaxWait = wait
	}
	c.mu.Unlock()
	r, err := rpcwire.ParseReply(cl.reply)
	if err != nil {
		return nil, fmt.Errorf("nfs client: procedure %d: %w", proc, err)
	}
	if !r.Accepted || r.AcceptStat != rpcwire.Success {
		return nil, &RPCError{Proc: proc, Reply: r}
	}
	return r.Body, nil
}

// send writes cl on cn; a failed write breaks the connection (the manager
// then retransmits cl on the next one).
func (c *Client) send(cn *conn, cl *call) {
	cn.wmu.Lock()
	cn.nc.SetWriteDeadline(time.Now().Add(c.cfg.Timeout))
	_, err := cn.nc.Write(cl.frame)
	cn.wmu.Unlock()
	if err != nil {
		c.broken(cn)
	}
}

func (cn *conn) close() { cn.once.Do(func() { cn.nc.Close() }) }

// broken closes cn and, if it is the current connection, has the manager
// reconnect.
func (c *Client) broken(cn *conn) {
	cn.close()
	c.mu.Lock()
	if c.conn == cn {
		c.conn = nil
	}
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// manage keeps the client connected: it reconnects whenever the connection
// is lost, retransmits the outstanding calls, and drops a connection on
// which a reply is overdue.
func (c *Client) manage(up chan struct{}) {
	defer close(c.done)
	check := c.cfg.Timeout / 8
	if check < 5*time.Millisecond {
		check = 5 * time.Millisecond
	}
	tick := time.NewTicker(check)
	defer tick.Stop()
	for {
		c.mu.Lock()
		connected := c.conn != nil
		c.mu.Unlock()
		if !connected {
			if !c.connect() {
				return
			}
			if up != nil {
				close(up)
				up = nil
			}
		}
		select {
		case <-c.stop:
			return
		case <-c.kick:
		case <-tick.C:
			c.checkOverdue()
		}
	}
}

// connect dials until it succeeds (true) or the client is closed (false),
// then resends every outstanding call on the new connection.
func (c *Client) connect() bool {
	var lastErr error
	for attempt := 0; ; attempt++ {
		select {
		case <-c.stop:
			return false
		default:
		}
		nc, err := c.dial()
		if err == nil {
			if tc, ok := nc.(*net.TCPConn); ok {
				tc.SetNoDelay(true)
			}
			cn := &conn{nc: nc}
			c.mu.Lock()
			if c.closed {
				c.mu.Unlock()
				nc.Close()
				return false
			}
			c.conn = cn
			resend := make([]*call, 0, len(c.pending))
			now := time.Now()
			for _, cl := range c.pending {
				if cl.on != cn {
					if cl.sends > 0 {
						c.stats.Retransmissions++
					}
					cl.on, cl.sentAt = cn, now
					cl.sends++
					resend = append(resend, cl)
				}
			}
			if c.ever {
				c.stats.Reconnects++
			}
			c.ever = true
			c.mu.Unlock()
			if c.cfg.Logf != nil && attempt > 0 {
				c.cfg.Logf("nfs client: connected to %s after %d attempts (last error: %v); resending %d calls",
					c.cfg.Addr, attempt+1, lastErr, len(resend))
			}
			go c.receive(cn)
			for _, cl := range resend {
				c.send(cn, cl)
			}
			return true
		}
		lastErr = err
		select {
		case <-c.stop:
			return false
		case <-time.After(c.cfg.RetryInterval):
		}
	}
}

// dial makes one connection attempt, bounded by the timeout and by Close.
func (c *Client) dial() (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Timeout)
	defer cancel()
	go func() {
		select {
		case <-c.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	var d net.Dialer
	return d.DialContext(ctx, "tcp", c.cfg.Addr)
}

// checkOverdue drops the connection if a call sent on it waited longer than
// the timeout.
func (c *Client) checkOverdue() {
	c.mu.Lock()
	cn := c.conn
	overdue := false
	if cn != nil {
		for _, cl := range c.pending {
			if cl.on == cn && time.Since(cl.sentAt) > c.cfg.Timeout {
				overdue = true
				break
			}
		}
	}
	if overdue {
		c.stats.Timeouts++
	}
	c.mu.Unlock()
	if overdue {
		if c.cfg.Logf != nil {
			c.cfg.Logf("nfs client: no reply from %s within %v: reconnecting", c.cfg.Addr, c.cfg.Timeout)
		}
		c.broken(cn)
	}
}

// receive reads replies from cn until it breaks.
func (c *Client) receive(cn *conn) {
	rr := rpcwire.NewRecordReader(bufio.NewReaderSize(cn.nc, 64<<10), 2<<20)
	for {
		rec, err := rr.Append(nil)
		if err != nil {
			c.broken(cn)
			return
		}
		if len(rec) < 4 {
			continue
		}
		xid := binary.BigEndian.Uint32(rec)
		c.mu.Lock()
		cl := c.pending[xid]
		if cl != nil {
			delete(c.pending, xid)
			cl.reply = rec
			close(cl.done)
		}
		c.mu.Unlock()
	}
}
