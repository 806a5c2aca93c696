package nfs

import (
	"context"
	"errors"
	"io/fs"
	"math"
	"net"
	"os"
	"path"
	"sync"
	"time"

	billy "github.com/go-git/go-billy/v5"
	gonfs "github.com/willscott/go-nfs"
	"github.com/willscott/go-nfs/file"

	"github.com/hanfs/hanfs/fsstore"
	"github.com/hanfs/hanfs/nfs/rpcwire"
)

// Procedures the front does not implement itself are forwarded to go-nfs
// servers behind it (today: NULL; FSSTAT, FSINFO and PATHCONF were forwarded
// until tests found go-nfs's replies wrong, see fsprocs.go). Each go-nfs
// server ("slot") gets one in-memory connection and handles one request at a
// time; the front keeps a pool of them and tells the slot's handler which
// export and credentials the request it forwards runs with.

type slot struct {
	conn net.Conn // the front's end of the pipe
	rr   *rpcwire.RecordReader
	l    *pipeListener
	h    *slotHandler
	srv  *gonfs.Server
}

type gonfsPool struct {
	s     *Server
	slots chan *slot
	all   []*slot
	wg    sync.WaitGroup
}

func newGonfsPool(s *Server, n int) *gonfsPool {
	p := &gonfsPool{s: s, slots: make(chan *slot, n)}
	for i := 0; i < n; i++ {
		front, back := net.Pipe()
		sl := &slot{conn: front, rr: rpcwire.NewRecordReader(front, MaxRecord), l: newPipeListener(back), h: &slotHandler{s: s}}
		sl.srv = &gonfs.Server{Handler: sl.h, ID: s.verf, Context: context.Background()}
		p.all = append(p.all, sl)
		p.slots <- sl
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			_ = sl.srv.Serve(sl.l)
		}()
	}
	return p
}

func (p *gonfsPool) close() {
	for _, sl := range p.all {
		sl.conn.Close()
		sl.l.Close()
	}
	p.wg.Wait()
}

// forward passes the request to a go-nfs slot and returns its reply.
func (r *request) forward() ([]byte, nfsstat) {
	// A procedure with a handle argument is checked first: go-nfs knows
	// neither exports nor client addresses.
	var a fsstore.Attr
	if r.call.Proc != procNull {
		var st nfsstat
		a, st = r.fh()
		if st == statGarbage {
			return rpcwire.AcceptedReply(r.call.XID, rpcwire.GarbageArgs, nil), st
		}
		if st != nfsOK {
			r.e.Uint32(uint32(st))
			r.s.putPostOp(r.e, nil)
			return r.e.Bytes(), st
		}
	}
	p := r.s.gonfs
	sl := <-p.slots
	defer func() { p.slots <- sl }()
	sl.h.set(r.exp, r.cred, a)
	sl.conn.SetDeadline(time.Now().Add(30 * time.Second))
	if err := rpcwire.WriteRecord(sl.conn, r.rec); err != nil {
		r.s.log.Error("forward to go-nfs", "err", err)
		return rpcwire.AcceptedReply(r.call.XID, rpcwire.SystemErr, nil), nfsErrServerfault
	}
	reply, err := sl.rr.Next()
	if err != nil {
		r.s.log.Error("reply from go-nfs", "err", err)
		return rpcwire.AcceptedReply(r.call.XID, rpcwire.SystemErr, nil), nfsErrServerfault
	}
	return append([]byte(nil), reply...), nfsOK
}

