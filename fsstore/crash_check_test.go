package fsstore

import (
	"bytes"
	"fmt"
	"path"
	"slices"
	"strings"
)

// sent is one object of a subtree as the store shows it.
type sent struct {
	a      Attr
	data   []byte
	target string
}

// crashSnapshot reads the subtree below top through the store's API: every
// name (ReadDir, cross-checked with Lookup), every attribute, file content and
// symlink target, and each directory's parent pointer. The top is ".".
func crashSnapshot(s *Store, top Ino) (map[string]*sent, error) {
	out := make(map[string]*sent)
	ta, err := s.Getattr(top)
	if err != nil {
		return nil, fmt.Errorf("getattr top %d: %w", top, err)
	}
	out["."] = &sent{a: ta}
	var walk func(dir Ino, prefix string, depth int) error
	walk = func(dir Ino, prefix string, depth int) error {
		if depth > 64 {
			return fmt.Errorf("%s: directory loop", prefix)
		}
		var ents []DirEntry
		if err := s.ReadDir(nil, dir, 0, func(e DirEntry) bool { ents = append(ents, e); return true }); err != nil {
			return fmt.Errorf("readdir %q: %w", prefix, err)
		}
		for _, e := range ents {
			p := path.Join(prefix, e.Name)
			if _, dup := out[p]; dup {
				return fmt.Errorf("readdir %q lists %q twice", prefix, e.Name)
			}
			a, err := s.Getattr(e.Ino)
			if err != nil {
				return fmt.Errorf("getattr %q (inode %d): %w", p, e.Ino, err)
			}
			if a.Mode&ModeType != e.Type {
				return fmt.Errorf("%q: entry type %o, inode mode %o", p, e.Type, a.Mode)
			}
			if la, err := s.Lookup(nil, dir, e.Name); err != nil || la.Ino != e.Ino {
				return fmt.Errorf("lookup %q: inode %d, %v; readdir says %d", p, la.Ino, err, e.Ino)
			}
			se := &sent{a: a}
			out[p] = se
			switch a.Mode & ModeType {
			case ModeRegular:
				se.data = make([]byte, a.Size)
				n, eof, err := s.Read(nil, e.Ino, se.data, 0)
				if err != nil || n != int(a.Size) || !eof {
					return fmt.Errorf("read %q (size %d): n=%d eof=%v err=%v", p, a.Size, n, eof, err)
				}
			case ModeSymlink:
				if se.target, err = s.Readlink(e.Ino); err != nil {
					return fmt.Errorf("readlink %q: %w", p, err)
				}
			case ModeDir:
				if a.Parent != dir {
					return fmt.Errorf("directory %q: parent pointer %d, listed in %d", p, a.Parent, dir)
				}
				if err := walk(e.Ino, p, depth+1); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return out, walk(top, "", 0)
}

// expect returns the model's paths (relative to the top, which is ".").
func (m *model) expect() map[string]int {
	out := map[string]int{".": topNode}
	var walk func(id int, prefix string)
	walk = func(id int, prefix string) {
		for name, kid := range m.nodes[id].kids {
			p := path.Join(prefix, name)
			out[p] = kid
			if m.nodes[kid].kind == ModeDir {
				walk(kid, p)
			}
		}
	}
	walk(topNode, "")
	return out
}

// crashFuzz says which bytes of one file may legitimately hold either of two
// versions: 512-byte sectors (the unit faultdisk tears writes at) of blocks
// that an operation in flight at the cut rewrote in place.
type crashFuzz struct {
	node    int
	sectors map[int]bool // file sector index
	other   []byte       // the other version's bytes
}

// compare checks a snapshot against the model, allowing the sectors fz names
// to hold fz.other's bytes instead of the model's. It returns a description
// of every difference, and the observed inode number and generation of each
// node.
func (m *model) compare(snap map[string]*sent, fz *crashFuzz) (map[int]Attr, []string) {
	var diffs []string
	bad := func(f string, args ...any) { diffs = append(diffs, fmt.Sprintf(f, args...)) }
	exp := m.expect()
	paths := make([]string, 0, len(exp))
	for p := range exp {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for p := range snap {
		if _, ok := exp[p]; !ok {
			bad("unexpected %q (inode %d, mode %o)", p, snap[p].a.Ino, snap[p].a.Mode)
		}
	}
	inos := make(map[int]Attr)
	owner := make(map[Ino]int)
	for _, p := range paths {
		id := exp[p]
		n := m.nodes[id]
		se, ok := snap[p]
		if !ok {
			bad("missing %q (node #%d, mode %o)", p, id, n.kind|n.perm)
			continue
		}
		a := se.a
		if prev, ok := inos[id]; ok && prev.Ino != a.Ino {
			bad("%q: inode %d, but another name of node #%d has inode %d", p, a.Ino, id, prev.Ino)
		}
		inos[id] = a
		if n.ino != 0 && (n.ino != a.Ino || n.gen != a.Gen) {
			bad("%q: inode %d generation %d, want %d generation %d", p, a.Ino, a.Gen, n.ino, n.gen)
		}
		if o, ok := owner[a.Ino]; ok && o != id {
			bad("%q: inode %d also stands for node #%d", p, a.Ino, o)
		}
		owner[a.Ino] = id
		if a.Mode != n.kind|n.perm {
			bad("%q: mode %o, want %o", p, a.Mode, n.kind|n.perm)
		}
		if want := n.nlink(m); a.Nlink != want {
			bad("%q: nlink %d, want %d", p, a.Nlink, want)
		}
		switch n.kind {
		case ModeDir:
			if a.Size != uint64(len(n.kids)) {
				bad("directory %q: size %d, want %d entries", p, a.Size, len(n.kids))
			}
		case ModeSymlink:
			if se.target != n.target || a.Size != uint64(len(n.target)) {
				bad("symlink %q: target of %d bytes (size %d), want %d bytes", p, len(se.target), a.Size, len(n.target))
			}
		case ModeRegular:
			if a.Size != uint64(len(n.data)) {
				bad("file %q: size %d, want %d", p, a.Size, len(n.data))
				continue
			}
			if a.Blocks != n.blocks() {
				bad("file %q: %d blocks allocated, want %d", p, a.Blocks, n.blocks())
			}
			var f *crashFuzz
			if fz != nil && fz.node == id {
				f = fz
			}
			if msg := sameData(se.data, n.data, f); msg != "" {
				bad("file %q (inode %d, size %d): %s", p, a.Ino, a.Size, msg)
			}
		}
	}
	return inos, diffs
}

// sameData compares got with want sector by sector; the sectors in fz may
// instead equal fz.other (zero-padded). It returns "" when they match.
func sameData(got, want []byte, fz *crashFuzz) string {
	const ss = 512
	for lo := 0; lo < len(want); lo += ss {
		hi := min(lo+ss, len(want))
		if bytes.Equal(got[lo:hi], want[lo:hi]) {
			continue
		}
		if fz != nil && fz.sectors[lo/ss] {
			o := make([]byte, hi-lo)
			if lo < len(fz.other) {
				copy(o, fz.other[lo:min(hi, len(fz.other))])
			}
			if bytes.Equal(got[lo:hi], o) {
				continue
			}
		}
		first := func(v []byte) string {
			i := lo
			for i < hi && got[i] == v[i-lo] {
				i++
			}
			if i == hi {
				return "equal"
			}
			return fmt.Sprintf("byte %d is %#x, not %#x", i, got[i], v[i-lo])
		}
		if fz == nil || !fz.sectors[lo/ss] {
			what := "other bytes"
			if bytes.Count(got[lo:hi], []byte{0}) == hi-lo {
				what = "zeros"
			}
			return fmt.Sprintf("sector at byte %d holds %s: %s", lo, what, first(want[lo:hi]))
		}
		o := make([]byte, hi-lo)
		if lo < len(fz.other) {
			copy(o, fz.other[lo:min(hi, len(fz.other))])
		}
		return fmt.Sprintf("sector at byte %d (rewritten in place by the write in flight) holds neither version: against this one %s; against the other %s",
			lo, first(want[lo:hi]), first(o))
	}
	return ""
}

// inflightFuzz returns, for an in-flight write taking model a to model b,
// the sectors that may hold either version: fa for checking against a (the
// other version: b's bytes) and fb for checking against b.
//
// What the checker allows, and why:
//   - Metadata is all or nothing: each in-flight operation is either wholly
//     applied or not at all (names, link counts, modes, sizes, block counts,
//     symlink targets), because it is one journal transaction.
//   - File data that a write puts into blocks newly allocated to the file
//     (holes, or past the end) becomes visible only with the transaction that
//     maps them, and the store flushes it before that transaction: so if the
//     new size/extents are there, so is every byte of those blocks; if not,
//     the old content (zeros of a hole, or the old EOF) is there. No fuzz.
//   - Blocks the file already had are rewritten in place, outside the
//     journal, before the transaction (like ext4 data=ordered overwrites, or
//     an NFS UNSTABLE write). A cut may keep any subset of those writes and
//     tear each one at a 512-byte sector, independently of whether the
//     transaction survived. So each sector of such a block holds the old or
//     the new bytes, with either outcome of the metadata. The old version of
//     bytes past the old end of file is zeros: when the file grows, its new
//     range reads as zeros or as the data written there, never as anything
//     else (such as bytes an earlier truncate removed, or a write that never
//     committed).
//   - A truncate (up or down) allows nothing: the old or the new size, with
//     the old content up to it, and zeros past the old end.
//   - Acknowledged operations allow nothing: their data was flushed.
//
// Stale bytes past the end of file are invisible here; the extension check
// after reopening (check 4 in crash_test.go) catches them.
func inflightFuzz(a, b *model, o *crashOp) (fa, fb *crashFuzz) {
	if o == nil || o.kind != opWrite {
		return nil, nil
	}
	n0 := a.nodes[o.node]
	if n0 == nil || n0.kind != ModeRegular {
		return nil, nil
	}
	sectors := map[int]bool{}
	end := int(o.off) + len(o.data)
	for fb := int(o.off) / bs; fb < (end+bs-1)/bs; fb++ {
		if fb < len(n0.alloc) && n0.alloc[fb] {
			for sec := fb * bs / 512; sec < (fb+1)*bs/512; sec++ {
				sectors[sec] = true
			}
		}
	}
	if len(sectors) == 0 {
		return nil, nil
	}
	return &crashFuzz{node: o.node, sectors: sectors, other: b.nodes[o.node].data},
		&crashFuzz{node: o.node, sectors: sectors, other: n0.data}
}

func joinDiffs(d []string) string {
	if len(d) > 12 {
		d = append(d[:12:12], fmt.Sprintf("... and %d more", len(d)-12))
	}
	return "\n\t\t" + strings.Join(d, "\n\t\t")
}
