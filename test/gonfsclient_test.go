package test

// A real Go NFS client (github.com/willscott/go-nfs-client) against a real
// hanfsd process: MOUNT, the file API and UMNT.

import (
	"bytes"
	"errors"
	"io"
	"os"
	"sort"
	"testing"

	nfsc "github.com/willscott/go-nfs-client/nfs"
	"github.com/willscott/go-nfs-client/nfs/rpc"
)

// dialGoNFS mounts path with go-nfs-client as uid/gid; the client is closed at cleanup.
func dialGoNFS(t *testing.T, addr, path string, uid, gid uint32) (*nfsc.Mount, *nfsc.Target) {
	t.Helper()
	c, err := rpc.DialTCP("tcp", addr, false)
	if err != nil {
		t.Fatalf("go-nfs-client dial %s: %v", addr, err)
	}
	t.Cleanup(c.Close)
	m := &nfsc.Mount{Client: c}
	tgt, err := m.Mount(path, rpc.NewAuthUnix("hanfs-test", uid, gid).Auth())
	if err != nil {
		t.Fatalf("go-nfs-client mount %s: %v", path, err)
	}
	return m, tgt
}

func TestGoNFSClient(t *testing.T) {
	t.Parallel()
	srv := StartServer(t, newImage(t))
	m, tgt := dialGoNFS(t, srv.Addr, "/", 0, 0)

	fi, err := tgt.FSInfo()
	if err != nil || fi.RTMax == 0 || fi.WTMax == 0 {
		t.Fatalf("FSINFO: %+v %v", fi, err)
	}
	if _, err := tgt.Mkdir("dir", 0o755); err != nil {
		t.Fatalf("Mkdir: %v", err)
	}
	if _, err := tgt.Mkdir("dir", 0o755); !errors.Is(err, os.ErrExist) {
		t.Errorf("Mkdir of an existing directory: %v, want os.ErrExist", err)
	}
	f, err := tgt.OpenFile("dir/file", 0o644)
	if err != nil {
		t.Fatalf("OpenFile: %v", err)
	}
	// 512 KiB per WRITE: go-nfs-client sends min(wtpref, len) bytes at once.
	data := bytes.Repeat([]byte("go-nfs-client writes this. "), 20000)
	for off := 0; off < len(data); off += 512 << 10 {
		end := min(off+512<<10, len(data))
		if n, err := f.Write(data[off:end]); err != nil || n != end-off {
			t.Fatalf("Write at %d: %d %v", off, n, err)
		}
	}
	if err := f.Close(); err != nil { // COMMIT
		t.Fatalf("Close (COMMIT): %v", err)
	}
	r, err := tgt.Open("dir/file")
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	var got []byte
	buf := make([]byte, 256<<10)
	for {
		n, err := r.Read(buf)
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		if n == 0 {
			t.Fatal("Read: no progress")
		}
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, want %d equal", len(got), len(data))
	}
	attr, err := tgt.Getattr("dir/file")
	if err != nil || attr.Size() != int64(len(data)) {
		t.Fatalf("Getattr: %+v %v", attr, err)
	}
	if err := tgt.Setattr("dir/file", nfsc.Sattr3{Mode: nfsc.SetMode{SetIt: true, Mode: 0o600}}); err != nil {
		t.Errorf("Setattr (guarded by ctime): %v", err)
	}
	if a, _ := tgt.Getattr("dir/file"); a.Mode().Perm() != 0o600 {
		t.Errorf("mode after Setattr: %v", a.Mode())
	}
	if mode, err := tgt.Access("dir/file", 0x3f); err != nil || mode&0x1 == 0 {
		t.Errorf("Access: %#x %v", mode, err)
	}
	if err := tgt.Symlink("file", "dir/link"); err != nil {
		t.Fatalf("Symlink: %v", err)
	}
	lf, err := tgt.Open("dir/link")
	if err == nil {
		if s, err := lf.Readlink(); err != nil || s != "file" {
			t.Errorf("Readlink: %q %v", s, err)
		}
	}
	if _, err := tgt.Create("dir/other", 0o644); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := tgt.Rename("dir/other", "dir/renamed"); err != nil {
		t.Fatalf("Rename: %v", err)
	}
	ents, err := tgt.ReadDirPlus("dir")
	if err != nil {
		t.Fatalf("ReadDirPlus: %v", err)
	}
	var names []string
	for _, e := range ents {
		if e.Name() != "." && e.Name() != ".." {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	if want := []string{"file", "link", "renamed"}; !equalStrings(names, want) {
		t.Errorf("ReadDirPlus: %v, want %v", names, want)
	}
	if _, _, err := tgt.Lookup("dir/missing"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Lookup of a missing name: %v, want os.ErrNotExist", err)
	}
	if err := tgt.RmDir("dir"); err == nil || !nfsc.IsNotEmptyError(err) {
		t.Errorf("RmDir of a non-empty directory: %v, want NOTEMPTY", err)
	}
	if err := tgt.Remove("dir/renamed"); err != nil {
		t.Errorf("Remove: %v", err)
	}
	if err := tgt.RemoveAll("dir"); err != nil {
		t.Errorf("RemoveAll: %v", err)
	}
	if _, _, err := tgt.Lookup("dir"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dir after RemoveAll: %v", err)
	}

	// A non-root user cannot write into the root-owned 0755 root.
	_, utgt := dialGoNFS(t, srv.Addr, "/", 1000, 1000)
	if _, err := utgt.Create("users-file", 0o644); !errors.Is(err, os.ErrPermission) && err == nil {
		t.Errorf("Create as uid 1000 in a 0755 root directory: %v, want a permission error", err)
	}
	if err := m.Unmount(); err != nil {
		t.Errorf("Unmount: %v", err)
	}

	// A client network outside the export cannot mount.
	img := srv.Img
	srv.Stop()
	denied := StartServer(t, img, WithExport("/ 10.9.9.0/24 rw"))
	c, err := rpc.DialTCP("tcp", denied.Addr, false)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := (&nfsc.Mount{Client: c}).Mount("/", rpc.NewAuthUnix("hanfs-test", 0, 0).Auth()); err == nil || err.Error() != "MNT3ERR_ACCES" {
		t.Errorf("mount from outside the export's networks: %v, want MNT3ERR_ACCES", err)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
