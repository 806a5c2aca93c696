package fsstore

import (
	"fmt"

	"github.com/hanfs/hanfs/fsstore/btree"
)

// Pin marks ino open locally: if its last name is removed while pinned, the
// inode lives on as an orphan until the last Unpin.
func (s *Store) Pin(ino Ino) {
	s.pmu.Lock()
	s.pins[ino]++
	s.pmu.Unlock()
}

// Unpin drops one Pin; the last one frees an orphaned inode.
func (s *Store) Unpin(ino Ino) {
	s.pmu.Lock()
	s.pins[ino]--
	last := s.pins[ino] <= 0
	if last {
		delete(s.pins, ino)
	}
	s.pmu.Unlock()
	if !last {
		return
	}
	mu := s.ilock(ino)
	mu.Lock()
	defer mu.Unlock()
	if err := s.update(func(t *stx) error { return t.reap(ino) }); err != nil {
		s.logr.Error("free orphaned inode", "ino", ino, "err", err)
	}
}

func (s *Store) pinned(ino Ino) bool {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	return s.pins[ino] > 0
}

// reap destroys ino if it is an orphan that nobody has pinned again.
func (t *stx) reap(ino Ino) error {
	if t.s.pinned(ino) {
		return nil
	}
	_, ok, err := t.get(orphanKey(ino))
	if err != nil || !ok {
		return err
	}
	if _, err := t.del(orphanKey(ino)); err != nil {
		return err
	}
	in, err := t.inode(ino)
	if err != nil {
		return err
	}
	return t.destroy(ino, in)
}

// reapOrphans frees inodes that were open and unlinked when the store last
// stopped. Its work is bounded by the number of such inodes.
func (s *Store) reapOrphans() error {
	var orphans []Ino
	err := s.view(func(t *stx) error {
		orphans = orphans[:0] // the view may run more than once
		return btree.Scan(t.tx, t.info.root, orphanKey(0), func(k btree.Key, _ []byte) (bool, error) {
			if k.Obj != 0 || k.Type != itemOrphan {
				return false, nil
			}
			orphans = append(orphans, Ino(k.Off))
			return true, nil
		})
	})
	if err != nil {
		return fmt.Errorf("scan orphans: %w", err)
	}
	for _, ino := range orphans {
		if err := s.update(func(t *stx) error { return t.reap(ino) }); err != nil {
			return fmt.Errorf("free orphan %d: %w", ino, err)
		}
	}
	if len(orphans) > 0 {
		s.logr.Info("freed orphaned inodes", "count", len(orphans))
	}
	return nil
}
