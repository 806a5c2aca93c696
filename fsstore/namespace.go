package fsstore

import (
	"fmt"
	"slices"

	"github.com/hanfs/hanfs/fsstore/btree"
)

// MaxLinks is the most hard links an inode may have.
const MaxLinks = 65000

func checkName(name string) error {
	if name == "" || name == "." || name == ".." {
		return fmt.Errorf("name %q: %w", name, ErrInvalid)
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("name of %d bytes: %w", len(name), ErrNameLong)
	}
	for i := 0; i < len(name); i++ {
		if name[i] == '/' || name[i] == 0 {
			return fmt.Errorf("name %q: %w", name, ErrInvalid)
		}
	}
	return nil
}

// lookup finds name in dir; ok is false when it is absent.
func (t *stx) lookup(dir Ino, name string) (Ino, bool, error) {
	v, ok, err := t.get(direntKey(dir, hash56(name)))
	if err != nil || !ok {
		return 0, false, err
	}
	es, err := decodeBucket(v)
	if err != nil {
		return 0, false, fmt.Errorf("directory %d: %w", dir, err)
	}
	for _, e := range es {
		if e.name == name {
			return Ino(e.ino), true, nil
		}
	}
	return 0, false, nil
}

// addEntry inserts name -> ino into dir and the backref ino -> (dir, name).
func (t *stx) addEntry(dir Ino, name string, ino Ino, mode uint32) error {
	k := direntKey(dir, hash56(name))
	v, ok, err := t.get(k)
	if err != nil {
		return err
	}
	var es []dent
	if ok {
		if es, err = decodeBucket(v); err != nil {
			return fmt.Errorf("directory %d: %w", dir, err)
		}
	}
	if len(es) >= 255 {
		return fmt.Errorf("directory %d: too many names with one hash: %w", dir, ErrNoSpace)
	}
	es = append(es, dent{ino: uint64(ino), typ: uint8(mode >> 12), name: name})
	nv := encodeBucket(es)
	if len(nv) > btree.MaxValueSize {
		return fmt.Errorf("directory %d: hash bucket full: %w", dir, ErrNoSpace)
	}
	if err := t.put(k, nv); err != nil {
		return err
	}
	return t.addBackref(ino, dir, name)
}

func (t *stx) addBackref(ino, parent Ino, name string) error {
	k := backrefKey(ino, backrefHash(parent, name))
	v, ok, err := t.get(k)
	if err != nil {
		return err
	}
	var es []dent
	if ok {
		if es, err = decodeBucket(v); err != nil {
			return fmt.Errorf("inode %d backrefs: %w", ino, err)
		}
	}
	es = append(es, dent{ino: uint64(parent), name: name})
	nv := encodeBucket(es)
	if len(nv) > btree.MaxValueSize {
		return fmt.Errorf("inode %d: backref bucket full: %w", ino, ErrNoSpace)
	}
	return t.put(k, nv)
}

// removeFromBucket deletes the entry matching match from the bucket at k.
func (t *stx) removeFromBucket(k btree.Key, match func(dent) bool) error {
	v, ok, err := t.get(k)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("bucket %v missing: %w", k, corrupt())
	}
	es, err := decodeBucket(v)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(es, match)
	if i < 0 {
		return fmt.Errorf("bucket %v lacks the entry: %w", k, corrupt())
	}
	es = slices.Delete(es, i, i+1)
	if len(es) == 0 {
		_, err = t.del(k)
		return err
	}
	return t.put(k, encodeBucket(es))
}

// removeEntry deletes name (naming ino) from dir and the matching backref.
func (t *stx) removeEntry(dir Ino, name string, ino Ino) error {
	if err := t.removeFromBucket(direntKey(dir, hash56(name)), func(e dent) bool { return e.name == name }); err != nil {
		return fmt.Errorf("directory %d entry %q: %w", dir, name, err)
	}
	if err := t.removeFromBucket(backrefKey(ino, backrefHash(dir, name)), func(e dent) bool {
		return e.ino == uint64(dir) && e.name == name
	}); err != nil {
		return fmt.Errorf("inode %d backref %d/%q: %w", ino, dir, name, err)
	}
	return nil
}

// record stores op's duplicate-request record, if any.
func (t *stx) record(op *Op, res Attr) error {
	if op == nil || op.Record == nil {
		return nil
	}
	return t.putRecord(op.Record.Key, op.Record.Encode(res))
}

