package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hanfs/hanfs/fsstore"
	"github.com/hanfs/hanfs/nfs"
	"github.com/hanfs/hanfs/nfs/rpcwire"
	"github.com/hanfs/hanfs/shareddisk"
)

var root = &rpcwire.AuthUnix{Machine: "client-test"}

// server is an in-process NFS server on a shared in-memory disk that can
// crash (no checkpoint, like kill -9) and restart at the same address.
type server struct {
	t     *testing.T
	d     shareddisk.Disk
	addr  string
	st    *fsstore.Store
	srv   *nfs.Server
	l     net.Listener
	after func(proc string) // AfterCommit hook of the next start
}

func newServer(t *testing.T) *server {
	t.Helper()
	d := shareddisk.NewMem(256 << 20)
	if _, err := fsstore.Format(d, fsstore.FormatOptions{}); err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, d: d, addr: "127.0.0.1:0"}
	s.start()
	t.Cleanup(s.crash)
	return s
}

func (s *server) start() {
	s.t.Helper()
	st, err := fsstore.Open(s.d, fsstore.Options{})
	if err != nil {
		s.t.Fatal(err)
	}
	exp, _ := nfs.ParseExport("/ 127.0.0.0/8 rw,no_root_squash")
	srv, err := nfs.New(st, nfs.Config{Exports: []nfs.Export{exp}, AfterCommit: s.after})
	if err != nil {
		s.t.Fatal(err)
	}
	var l net.Listener
	for i := 0; ; i++ {
		if l, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		if i == 100 {
			s.t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.addr = l.Addr().String()
	go srv.Serve(l)
	s.st, s.srv, s.l = st, srv, l
}

// crash stops the server without checkpointing.
func (s *server) crash() {
	if s.srv != nil {
		s.srv.Close()
		s.l.Close() // Serve does not close it if Close came first
		s.st.Kill(errors.New("test crash"))
		s.srv, s.st = nil, nil
	}
}

func dial(t *testing.T, addr string, timeout time.Duration) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := DialConfig(ctx, Config{Addr: addr, Cred: root, Timeout: timeout, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestOperations(t *testing.T) {
	s := newServer(t)
	c := dial(t, s.addr, 0)
	ctx := ctxT(t, 20*time.Second)
	if err := c.Null(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Mount(ctx, "/nope"); err == nil {
		t.Fatal("mount of a missing path succeeded")
	}
	rootFH, err := c.Mount(ctx, "/")
	if err != nil {
		t.Fatal(err)
	}
	a, err := c.Getattr(ctx, rootFH)
	if err != nil || a.Type != TypeDir {
		t.Fatalf("getattr root: %+v %v", a, err)
	}
	dir, err := c.Mkdir(ctx, rootFH, "d", 0o755)
	if err != nil {
		t.Fatal(err)
	}
	fh, err := c.Create(ctx, dir, "f", 0o640)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Create(ctx, dir, "f", 0o640); !IsStatus(err, ErrExist) {
		t.Fatalf("second create: %v, want EXIST", err)
	}
	data := bytes.Repeat([]byte("hanfs "), 50000) // 300 kB
	n, verf, err := c.Write(ctx, fh, 0, data)
	if err != nil || int(n) != len(data) {
		t.Fatalf("write: %d %v", n, err)
	}
	if verf == ([8]byte{}) {
		t.Log("verifier is zero (server without an epoch)")
	}
	got, err := c.ReadAll(ctx, fh)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, %v", len(got), err)
	}
	a, err = c.Getattr(ctx, fh)
	if err != nil || a.Size != uint64(len(data)) || a.Mode&0o777 != 0o640 || a.Type != TypeReg {
		t.Fatalf("getattr: %+v %v", a, err)
	}
	fh2, a2, err := c.Lookup(ctx, dir, "f")
	if err != nil || !bytes.Equal(fh2, fh) || a2 == nil || a2.Fileid != a.Fileid {
		t.Fatalf("lookup: %v", err)
	}
	if err := c.Rename(ctx, dir, "f", rootFH, "g"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Lookup(ctx, dir, "f"); !IsStatus(err, ErrNoent) {
		t.Fatalf("lookup after rename: %v, want NOENT", err)
	}
	for i := 0; i < 300; i++ {
		if _, err := c.Create(ctx, dir, fmt.Sprintf("file-with-a-longish-name-%04d", i), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ents, err := c.ReadDirPlus(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 302 {
		t.Fatalf("readdirplus: %d entries, want 302", len(ents))
	}
	for _, e := range ents {
		if e.Name != "." && e.Name != ".." && (e.Handle == nil || e.Attr == nil || e.Attr.Type != TypeReg) {
			t.Fatalf("entry %+v", e)
		}
	}
	if err := c.Remove(ctx, rootFH, "g"); err != nil {
		t.Fatal(err)
	}
	_, err = c.Getattr(ctx, fh)
	if st, ok := StatusOf(err); !ok || st != ErrStale {
		t.Fatalf("getattr of a removed file: %v, want STALE", err)
	}
	if err.Error() != "nfs: GETATTR: NFS3ERR_STALE" {
		t.Fatalf("error text %q", err)
	}
	if _, err := c.Call(ctx, 12345, 1, 0, nil); err == nil {
		t.Fatal("unknown program accepted")
	} else if re := (*RPCError)(nil); !errors.As(err, &re) || re.Reply.AcceptStat != rpcwire.ProgUnavail {
		t.Fatalf("unknown program: %v", err)
	}
	if s := c.Stats(); s.Reconnects != 0 || s.Retransmissions != 0 || s.Calls == 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestConcurrentCalls(t *testing.T) {
	s := newServer(t)
	c := dial(t, s.addr, 0)
	ctx := ctxT(t, 30*time.Second)
	rootFH, err := c.Mount(ctx, "/")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				name := fmt.Sprintf("g%d-%d", g, i)
				fh, err := c.Create(ctx, rootFH, name, 0o644)
				if err != nil {
					errs <- err
					return
				}
				want := []byte(name)
				if _, _, err := c.Write(ctx, fh, 0, want); err != nil {
					errs <- err
					return
				}
				got, _, err := c.Read(ctx, fh, 0, 100)
				if err != nil || !bytes.Equal(got, want) {
					errs <- fmt.Errorf("read %s: %q %v", name, got, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestServerRestart crashes the server right after a CREATE is durable and
// before its reply, restarts it on the same disk and address, and checks
// that the call returns success (the retransmission is answered from the
// duplicate-request record) and that calls made while it was down succeed.
func TestServerRestart(t *testing.T) {
	s := newServer(t)
	crashed := make(chan struct{})
	var once sync.Once
	s.crash()
	s.after = func(proc string) {
		if proc == "CREATE" {
			once.Do(func() {
				s.srv.CloseClients() // the reply is lost
				close(crashed)
			})
		}
	}
	s.start()
	c := dial(t, s.addr, 0)
	ctx := ctxT(t, 30*time.Second)
	rootFH, err := c.Mount(ctx, "/")
	if err != nil {
		t.Fatal(err)
	}
	type res struct {
		fh  []byte
		err error
	}
	created := make(chan res, 1)
	go func() {
		fh, err := c.Create(ctx, rootFH, "x", 0o644)
		created <- res{fh, err}
	}()
	<-crashed
	s.crash()
	s.after = nil
	// Calls made while the server is down wait for it.
	got := make(chan error, 1)
	go func() {
		_, err := c.Getattr(ctx, rootFH)
		got <- err
	}()
	time.Sleep(300 * time.Millisecond)
	select {
	case err := <-got:
		t.Fatalf("getattr returned while the server was down: %v", err)
	default:
	}
	s.start()
	r := <-created
	if r.err != nil {
		t.Fatalf("create across the crash: %v", r.err)
	}
	if err := <-got; err != nil {
		t.Fatalf("getattr across the crash: %v", err)
	}
	fh, _, err := c.Lookup(ctx, rootFH, "x")
	if err != nil || !bytes.Equal(fh, r.fh) {
		t.Fatalf("lookup x: %v (same handle %v)", err, bytes.Equal(fh, r.fh))
	}
	st := c.Stats()
	t.Logf("stats: %+v", st)
	if st.Reconnects < 1 || st.Retransmissions < 1 {
		t.Fatalf("stats %+v: want a reconnect and a retransmission", st)
	}
	if st.MaxWait < 300*time.Millisecond {
		t.Fatalf("max wait %v, want at least the downtime", st.MaxWait)
	}
}

// TestTimeoutRetransmitsSameBytes uses a server that swallows the first
// connection's calls: after the timeout the client reconnects and resends
// every outstanding call with the same xid and the same bytes.
func TestTimeoutRetransmitsSameBytes(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var mu sync.Mutex
	seen := map[int]map[uint32][]byte{} // connection -> xid -> record
	var conns atomic.Int32
	go func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			n := int(conns.Add(1))
			go func() {
				defer nc.Close()
				rr := rpcwire.NewRecordReader(nc, 0)
				for {
					rec, err := rr.Next()
					if err != nil {
						return
					}
					call, err := rpcwire.ParseCall(rec)
					if err != nil {
						return
					}
					mu.Lock()
					if seen[n] == nil {
						seen[n] = map[uint32][]byte{}
					}
					seen[n][call.XID] = append([]byte(nil), rec...)
					mu.Unlock()
					if n == 1 {
						continue // the first connection never answers
					}
					rpcwire.WriteRecord(nc, rpcwire.AcceptedReply(call.XID, rpcwire.Success, call.Args))
				}
			}()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := DialConfig(ctx, Config{Addr: l.Addr().String(), Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var wg sync.WaitGroup
	for i := 0; i < 5; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			args := []byte{0, 0, 0, byte(i)}
			body, err := c.Call(ctx, 7, 1, 1, args)
			if err != nil || !bytes.Equal(body, args) {
				t.Errorf("call %d: %x %v", i, body, err)
			}
		}()
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(seen[1]) != 5 {
		t.Fatalf("first connection saw %d calls, want 5", len(seen[1]))
	}
	for xid, rec := range seen[1] {
		if !bytes.Equal(seen[2][xid], rec) {
			t.Fatalf("xid %#x not retransmitted byte for byte on the second connection", xid)
		}
	}
	st := c.Stats()
	if st.Timeouts != 1 || st.Reconnects != 1 || st.Retransmissions != 5 || st.MaxWait < 200*time.Millisecond {
		t.Fatalf("stats %+v", st)
	}
}

// TestContextBoundsHardCall: with the server gone, a call waits until its
// context ends, and Close ends the rest.
func TestContextBoundsHardCall(t *testing.T) {
	s := newServer(t)
	c := dial(t, s.addr, 0)
	s.crash()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := c.Null(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) < 250*time.Millisecond {
		t.Fatalf("call with the server down: %v after %v", err, time.Since(start))
	}
	done := make(chan error, 1)
	go func() { done <- c.Null(context.Background()) }()
	time.Sleep(50 * time.Millisecond)
	c.Close()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("call after close: %v", err)
	}
	if _, err := DialConfig(ctxT(t, 100*time.Millisecond), Config{Addr: s.addr}); err == nil {
		t.Fatal("dial to nothing succeeded")
	}
}
