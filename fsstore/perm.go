package fsstore

import "fmt"

// Access mask bits for Access and the permission checks.
const (
	AccessRead  = 4
	AccessWrite = 2
	AccessExec  = 1
)

func (c *Cred) inGroup(gid uint32) bool {
	if c.GID == gid {
		return true
	}
	for _, g := range c.Groups {
		if g == gid {
			return true
		}
	}
	return false
}

// allowed reports whether c may access in with mask (AccessRead|...).
func allowed(c *Cred, in *inode, mask uint32) bool {
	if c == nil {
		return true
	}
	if c.UID == 0 {
		// root may do anything, except execute a file with no execute bit.
		if mask&AccessExec != 0 && in.mode&ModeType != ModeDir && in.mode&0o111 == 0 {
			return false
		}
		return true
	}
	var bits uint32
	switch {
	case c.UID == in.uid:
		bits = (in.mode >> 6) & 7
	case c.inGroup(in.gid):
		bits = (in.mode >> 3) & 7
	default:
		bits = in.mode & 7
	}
	return bits&mask == mask
}

func checkAccess(c *Cred, ino Ino, in *inode, mask uint32) error {
	if !allowed(c, in, mask) {
		return fmt.Errorf("inode %d: access %o denied: %w", ino, mask, ErrAccess)
	}
	return nil
}

// isOwner reports whether c owns in (or is root).
func isOwner(c *Cred, in *inode) bool { return c == nil || c.UID == 0 || c.UID == in.uid }

// stickyOK says whether c may remove or rename the entry child of dir.
func stickyOK(c *Cred, dir, child *inode) bool {
	if dir.mode&0o1000 == 0 || c == nil || c.UID == 0 {
		return true
	}
	return c.UID == dir.uid || c.UID == child.uid
}

// Access checks whether c may access ino with mask.
func (s *Store) Access(c *Cred, ino Ino, mask uint32) error {
	return s.view(func(t *stx) error {
		in, err := t.inode(ino)
		if err != nil {
			return err
		}
		return checkAccess(c, ino, in, mask)
	})
}