// Lookup finds name in directory dir.
func (s *Store) Lookup(c *Cred, dir Ino, name string) (Attr, error) {
	var a Attr
	err := s.view(func(t *stx) error {
		d, err := t.dir(dir)
		if err != nil {
			return err
		}
		if err := checkAccess(c, dir, d, AccessExec); err != nil {
			return err
		}
		if name == "." {
			a = d.attr(dir)
			return nil
		}
		if name == ".." {
			p, err := t.inode(Ino(d.parent))
			if err != nil {
				return err
			}
			a = p.attr(Ino(d.parent))
			return nil
		}
		if len(name) > MaxNameLen {
			return fmt.Errorf("lookup %q: %w", name, ErrNameLong)
		}
		ino, ok, err := t.lookup(dir, name)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("lookup %q in %d: %w", name, dir, ErrNotExist)
		}
		in, err := t.inode(ino)
		if err != nil {
			return fmt.Errorf("lookup %q in %d: entry names missing inode %d: %w", name, dir, ino, corrupt())
		}
		a = in.attr(ino)
		return nil
	})
	return a, err
}

// Getattr returns the attributes of ino (ErrStale when it does not exist).
func (s *Store) Getattr(ino Ino) (Attr, error) {
	var a Attr
	err := s.view(func(t *stx) error {
		in, err := t.inode(ino)
		if err != nil {
			return err
		}
		a = in.attr(ino)
		return nil
	})
	return a, err
}

// Check returns the attributes of ino if it is live and has generation gen;
// otherwise it returns ErrStale.
func (s *Store) Check(ino Ino, gen uint64) (Attr, error) {
	a, err := s.Getattr(ino)
	if err != nil {
		return Attr{}, err
	}
	if a.Gen != gen || a.Nlink == 0 {
		return Attr{}, fmt.Errorf("inode %d generation %d: %w", ino, gen, ErrStale)
	}
	return a, nil
}

// prepareCreate checks that name may be created in dir by c.
func (t *stx) prepareCreate(c *Cred, dir Ino, name string) (*inode, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	d, err := t.dir(dir)
	if err != nil {
		return nil, err
	}
	if d.nlink == 0 {
		return nil, fmt.Errorf("directory %d was removed: %w", dir, ErrNotExist)
	}
	if err := checkAccess(c, dir, d, AccessWrite|AccessExec); err != nil {
		return nil, err
	}
	return d, nil
}

// newInode allocates an inode number and generation and links it at dir/name.
func (t *stx) newInode(c *Cred, dir Ino, d *inode, name string, mode uint32) (Ino, *inode, error) {
	ino := Ino(t.info.nextIno)
	t.info.nextIno++
	in := &inode{mode: mode, nlink: 1, gen: t.info.nextGen, atime: t.now, mtime: t.now, ctime: t.now, parent: uint64(dir)}
	t.info.nextGen++
	t.info.inodes++
	if c != nil {
		in.uid, in.gid = c.UID, c.GID
	}
	if d.mode&0o2000 != 0 { // setgid directory: inherit its group
		in.gid = d.gid
		if mode&ModeType == ModeDir {
			in.mode |= 0o2000
		}
	}
	if err := t.addEntry(dir, name, ino, mode); err != nil {
		return 0, nil, err
	}
	d.mtime, d.ctime = t.now, t.now
	d.size++
	if mode&ModeType == ModeDir {
		in.nlink = 2
		d.nlink++
	}
	if err := t.putInode(dir, d); err != nil {
		return 0, nil, err
	}
	return ino, in, t.putInode(ino, in)
}

// Create makes a regular file name in dir with permission bits mode.
func (s *Store) Create(op *Op, dir Ino, name string, mode uint32, cm CreateMode, verf uint64) (Attr, error) {
	var a Attr
	err := s.update(func(t *stx) error {
		d, err := t.prepareCreate(op.cred(), dir, name)
		if err != nil {
			return err
		}
		old, exists, err := t.lookup(dir, name)
		if err != nil {
			return err
		}
		if exists {
			in, err := t.inode(old)
			if err != nil {
				return err
			}
			switch {
			case cm == CreateExclusive && in.verf == verf && verf != 0:
			case cm == CreateUnchecked && in.mode&ModeType == ModeRegular:
			default:
				return fmt.Errorf("create %q in %d: %w", name, dir, ErrExist)
			}
			a = in.attr(old)
			return t.record(op, a)
		}
		ino, in, err := t.newInode(op.cred(), dir, d, name, ModeRegular|(mode&ModePerm))
		if err != nil {
			return err
		}
		if cm == CreateExclusive {
			in.verf = verf
			if err := t.putInode(ino, in); err != nil {
				return err
			}
		}
		a = in.attr(ino)
		return t.record(op, a)
	})
	return a, err
}

