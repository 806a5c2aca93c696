// Package fusemount serves an fsstore.Store as a FUSE file system with the
// go-fuse v2 fs API. Every store inode is one FUSE inode with the disk's
// inode number and generation, so stat(2) shows the disk's inode numbers.
//
// The mount uses the kernel's permission checks (default_permissions): the
// store is called with a nil Cred except where a new object needs an owner.
package fusemount

import (
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/hanfs/hanfs/fsstore"
)

// DefaultTimeout is the entry and attribute cache timeout when Options
// leaves it zero.
const DefaultTimeout = time.Second

// maxWrite is the largest FUSE READ and WRITE request.
const maxWrite = 1 << 20

// Options tunes Mount.
type Options struct {
	// Logger receives errors the kernel cannot be told about in detail
	// (EIO causes). Nil discards them.
	Logger *slog.Logger
	// Debug logs every FUSE request and reply to Logger (or stderr).
	Debug bool
	// EntryTimeout and AttrTimeout are the kernel's cache lifetimes for
	// names and attributes; zero means DefaultTimeout, negative means none.
	EntryTimeout time.Duration
	AttrTimeout  time.Duration
	// AllowOther lets users other than the mounting one use the mount.
	AllowOther bool
}

// Server is a mounted store.
type Server struct {
	srv *fuse.Server
	dir string
}

// Mount mounts store on dir and serves it in the background until Unmount
// or an external umount. The caller keeps ownership of store: close it after
// Wait returns.
func Mount(store *fsstore.Store, dir string, opt Options) (*Server, error) {
	if store == nil {
		return nil, errors.New("fusemount: nil store")
	}
	logger := opt.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	root, err := store.Getattr(fsstore.RootIno)
	if err != nil {
		return nil, fmt.Errorf("mount %s: root directory: %w", dir, err)
	}
	fsys := &fileSystem{store: store, log: logger,
		entryTimeout: timeout(opt.EntryTimeout), attrTimeout: timeout(opt.AttrTimeout)}
	rootNode := &node{fsys: fsys}

	entry, attr := fsys.entryTimeout, fsys.attrTimeout
	fuseOpts := &fs.Options{
		EntryTimeout:    &entry,
		AttrTimeout:     &attr,
		NegativeTimeout: &entry,
		RootStableAttr:  &fs.StableAttr{Ino: uint64(root.Ino), Gen: root.Gen},
		NullPermissions: true,
		MountOptions: fuse.MountOptions{
			FsName:  "hanfs",
			Name:    "hanfs",
			Options: []string{"default_permissions"},
			// As root, mount(2) directly and report its errors (no fusermount).
			DirectMountStrict: os.Geteuid() == 0,
			MaxWrite:          maxWrite,
			MaxReadAhead:      maxWrite,
			AllowOther:        opt.AllowOther,
			DisableXAttrs:     true,
			Debug:             opt.Debug,
			Logger:            slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
		},
		Logger: slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	if opt.Debug && opt.Logger == nil {
		fuseOpts.MountOptions.Logger = log.New(os.Stderr, "fuse: ", log.LstdFlags)
	}
	srv, err := fs.Mount(dir, rootNode, fuseOpts)
	closeOnExecFuseFDs(logger)
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w", dir, err)
	}
	return &Server{srv: srv, dir: dir}, nil
}

// closeOnExecFuseFDs sets FD_CLOEXEC on every open /dev/fuse descriptor of
// this process. go-fuse's direct mount opens /dev/fuse without O_CLOEXEC,
// so every program this process starts would inherit the FUSE connection
// and keep it alive after the server dies: a child blocked on the mount
// would then wait forever for an answer from a connection it holds itself.
func closeOnExecFuseFDs(logger *slog.Logger) {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		logger.Warn("cannot list open files to mark /dev/fuse close-on-exec", "err", err)
		return
	}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && target == "/dev/fuse" {
			syscall.CloseOnExec(fd)
		}
	}
}

func timeout(d time.Duration) time.Duration {
	switch {
	case d == 0:
		return DefaultTimeout
	case d < 0:
		return 0
	}
	return d
}

// Dir returns the mount point.
func (s *Server) Dir() string { return s.dir }

// Unmount unmounts the file system and waits for the request loops to end.
// It fails with EBUSY while files on the mount are in use; see
// UnmountLazy.
func (s *Server) Unmount() error {
	if err := s.srv.Unmount(); err != nil {
		return fmt.Errorf("unmount %s: %w", s.dir, err)
	}
	return nil
}

// UnmountLazy detaches the mount from the file-system tree at once (umount
// -l); the server keeps answering requests on files still open until the
// last one is closed, after which Wait returns.
func (s *Server) UnmountLazy() error {
	if err := syscall.Unmount(s.dir, syscall.MNT_DETACH); err != nil {
		return fmt.Errorf("lazy unmount %s: %w", s.dir, err)
	}
	return nil
}

// Wait blocks until the file system is unmounted.
func (s *Server) Wait() { s.srv.Wait() }