// pipeListener hands out one connection, then blocks until closed.
type pipeListener struct {
	c      chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newPipeListener(c net.Conn) *pipeListener {
	l := &pipeListener{c: make(chan net.Conn, 1), closed: make(chan struct{})}
	l.c <- c
	return l
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.c:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "hanfs-front" }

// slotHandler is the go-nfs Handler of one slot.
type slotHandler struct {
	s    *Server
	mu   sync.Mutex
	exp  *Export
	cred *fsstore.Cred
	obj  fsstore.Attr
}

func (h *slotHandler) set(exp *Export, cred *fsstore.Cred, obj fsstore.Attr) {
	h.mu.Lock()
	h.exp, h.cred, h.obj = exp, cred, obj
	h.mu.Unlock()
}

// Mount is never called: the front answers MOUNT itself.
func (h *slotHandler) Mount(context.Context, net.Conn, gonfs.MountRequest) (gonfs.MountStatus, billy.Filesystem, []gonfs.AuthFlavor) {
	return gonfs.MountStatusErrAcces, nil, nil
}

// Change returns nil: forwarded procedures do not change anything.
func (h *slotHandler) Change(billy.Filesystem) billy.Change { return nil }

// FSStat reports the store's space and inode usage.
func (h *slotHandler) FSStat(_ context.Context, _ billy.Filesystem, st *gonfs.FSStat) error {
	fs := h.s.store.StatFS()
	st.TotalSize = fs.TotalBlocks * uint64(fs.BlockSize)
	st.FreeSize = fs.FreeBlocks * uint64(fs.BlockSize)
	st.AvailableSize = st.FreeSize
	st.TotalFiles = fs.Files + fs.FreeFiles
	st.FreeFiles = fs.FreeFiles
	st.AvailableFiles = fs.FreeFiles
	st.CacheHint = 0
	return nil
}

// ToHandle makes the handle of a path inside the store.
func (h *slotHandler) ToHandle(_ billy.Filesystem, p []string) []byte {
	a, err := h.s.resolve("/" + path.Join(p...))
	if err != nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.s.h.Make(h.exp.id, a.Ino, a.Gen)
}

// FromHandle returns the object the front already resolved for this request.
func (h *slotHandler) FromHandle(fh []byte) (billy.Filesystem, []string, error) {
	_, ino, gen, err := h.s.h.Parse(fh)
	if err != nil {
		return nil, nil, err
	}
	a, err := h.s.store.Check(ino, gen)
	if err != nil {
		return nil, nil, err
	}
	p, err := h.s.store.Path(ino)
	if err != nil {
		return nil, nil, err
	}
	return &statFS{s: h.s.store, obj: a}, p, nil
}

// InvalidateHandle does nothing: handles are stateless.
func (h *slotHandler) InvalidateHandle(billy.Filesystem, []byte) error { return nil }

// HandleLimit is unbounded: handles are computed, not cached.
func (h *slotHandler) HandleLimit() int { return math.MaxInt32 }

// statFS is the read-only billy.Filesystem go-nfs sees: it can stat paths
// (with the real inode number, link count and owner in Sys) and nothing
// else.
type statFS struct {
	s   *fsstore.Store
	obj fsstore.Attr
}

var errReadOnlyView = errors.New("read-only view for forwarded procedures")

func (f *statFS) Lstat(p string) (os.FileInfo, error) {
	a, err := f.resolve(p)
	if err != nil {
		return nil, &os.PathError{Op: "lstat", Path: p, Err: err}
	}
	return fileInfo{name: path.Base(p), a: a}, nil
}

func (f *statFS) Stat(p string) (os.FileInfo, error) { return f.Lstat(p) }

func (f *statFS) resolve(p string) (fsstore.Attr, error) {
	a, err := f.s.Getattr(fsstore.RootIno)
	if err != nil {
		return a, err
	}
	for _, n := range splitPath(p) {
		if a, err = f.s.Lookup(nil, a.Ino, n); err != nil {
			return a, err
		}
	}
	return a, nil
}

func (f *statFS) Join(elem ...string) string        { return path.Join(elem...) }
func (f *statFS) Create(string) (billy.File, error) { return nil, errReadOnlyView }
func (f *statFS) Open(string) (billy.File, error)   { return nil, errReadOnlyView }
func (f *statFS) OpenFile(string, int, os.FileMode) (billy.File, error) {
	return nil, errReadOnlyView
}
func (f *statFS) Rename(string, string) error                 { return errReadOnlyView }
func (f *statFS) Remove(string) error                         { return errReadOnlyView }
func (f *statFS) TempFile(string, string) (billy.File, error) { return nil, errReadOnlyView }
func (f *statFS) ReadDir(string) ([]os.FileInfo, error)       { return nil, errReadOnlyView }
func (f *statFS) MkdirAll(string, os.FileMode) error          { return errReadOnlyView }
func (f *statFS) Symlink(string, string) error                { return errReadOnlyView }
func (f *statFS) Readlink(string) (string, error)             { return "", errReadOnlyView }
func (f *statFS) Chroot(string) (billy.Filesystem, error)     { return nil, errReadOnlyView }
func (f *statFS) Root() string                                { return "/" }

// Capabilities says the view is read-only.
func (f *statFS) Capabilities() billy.Capability { return billy.ReadCapability }

// fileInfo is an fs.FileInfo over store attributes; Sys carries what go-nfs
// needs for fattr3 (inode number, link count, owner).
type fileInfo struct {
	name string
	a    fsstore.Attr
}

func (fi fileInfo) Name() string       { return fi.name }
func (fi fileInfo) Size() int64        { return int64(fi.a.Size) }
func (fi fileInfo) ModTime() time.Time { return fi.a.Mtime }
func (fi fileInfo) IsDir() bool        { return fi.a.IsDir() }
func (fi fileInfo) Mode() fs.FileMode {
	m := fs.FileMode(fi.a.Mode & 0o777)
	switch fi.a.Mode & fsstore.ModeType {
	case fsstore.ModeDir:
		m |= fs.ModeDir
	case fsstore.ModeSymlink:
		m |= fs.ModeSymlink
	case fsstore.ModeChar:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case fsstore.ModeBlock:
		m |= fs.ModeDevice
	case fsstore.ModeFIFO:
		m |= fs.ModeNamedPipe
	case fsstore.ModeSocket:
		m |= fs.ModeSocket
	}
	return m
}
func (fi fileInfo) Sys() any {
	return &file.FileInfo{Nlink: fi.a.Nlink, UID: fi.a.UID, GID: fi.a.GID,
		Major: uint32(fi.a.Rdev >> 32), Minor: uint32(fi.a.Rdev), Fileid: uint64(fi.a.Ino)}
}