// Mkdir makes directory name in dir.
func (s *Store) Mkdir(op *Op, dir Ino, name string, mode uint32) (Attr, error) {
	return s.makeNode(op, dir, name, ModeDir|(mode&ModePerm), 0, "")
}

// Symlink makes a symbolic link name in dir pointing at target.
func (s *Store) Symlink(op *Op, dir Ino, name, target string) (Attr, error) {
	if target == "" || len(target) > MaxSymlinkLen {
		return Attr{}, fmt.Errorf("symlink target of %d bytes: %w", len(target), ErrNameLong)
	}
	return s.makeNode(op, dir, name, ModeSymlink|0o777, 0, target)
}

// Mknod makes a device, fifo or socket node; mode includes the type bits.
func (s *Store) Mknod(op *Op, dir Ino, name string, mode uint32, rdev uint64) (Attr, error) {
	switch mode & ModeType {
	case ModeChar, ModeBlock, ModeFIFO, ModeSocket:
	case ModeRegular, 0:
		return s.Create(op, dir, name, mode&ModePerm, CreateGuarded, 0)
	default:
		return Attr{}, fmt.Errorf("mknod type %o: %w", mode&ModeType, ErrInvalid)
	}
	return s.makeNode(op, dir, name, mode&(ModeType|ModePerm), rdev, "")
}

func (s *Store) makeNode(op *Op, dir Ino, name string, mode uint32, rdev uint64, target string) (Attr, error) {
	var a Attr
	err := s.update(func(t *stx) error {
		d, err := t.prepareCreate(op.cred(), dir, name)
		if err != nil {
			return err
		}
		if _, exists, err := t.lookup(dir, name); err != nil {
			return err
		} else if exists {
			return fmt.Errorf("%q in %d: %w", name, dir, ErrExist)
		}
		ino, in, err := t.newInode(op.cred(), dir, d, name, mode)
		if err != nil {
			return err
		}
		if target != "" {
			in.size = uint64(len(target))
			if err := t.putInode(ino, in); err != nil {
				return err
			}
			if err := t.put(symlinkKey(ino), []byte(target)); err != nil {
				return err
			}
		}
		if rdev != 0 {
			in.rdev = rdev
			if err := t.putInode(ino, in); err != nil {
				return err
			}
		}
		a = in.attr(ino)
		return t.record(op, a)
	})
	return a, err
}

// Readlink returns a symlink's target.
func (s *Store) Readlink(ino Ino) (string, error) {
	var target string
	err := s.view(func(t *stx) error {
		in, err := t.inode(ino)
		if err != nil {
			return err
		}
		if in.mode&ModeType != ModeSymlink {
			return fmt.Errorf("readlink inode %d: %w", ino, ErrInvalid)
		}
		v, ok, err := t.get(symlinkKey(ino))
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("symlink %d has no target: %w", ino, corrupt())
		}
		target = string(v)
		return nil
	})
	return target, err
}

// Link adds the name dir/name for the existing inode ino.
func (s *Store) Link(op *Op, ino Ino, dir Ino, name string) (Attr, error) {
	var a Attr
	err := s.update(func(t *stx) error {
		d, err := t.prepareCreate(op.cred(), dir, name)
		if err != nil {
			return err
		}
		in, err := t.inode(ino)
		if err != nil {
			return err
		}
		if in.mode&ModeType == ModeDir {
			return fmt.Errorf("link to directory %d: %w", ino, ErrPerm)
		}
		if in.nlink == 0 {
			return fmt.Errorf("link to removed inode %d: %w", ino, ErrNotExist)
		}
		if in.nlink >= MaxLinks {
			return fmt.Errorf("link inode %d: %w", ino, ErrMLink)
		}
		if _, exists, err := t.lookup(dir, name); err != nil {
			return err
		} else if exists {
			return fmt.Errorf("link %q in %d: %w", name, dir, ErrExist)
		}
		if err := t.addEntry(dir, name, ino, in.mode); err != nil {
			return err
		}
		in.nlink++
		in.ctime = t.now
		d.mtime, d.ctime = t.now, t.now
		d.size++
		if err := t.putInode(dir, d); err != nil {
			return err
		}
		if err := t.putInode(ino, in); err != nil {
			return err
		}
		a = in.attr(ino)
		return t.record(op, a)
	})
	return a, err
}

