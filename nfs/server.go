// Package nfs serves the store over NFSv3 and MOUNT v3 on one TCP port.
//
// An RPC front reads ONC RPC records from each client connection and handles
// requests from one connection concurrently, so that concurrent WRITEs share
// one journal flush. It decodes AUTH_UNIX credentials and enforces them in
// the store, checks exports, keeps a duplicate-request cache whose entries
// are written in the same journal transaction as the request's effect, and
// can close every client connection at once (demotion). NULL is forwarded to
// go-nfs servers behind the front; the other procedures are implemented here
// over the store's inode API (go-nfs's were found lacking: see
// docs/architecture.md).
package nfs

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"sync"
	"time"

	"github.com/hanfs/hanfs/fsstore"
	"github.com/hanfs/hanfs/nfs/rpcwire"
	"github.com/prometheus/client_golang/prometheus"
)

// MaxRecord is the largest RPC record accepted (a 1 MiB WRITE plus headers).
const MaxRecord = 1<<20 + 64<<10

// MaxIO is the largest READ or WRITE transfer.
const MaxIO = 1 << 20

// Config configures a Server.
type Config struct {
	Exports []Export
	// Verifier is the NFSv3 write verifier; derive it from the disk's epoch.
	Verifier [8]byte
	Logger   *slog.Logger
	// Registerer receives the server's metrics (nil: a private registry).
	Registerer prometheus.Registerer
	// Metrics, when set, are used instead of registering new ones.
	Metrics *Metrics
	// MaxInFlight bounds concurrent requests per connection (default 64).
	MaxInFlight int
	// RecordTTL is how long duplicate-request records are kept (default 10m).
	RecordTTL time.Duration
	// Gate, when set, is checked before a request runs and again before its
	// reply is sent; if it fails the request is dropped and the connection
	// closed (the client retransmits to the new primary). A node passes its
	// lease's write gate, so a node whose lease lapsed (say, it was paused)
	// answers nothing, not even a read.
	Gate func() error
	// AfterCommit, when set, is called with the procedure's name after a
	// non-idempotent request's effect is durable and before its reply is
	// sent. Fault-injection tests use it to die at exactly that point.
	AfterCommit func(proc string)
}

// Server is an NFSv3 server over one store.
type Server struct {
	store   *fsstore.Store
	h       *Handles
	verf    [8]byte
	exports []*Export
	byID    map[uint32]*Export
	log     *slog.Logger
	m       *metrics
	drc     *drc
	gonfs   *gonfsPool
	cfg     Config
	fsid    uint64

	mu        sync.Mutex
	conns     map[*conn]struct{}
	listeners map[net.Listener]struct{}
	mounts    map[mountEntry]struct{}
	closed    bool
	wg        sync.WaitGroup
	stop      chan struct{}
}

// New returns a server for store with cfg. It resolves every export path.
func New(store *fsstore.Store, cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 64
	}
	if cfg.RecordTTL <= 0 {
		cfg.RecordTTL = 10 * time.Minute
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	if len(cfg.Exports) == 0 {
		e, err := ParseExport("/")
		if err != nil {
			return nil, err
		}
		cfg.Exports = []Export{e}
	}
	sb := store.Superblock()
	var fsid uint64
	for i := 0; i < 8; i++ {
		fsid = fsid<<8 | uint64(sb.UUID[i]^sb.UUID[i+8])
	}
	s := &Server{fsid: fsid,
		store: store, h: NewHandles(sb.UUID, sb.HandleKey), verf: cfg.Verifier,
		byID: make(map[uint32]*Export), log: cfg.Logger, cfg: cfg,
		conns: make(map[*conn]struct{}), listeners: make(map[net.Listener]struct{}),
		mounts: make(map[mountEntry]struct{}), stop: make(chan struct{}),
	}
	for i := range cfg.Exports {
		e := cfg.Exports[i]
		if e.id == 0 {
			e.id = exportID(e.Path)
		}
		a, err := s.resolve(e.Path)
		if err != nil {
			return nil, fmt.Errorf("export %s: %w", e.Path, err)
		}
		if !a.IsDir() {
			return nil, fmt.Errorf("export %s: not a directory", e.Path)
		}
		if _, dup := s.byID[e.id]; dup {
			return nil, fmt.Errorf("export %s: listed twice", e.Path)
		}
		e.root, e.gen = a.Ino, a.Gen
		s.exports = append(s.exports, &e)
		s.byID[e.id] = &e
	}
	if cfg.Metrics != nil {
		s.m = cfg.Metrics
	} else {
		m, err := newMetrics(cfg.Registerer)
		if err != nil {
			return nil, err
		}
		s.m = m
	}
	s.drc = newDRC(4096)
	s.gonfs = newGonfsPool(s, 4)
	s.wg.Add(1)
	go s.expireLoop()
	return s, nil
}

