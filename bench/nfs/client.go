// Package nfsbench compares hanfsd with other NFSv3 servers (NFS-Ganesha and
// go-nfs's example server) under the same client workloads: sequential 1 MiB
// writes and reads of a 1 GiB file, 4 KiB random writes, and
// create+write+commit of small files, each with 1 and with 8 requests in
// flight on one TCP connection. bench/nfs/run.sh starts the three servers on
// loopback and runs BenchmarkNFS against all of them in one go.
//
// The workloads use Client, a small NFSv3 client built on nfs/rpcwire that
// keeps several calls in flight on one connection, as kernel clients do
// (go-nfs-client's File.Write has one request in flight at a time). Mounting
// uses github.com/willscott/go-nfs-client.
package nfsbench

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hanfs/hanfs/nfs/rpcwire"
)

// NFSv3 program, version and the procedures the workloads use (RFC 1813).
const (
	progNFS     = 100003
	versNFS     = 3
	procWrite   = 7
	procRead    = 6
	procCreate  = 8
	procMkdir   = 9
	procFsinfo  = 19
	procCommit  = 21
	procRemove  = 12
	createUnchk = 0
)

// Stable says how WRITE asks for durability (stable_how of RFC 1813).
type Stable uint32

const (
	// Unstable writes may be cached by the server until a COMMIT.
	Unstable Stable = 0
	// FileSync writes are durable, data and metadata, before the reply.
	FileSync Stable = 2
)

func (s Stable) String() string {
	switch s {
	case Unstable:
		return "UNSTABLE+COMMIT"
	case FileSync:
		return "FILE_SYNC"
	}
	return fmt.Sprintf("stable(%d)", uint32(s))
}

// StatusError is an NFS3ERR_* status in a reply.
type StatusError struct {
	Proc   uint32
	Status uint32
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("NFS procedure %d: status %d", e.Proc, e.Status)
}

// Client is an NFSv3 client over one TCP connection that lets any number of
// goroutines have calls in flight at once; replies are matched by xid.
type Client struct {
	nc   net.Conn
	cred *rpcwire.AuthUnix
	xid  atomic.Uint32

	wmu sync.Mutex // serialises record writes

	mu      sync.Mutex
	pending map[uint32]chan []byte
	err     error // set when the connection failed; every later call fails
	done    chan struct{}
}

// Dial connects to the NFS service at addr (host:port), with AUTH_UNIX
// credentials uid 0, gid 0.
func Dial(addr string) (*Client, error) {
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	c := &Client{
		nc:      nc,
		cred:    &rpcwire.AuthUnix{Stamp: uint32(time.Now().Unix()), Machine: "bench"},
		pending: make(map[uint32]chan []byte),
		done:    make(chan struct{}),
	}
	c.xid.Store(uint32(time.Now().UnixNano()))
	go c.receive()
	return c, nil
}

// Close closes the connection; calls in flight fail.
func (c *Client) Close() error {
	err := c.nc.Close()
	<-c.done
	return err
}

func (c *Client) receive() {
	defer close(c.done)
	rr := rpcwire.NewRecordReader(bufio.NewReaderSize(c.nc, 256<<10), 2<<20)
	var err error
	for {
		var rec []byte
		if rec, err = rr.Append(nil); err != nil {
			break
		}
		if len(rec) < 4 {
			err = errors.New("short reply record")
			break
		}
		xid := uint32(rec[0])<<24 | uint32(rec[1])<<16 | uint32(rec[2])<<8 | uint32(rec[3])
		c.mu.Lock()
		ch := c.pending[xid]
		delete(c.pending, xid)
		c.mu.Unlock()
		if ch != nil {
			ch <- rec
		}
	}
	c.mu.Lock()
	if c.err == nil {
		c.err = fmt.Errorf("nfs connection: %w", err)
	}
	for xid, ch := range c.pending {
		delete(c.pending, xid)
		close(ch)
	}
	c.mu.Unlock()
}