// childOf returns the inode that name in dir names, for locking before the
// update that removes or replaces it.
func (s *Store) childOf(dir Ino, name string) (Ino, bool) {
	var ino Ino
	var ok bool
	_ = s.view(func(t *stx) error {
		var err error
		ino, ok, err = t.lookup(dir, name)
		return err
	})
	return ino, ok
}

// Unlink removes the non-directory name from dir.
func (s *Store) Unlink(op *Op, dir Ino, name string) error {
	return s.remove(op, dir, name, false)
}

// Rmdir removes the empty directory name from dir.
func (s *Store) Rmdir(op *Op, dir Ino, name string) error {
	return s.remove(op, dir, name, true)
}

func (s *Store) remove(op *Op, dir Ino, name string, isDir bool) error {
	for attempt := 0; ; attempt++ {
		child, ok := s.childOf(dir, name)
		var l interface{ Unlock() }
		if ok {
			mu := s.ilock(child)
			mu.Lock()
			l = mu
		}
		retry := false
		err := s.update(func(t *stx) error {
			retry = false
			if err := checkName(name); err != nil {
				return err
			}
			d, err := t.dir(dir)
			if err != nil {
				return err
			}
			if err := checkAccess(op.cred(), dir, d, AccessWrite|AccessExec); err != nil {
				return err
			}
			ino, exists, err := t.lookup(dir, name)
			if err != nil {
				return err
			}
			if !exists {
				return fmt.Errorf("remove %q from %d: %w", name, dir, ErrNotExist)
			}
			if ino != child || !ok {
				retry = true
				return errRetry
			}
			in, err := t.inode(ino)
			if err != nil {
				return err
			}
			if !stickyOK(op.cred(), d, in) {
				return fmt.Errorf("remove %q from sticky directory %d: %w", name, dir, ErrPerm)
			}
			if isDir && in.mode&ModeType != ModeDir {
				return fmt.Errorf("rmdir %q: %w", name, ErrNotDir)
			}
			if !isDir && in.mode&ModeType == ModeDir {
				return fmt.Errorf("unlink %q: %w", name, ErrIsDir)
			}
			if err := t.unlinkChild(dir, d, name, ino, in); err != nil {
				return err
			}
			return t.record(op, in.attr(ino))
		})
		if l != nil {
			l.Unlock()
		}
		if retry && attempt < 10 {
			continue
		}
		return err
	}
}

var errRetry = fmt.Errorf("retry: the directory changed: %w", ErrNotExist)

// unlinkChild removes dir/name naming ino (whose inode is in) and drops the
// link; the caller holds ino's data lock. Directories must be empty.
func (t *stx) unlinkChild(dir Ino, d *inode, name string, ino Ino, in *inode) error {
	if in.mode&ModeType == ModeDir {
		empty, err := t.dirEmpty(ino)
		if err != nil {
			return err
		}
		if !empty {
			return fmt.Errorf("remove directory %q: %w", name, ErrNotEmpty)
		}
	}
	if err := t.removeEntry(dir, name, ino); err != nil {
		return err
	}
	d.mtime, d.ctime = t.now, t.now
	if d.size > 0 {
		d.size--
	}
	if in.mode&ModeType == ModeDir {
		d.nlink--
		in.nlink = 0
	} else {
		in.nlink--
	}
	in.ctime = t.now
	if err := t.putInode(dir, d); err != nil {
		return err
	}
	if in.nlink > 0 {
		return t.putInode(ino, in)
	}
	if t.s.pinned(ino) {
		if err := t.putInode(ino, in); err != nil {
			return err
		}
		return t.put(orphanKey(ino), nil)
	}
	return t.destroy(ino, in)
}