// resolve walks an absolute path inside the store, as root.
func (s *Server) resolve(p string) (fsstore.Attr, error) {
	a, err := s.store.Getattr(fsstore.RootIno)
	if err != nil {
		return a, err
	}
	for _, name := range splitPath(p) {
		if a, err = s.store.Lookup(nil, a.Ino, name); err != nil {
			return a, err
		}
	}
	return a, nil
}

func splitPath(p string) []string {
	var out []string
	cur := ""
	for i := 0; i <= len(p); i++ {
		if i == len(p) || p[i] == '/' {
			if cur != "" {
				out = append(out, cur)
			}
			cur = ""
			continue
		}
		cur += string(p[i])
	}
	return out
}

// Serve accepts client connections on l until Close.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return errors.New("nfs server closed")
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
	}()
	for {
		nc, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return fmt.Errorf("accept: %w", err)
		}
		c := &conn{s: s, nc: nc, sem: make(chan struct{}, s.cfg.MaxInFlight)}
		if ap, err := netip.ParseAddrPort(nc.RemoteAddr().String()); err == nil {
			c.ip = ap.Addr().Unmap()
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return nil
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.m.conns.Inc()
		s.wg.Add(1)
		go c.serve()
	}
}

// CloseClients closes every client connection now; requests in flight finish
// but their replies are dropped. Clients reconnect and retransmit.
func (s *Server) CloseClients() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.nc.Close()
	}
	return len(s.conns)
}

// Close stops accepting, closes every client connection and waits for the
// requests in flight.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.stop)
	for l := range s.listeners {
		l.Close()
	}
	for c := range s.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	s.gonfs.close()
	return nil
}

func (s *Server) expireLoop() {
	defer s.wg.Done()
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			n, err := s.store.ExpireRecords(time.Now().Add(-s.cfg.RecordTTL).UnixNano(), 10000)
			if err != nil {
				s.log.Warn("expire duplicate-request records", "err", err)
			} else if n > 0 {
				s.log.Debug("expired duplicate-request records", "count", n)
			}
		}
	}
}

// conn is one client connection.
type conn struct {
	s   *Server
	nc  net.Conn
	ip  netip.Addr
	sem chan struct{}
	wmu sync.Mutex
}

func (c *conn) serve() {
	s := c.s
	var inflight sync.WaitGroup
	// Requests run on worker goroutines kept for the connection's life (up
	// to MaxInFlight), each handed one request at a time: a goroutine per
	// request would grow a fresh stack on every call.
	work := make(chan []byte)
	workers := 0
	defer func() {
		c.nc.Close()
		close(work)
		inflight.Wait()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		s.m.conns.Dec()
		s.wg.Done()
	}()
	rr := rpcwire.NewRecordReader(bufio.NewReaderSize(c.nc, 128<<10), MaxRecord)
	for {
		rec, err := rr.Next()
		if err != nil {
			if errors.Is(err, rpcwire.ErrRecordTooLarge) {
				s.m.rejects.WithLabelValues("too_large").Inc()
				s.log.Warn("closing connection: RPC record too large", "client", c.nc.RemoteAddr(), "err", err)
			}
			return
		}
		buf := append([]byte(nil), rec...)
		c.sem <- struct{}{}
		select {
		case work <- buf: // an idle worker takes it
		default:
			if workers == cap(c.sem) {
				work <- buf // one is about to be idle: it gave back its slot
				continue
			}
			workers++
			inflight.Add(1)
			go c.worker(buf, work, &inflight)
		}
	}
}

// worker answers rec, then the requests it receives on work until work is
// closed.
func (c *conn) worker(rec []byte, work <-chan []byte, inflight *sync.WaitGroup) {
	defer inflight.Done()
	for ok := true; ok; rec, ok = <-work {
		reply, out := c.serveRecord(rec)
		if reply != nil {
			c.send(reply, out.tailOf())
		}
		if out != nil {
			out.release()
		}
		<-c.sem
	}
}