// call sends one NFSv3 call with the given argument bytes (appended by
// args to a buffer that already holds the RPC header) and returns the
// reply's results, after checking the RPC-level status.
func (c *Client) call(proc uint32, argsLen int, args func(e *rpcwire.Encoder)) ([]byte, error) {
	xid := c.xid.Add(1)
	hdr := rpcwire.BuildCall(xid, progNFS, versNFS, proc, c.cred, nil)
	buf := make([]byte, rpcwire.MarkSize, rpcwire.MarkSize+len(hdr)+argsLen)
	buf = append(buf, hdr...)
	e := rpcwire.NewEncoder(buf)
	args(e)
	if err := e.Err(); err != nil {
		return nil, err
	}
	ch := make(chan []byte, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, err
	}
	c.pending[xid] = ch
	c.mu.Unlock()
	c.wmu.Lock()
	err := rpcwire.WriteFrame(c.nc, e.Bytes())
	c.wmu.Unlock()
	if err != nil {
		c.nc.Close()
		return nil, err
	}
	rec, ok := <-ch
	if !ok {
		c.mu.Lock()
		err := c.err
		c.mu.Unlock()
		return nil, err
	}
	r, err := rpcwire.ParseReply(rec)
	if err != nil {
		return nil, err
	}
	if !r.Accepted || r.AcceptStat != rpcwire.Success {
		return nil, fmt.Errorf("NFS procedure %d: RPC reply accepted=%v accept_stat=%v reject_stat=%v", proc, r.Accepted, r.AcceptStat, r.RejectStat)
	}
	return r.Body, nil
}

// status reads the nfsstat3 at the start of a reply.
func status(proc uint32, d *rpcwire.Decoder) error {
	st, err := d.Uint32()
	if err != nil {
		return err
	}
	if st != 0 {
		return &StatusError{Proc: proc, Status: st}
	}
	return nil
}

// skipPostOpAttr skips a post_op_attr (bool + 84-byte fattr3).
func skipPostOpAttr(d *rpcwire.Decoder) error {
	ok, err := d.Bool()
	if err != nil || !ok {
		return err
	}
	_, err = d.FixedOpaque(84)
	return err
}

// skipWcc skips a wcc_data: pre_op_attr (bool + 24 bytes) and post_op_attr.
func skipWcc(d *rpcwire.Decoder) error {
	ok, err := d.Bool()
	if err != nil {
		return err
	}
	if ok {
		if _, err := d.FixedOpaque(24); err != nil {
			return err
		}
	}
	return skipPostOpAttr(d)
}

// FSInfo is the part of FSINFO the workloads need.
type FSInfo struct {
	RTMax, RTPref, WTMax, WTPref uint32
}

// FSInfo asks for the server's transfer sizes.
func (c *Client) FSInfo(fh []byte) (FSInfo, error) {
	body, err := c.call(procFsinfo, 4+len(fh)+3, func(e *rpcwire.Encoder) { e.Opaque(fh) })
	if err != nil {
		return FSInfo{}, err
	}
	d := rpcwire.NewDecoder(body)
	if err := status(procFsinfo, d); err != nil {
		return FSInfo{}, err
	}
	if err := skipPostOpAttr(d); err != nil {
		return FSInfo{}, err
	}
	var v [5]uint32
	for i := range v {
		if v[i], err = d.Uint32(); err != nil {
			return FSInfo{}, err
		}
	}
	// rtmax, rtpref, rtmult, wtmax, wtpref
	return FSInfo{RTMax: v[0], RTPref: v[1], WTMax: v[3], WTPref: v[4]}, nil
}

// putSattrMode encodes a sattr3 that sets only the mode.
func putSattrMode(e *rpcwire.Encoder, mode uint32) {
	e.Bool(true)
	e.Uint32(mode)
	e.Bool(false) // uid
	e.Bool(false) // gid
	e.Bool(false) // size
	e.Uint32(0)   // atime: DONT_CHANGE
	e.Uint32(0)   // mtime: DONT_CHANGE
}

// created decodes CREATE3res or MKDIR3res and returns the new handle.
func created(proc uint32, body []byte) ([]byte, error) {
	d := rpcwire.NewDecoder(body)
	if err := status(proc, d); err != nil {
		return nil, err
	}
	ok, err := d.Bool()
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("NFS procedure %d: no file handle in the reply", proc)
	}
	fh, err := d.Opaque(64)
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), fh...), nil
}

// Create makes a regular file (UNCHECKED, mode 0644) and returns its handle.
func (c *Client) Create(dir []byte, name string) ([]byte, error) {
	body, err := c.call(procCreate, 4+len(dir)+3+4+len(name)+3+4+32, func(e *rpcwire.Encoder) {
		e.Opaque(dir)
		e.String(name)
		e.Uint32(createUnchk)
		putSattrMode(e, 0o644)
	})
	if err != nil {
		return nil, err
	}
	return created(procCreate, body)
}

// Mkdir makes a directory (mode 0755) and returns its handle.
func (c *Client) Mkdir(dir []byte, name string) ([]byte, error) {
	body, err := c.call(procMkdir, 4+len(dir)+3+4+len(name)+3+32, func(e *rpcwire.Encoder) {
		e.Opaque(dir)
		e.String(name)
		putSattrMode(e, 0o755)
	})
	if err != nil {
		return nil, err
	}
	return created(procMkdir, body)
}