func (t *stx) dirEmpty(dir Ino) (bool, error) {
	empty := true
	err := btree.Scan(t.tx, t.info.root, direntKey(dir, 0), func(k btree.Key, _ []byte) (bool, error) {
		empty = !(k.Obj == uint64(dir) && k.Type == itemDirent)
		return false, nil
	})
	return empty, err
}

// destroy deletes an unlinked inode and everything it owns.
func (t *stx) destroy(ino Ino, in *inode) error {
	if in.mode&ModeType == ModeRegular {
		if _, err := t.freeExtents(ino, 0); err != nil {
			return err
		}
	}
	var keys []btree.Key
	err := btree.Scan(t.tx, t.info.root, btree.Key{Obj: uint64(ino)}, func(k btree.Key, _ []byte) (bool, error) {
		if k.Obj != uint64(ino) {
			return false, nil
		}
		keys = append(keys, k)
		return true, nil
	})
	if err != nil {
		return err
	}
	for _, k := range keys {
		if _, err := t.del(k); err != nil {
			return err
		}
	}
	t.info.inodes--
	return nil
}

// isAncestor reports whether a is dir or one of dir's ancestors.
func (t *stx) isAncestor(a, dir Ino) (bool, error) {
	for i := 0; i < 1<<16; i++ {
		if dir == a {
			return true, nil
		}
		if dir == RootIno {
			return false, nil
		}
		in, err := t.inode(dir)
		if err != nil {
			return false, err
		}
		dir = Ino(in.parent)
	}
	return false, fmt.Errorf("directory parent chain too long: %w", ErrLoop)
}

// Rename moves odir/oname to ndir/nname, replacing an existing target
// (POSIX rename semantics). It is one transaction: after a crash exactly one
// of the names exists.
func (s *Store) Rename(op *Op, odir Ino, oname string, ndir Ino, nname string) error {
	for attempt := 0; ; attempt++ {
		target, tok := s.childOf(ndir, nname)
		src, _ := s.childOf(odir, oname)
		var unlock func()
		if tok && target != src {
			mu := s.ilock(target)
			mu.Lock()
			unlock = mu.Unlock
		}
		retry := false
		err := s.update(func(t *stx) error {
			err := t.rename(op, odir, oname, ndir, nname, target, tok)
			retry = err == errRetry
			return err
		})
		if unlock != nil {
			unlock()
		}
		if retry && attempt < 10 {
			continue
		}
		return err
	}
}

func (t *stx) rename(op *Op, odir Ino, oname string, ndir Ino, nname string, lockedTarget Ino, tok bool) error {
	c := op.cred()
	if err := checkName(oname); err != nil {
		return err
	}
	if err := checkName(nname); err != nil {
		return err
	}
	od, err := t.dir(odir)
	if err != nil {
		return err
	}
	nd := od
	if ndir != odir {
		if nd, err = t.dir(ndir); err != nil {
			return err
		}
	}
	if err := checkAccess(c, odir, od, AccessWrite|AccessExec); err != nil {
		return err
	}
	if err := checkAccess(c, ndir, nd, AccessWrite|AccessExec); err != nil {
		return err
	}
	src, ok, err := t.lookup(odir, oname)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("rename %q: %w", oname, ErrNotExist)
	}
	sin, err := t.inode(src)
	if err != nil {
		return err
	}
	if !stickyOK(c, od, sin) {
		return fmt.Errorf("rename %q out of sticky directory: %w", oname, ErrPerm)
	}
	dst, dok, err := t.lookup(ndir, nname)
	if err != nil {
		return err
	}
	if dok != tok || (dok && dst != lockedTarget) {
		return errRetry
	}
	if dok && dst == src {
		return t.record(op, sin.attr(src)) // both names are links to one inode: nothing to do
	}
	sIsDir := sin.mode&ModeType == ModeDir
	if sIsDir && ndir != odir {
		inside, err := t.isAncestor(src, ndir)
		if err != nil {
			return err
		}
		if inside {
			return fmt.Errorf("rename directory %q into itself: %w", oname, ErrInvalid)
		}
		if err := checkAccess(c, src, sin, AccessWrite); err != nil { // its ".." changes
			return err
		}
	}
	if dok {
		din, err := t.inode(dst)
		if err != nil {
			return err
		}
		dIsDir := din.mode&ModeType == ModeDir
		if sIsDir && !dIsDir {
			return fmt.Errorf("rename directory over %q: %w", nname, ErrNotDir)
		}
		if !sIsDir && dIsDir {
			return fmt.Errorf("rename over directory %q: %w", nname, ErrIsDir)
		}
		if !stickyOK(c, nd, din) {
			return fmt.Errorf("rename over %q in sticky directory: %w", nname, ErrPerm)
		}
		if err := t.unlinkChild(ndir, nd, nname, dst, din); err != nil {
			return err
		}
		if ndir == odir {
			od = nd
		}
	}
	if err := t.removeEntry(odir, oname, src); err != nil {
		return err
	}
	if od.size > 0 {
		od.size--
	}
	od.mtime, od.ctime = t.now, t.now
	if err := t.putInode(odir, od); err != nil {
		return err
	}
	if ndir != odir {
		if nd, err = t.dir(ndir); err != nil { // reload: unlinkChild may have changed it
			return err
		}
	} else {
		nd = od
	}
	if err := t.addEntry(ndir, nname, src, sin.mode); err != nil {
		return err
	}
	nd.size++
	nd.mtime, nd.ctime = t.now, t.now
	if sIsDir && ndir != odir {
		nd.nlink++
		if err := t.putInode(ndir, nd); err != nil {
			return err
		}
		od, err = t.dir(odir)
		if err != nil {
			return err
		}
		od.nlink--
		if err := t.putInode(odir, od); err != nil {
			return err
		}
		sin.parent = uint64(ndir)
	} else if err := t.putInode(ndir, nd); err != nil {
		return err
	}
	sin.ctime = t.now
	if err := t.putInode(src, sin); err != nil {
		return err
	}
	return t.record(op, sin.attr(src))
}