// pooled is what goes with a reply held in pooled or cached buffers: more
// bytes to send after it, and the function that gives the buffers back once
// the reply is written (or dropped).
type pooled struct {
	tail    [][]byte
	release func()
}

func (p *pooled) tailOf() [][]byte {
	if p == nil {
		return nil
	}
	return p.tail
}

// send writes reply and then tail as one record: the mark and every piece
// in one writev, without copying them.
func (c *conn) send(reply []byte, tail [][]byte) {
	n := len(reply)
	for _, b := range tail {
		n += len(b)
	}
	var mark [rpcwire.MarkSize]byte
	binary.BigEndian.PutUint32(mark[:], 1<<31|uint32(n)) // last fragment
	bufs := make(net.Buffers, 0, 2+len(tail))
	bufs = append(append(bufs, mark[:], reply), tail...)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.nc.SetWriteDeadline(time.Now().Add(30 * time.Second))
	if _, err := bufs.WriteTo(c.nc); err != nil {
		c.nc.Close()
	}
}

// handle answers one RPC record; nil means no reply. The reply is the
// caller's to keep.
func (c *conn) handle(rec []byte) []byte {
	reply, out := c.serveRecord(rec)
	if out != nil {
		reply = append([]byte(nil), reply...)
		for _, b := range out.tail {
			reply = append(reply, b...)
		}
		out.release()
	}
	return reply
}

// serveRecord answers one RPC record; a nil reply means no reply. A non-nil
// out says the reply goes on with out.tail, and out.release must be called
// once it is written: it is in pooled or cached buffers.
func (c *conn) serveRecord(rec []byte) (reply []byte, out *pooled) {
	s := c.s
	if g := s.cfg.Gate; g != nil {
		if err := g(); err != nil {
			s.m.rejects.WithLabelValues("no_lease").Inc()
			c.nc.Close()
			return nil, nil
		}
		defer func() {
			if reply != nil && g() != nil {
				s.m.rejects.WithLabelValues("no_lease").Inc()
				reply = nil
				if out != nil {
					out.release()
					out = nil
				}
				c.nc.Close()
			}
		}()
	}
	call, err := rpcwire.ParseCall(rec)
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("panic handling request", "client", c.nc.RemoteAddr(), "panic", p, "stack", string(debug.Stack()))
			s.m.rejects.WithLabelValues("panic").Inc()
			if call != nil {
				reply, out = rpcwire.AcceptedReply(call.XID, rpcwire.SystemErr, nil), nil
			}
		}
	}()
	switch {
	case errors.Is(err, rpcwire.ErrRPCMismatch):
		s.m.rejects.WithLabelValues("rpc_mismatch").Inc()
		return rpcwire.DeniedRPCMismatch(call.XID), nil
	case errors.Is(err, rpcwire.ErrBadCred):
		s.m.rejects.WithLabelValues("bad_cred").Inc()
		return rpcwire.DeniedAuth(call.XID, rpcwire.AuthBadCred), nil
	case err != nil:
		s.m.rejects.WithLabelValues("garbage").Inc()
		s.log.Debug("unparseable RPC call", "client", c.nc.RemoteAddr(), "err", err)
		if call != nil && len(rec) >= 4 {
			return rpcwire.AcceptedReply(call.XID, rpcwire.GarbageArgs, nil), nil
		}
		return nil, nil
	}
	switch call.Prog {
	case ProgNFS:
		if call.Vers != VersNFS {
			return rpcwire.ProgMismatchReply(call.XID, VersNFS, VersNFS), nil
		}
		return c.nfsCall(call, rec)
	case ProgMount:
		if call.Vers != VersMount {
			return rpcwire.ProgMismatchReply(call.XID, VersMount, VersMount), nil
		}
		return c.mountCall(call), nil
	}
	s.m.rejects.WithLabelValues("prog_unavail").Inc()
	return rpcwire.AcceptedReply(call.XID, rpcwire.ProgUnavail, nil), nil
}

// credOf returns the caller's credential before export squashing, or false
// for an unsupported flavor.
func credOf(call *rpcwire.Call) (*fsstore.Cred, bool) {
	switch {
	case call.Unix != nil:
		return &fsstore.Cred{UID: call.Unix.UID, GID: call.Unix.GID, Groups: call.Unix.GIDs}, true
	case call.CredFlavor == 0: // AUTH_NONE: anonymous
		return &fsstore.Cred{UID: 65534, GID: 65534}, true
	}
	return nil, false
}