// Remove removes the file name from dir.
func (c *Client) Remove(dir []byte, name string) error {
	body, err := c.call(procRemove, 4+len(dir)+3+4+len(name)+3, func(e *rpcwire.Encoder) {
		e.Opaque(dir)
		e.String(name)
	})
	if err != nil {
		return err
	}
	return status(procRemove, rpcwire.NewDecoder(body))
}

// WriteResult is what a WRITE reply says about durability.
type WriteResult struct {
	Count     uint32
	Committed Stable
	Verf      [8]byte
}

// Write writes data at off with the given stability.
func (c *Client) Write(fh []byte, off uint64, data []byte, how Stable) (WriteResult, error) {
	body, err := c.call(procWrite, 4+len(fh)+3+8+4+4+4+len(data)+3, func(e *rpcwire.Encoder) {
		e.Opaque(fh)
		e.Uint64(off)
		e.Uint32(uint32(len(data)))
		e.Uint32(uint32(how))
		e.Opaque(data)
	})
	if err != nil {
		return WriteResult{}, err
	}
	d := rpcwire.NewDecoder(body)
	if err := status(procWrite, d); err != nil {
		return WriteResult{}, err
	}
	if err := skipWcc(d); err != nil {
		return WriteResult{}, err
	}
	var r WriteResult
	if r.Count, err = d.Uint32(); err != nil {
		return r, err
	}
	st, err := d.Uint32()
	if err != nil {
		return r, err
	}
	r.Committed = Stable(st)
	v, err := d.FixedOpaque(8)
	if err != nil {
		return r, err
	}
	copy(r.Verf[:], v)
	if r.Count != uint32(len(data)) {
		return r, fmt.Errorf("short write: %d of %d bytes at %d", r.Count, len(data), off)
	}
	return r, nil
}

// Commit asks for everything written to fh to be made durable and returns
// the write verifier.
func (c *Client) Commit(fh []byte) ([8]byte, error) {
	var verf [8]byte
	body, err := c.call(procCommit, 4+len(fh)+3+12, func(e *rpcwire.Encoder) {
		e.Opaque(fh)
		e.Uint64(0)
		e.Uint32(0) // 0: to the end of the file
	})
	if err != nil {
		return verf, err
	}
	d := rpcwire.NewDecoder(body)
	if err := status(procCommit, d); err != nil {
		return verf, err
	}
	if err := skipWcc(d); err != nil {
		return verf, err
	}
	v, err := d.FixedOpaque(8)
	if err != nil {
		return verf, err
	}
	copy(verf[:], v)
	return verf, nil
}

// ReadAt reads up to len(p) bytes at off into p and returns how many and
// whether the server reported end of file.
func (c *Client) ReadAt(fh []byte, p []byte, off uint64) (int, bool, error) {
	body, err := c.call(procRead, 4+len(fh)+3+12, func(e *rpcwire.Encoder) {
		e.Opaque(fh)
		e.Uint64(off)
		e.Uint32(uint32(len(p)))
	})
	if err != nil {
		return 0, false, err
	}
	d := rpcwire.NewDecoder(body)
	if err := status(procRead, d); err != nil {
		return 0, false, err
	}
	if err := skipPostOpAttr(d); err != nil {
		return 0, false, err
	}
	if _, err := d.Uint32(); err != nil {
		return 0, false, err
	}
	eof, err := d.Bool()
	if err != nil {
		return 0, false, err
	}
	data, err := d.Opaque(len(p))
	if err != nil {
		return 0, false, err
	}
	return copy(p, data), eof, nil
}

// Durability checks that a sequence of WRITE replies, with the COMMIT that
// may follow them, leaves the data durable: every reply FILE_SYNC, or a
// COMMIT whose verifier matches every UNSTABLE write's.
type Durability struct {
	mu        sync.Mutex
	verf      [8]byte
	have      bool
	mismatch  bool
	unstable  int
	committed bool
}

// Wrote records one WRITE reply.
func (v *Durability) Wrote(r WriteResult) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.note(r.Verf)
	if r.Committed != FileSync {
		v.unstable++
	}
}

// Committed records a COMMIT reply.
func (v *Durability) Committed(verf [8]byte) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.note(verf)
	v.committed = true
}

func (v *Durability) note(verf [8]byte) {
	if v.have && verf != v.verf {
		v.mismatch = true
	}
	v.verf, v.have = verf, true
}

// Err says why the data may not be durable, or nil.
func (v *Durability) Err() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	switch {
	case v.mismatch:
		return errors.New("the write verifier changed: the server restarted and lost unstable writes")
	case v.unstable > 0 && !v.committed:
		return fmt.Errorf("%d writes replied without FILE_SYNC and were not committed", v.unstable)
	}
	return nil
}