// Path returns the names leading from the root to ino, using parent
// pointers (any one of a hard-linked file's names).
func (s *Store) Path(ino Ino) ([]string, error) {
	var names []string
	err := s.view(func(t *stx) error {
		names = names[:0]
		cur := ino
		for depth := 0; cur != RootIno; depth++ {
			if depth > 4096 {
				return fmt.Errorf("path of inode %d: %w", ino, ErrLoop)
			}
			var parent Ino
			var name string
			found := false
			err := btree.Scan(t.tx, t.info.root, backrefKey(cur, 0), func(k btree.Key, v []byte) (bool, error) {
				if k.Obj != uint64(cur) || k.Type != itemBackref {
					return false, nil
				}
				es, err := decodeBucket(v)
				if err != nil {
					return false, err
				}
				if len(es) > 0 {
					parent, name, found = Ino(es[0].ino), es[0].name, true
				}
				return false, nil
			})
			if err != nil {
				return err
			}
			if !found {
				if _, err := t.inode(cur); err != nil {
					return err
				}
				return fmt.Errorf("path of inode %d: inode %d has no name: %w", ino, cur, ErrStale)
			}
			names = append(names, name)
			cur = parent
		}
		slices.Reverse(names)
		return nil
	})
	return names, err
}

// ReadDir calls fn for the entries of dir after cookie (0: from the start), in
// an order that is stable while the directory is unchanged, until fn returns
// false. "." and ".." are not included. fn sees each entry once: if the view
// runs again after a cache miss, it resumes after the last entry fn saw.
func (s *Store) ReadDir(c *Cred, dir Ino, cookie uint64, fn func(DirEntry) bool) error {
	resume := cookie // the cookie of the last entry fn saw
	return s.view(func(t *stx) error {
		from := resume
		d, err := t.dir(dir)
		if err != nil {
			return err
		}
		if err := checkAccess(c, dir, d, AccessRead); err != nil {
			return err
		}
		startHash, skip := from>>8, from&0xff
		return btree.Scan(t.tx, t.info.root, direntKey(dir, startHash), func(k btree.Key, v []byte) (bool, error) {
			if k.Obj != uint64(dir) || k.Type != itemDirent {
				return false, nil
			}
			es, err := decodeBucket(v)
			if err != nil {
				return false, fmt.Errorf("directory %d: %w", dir, err)
			}
			for i, e := range es {
				if k.Off == startHash && from != 0 && uint64(i) < skip {
					continue
				}
				next := k.Off<<8 | uint64(i+1)
				more := fn(DirEntry{Name: e.name, Ino: Ino(e.ino), Type: uint32(e.typ) << 12, Cookie: next})
				resume = next
				if !more {
					return false, nil
				}
			}
			return true, nil
		})
	})
}
