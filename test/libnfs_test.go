package test

// libnfs clients (Debian's libnfs-utils: nfs-ls, nfs-cp) against a real
// `hanfsd serve` process: list the export, upload a 256 MiB file, see its
// size, download it again and compare.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// libEnsureTools returns the paths of nfs-ls and nfs-cp, installing
// libnfs-utils with apt-get when they are missing; it skips the test when that
// is not possible.
func libEnsureTools(t *testing.T) (nfsLs, nfsCp string) {
	t.Helper()
	look := func() bool {
		var err1, err2 error
		nfsLs, err1 = exec.LookPath("nfs-ls")
		nfsCp, err2 = exec.LookPath("nfs-cp")
		return err1 == nil && err2 == nil
	}
	if look() {
		return
	}
	if _, err := exec.LookPath("apt-get"); err != nil || os.Geteuid() != 0 {
		t.Skip("libnfs test skipped: nfs-ls/nfs-cp are missing and cannot be installed here (needs root and apt-get: apt-get install libnfs-utils)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	t.Log("nfs-ls/nfs-cp missing: apt-get update && apt-get install libnfs-utils")
	var log strings.Builder
	for _, args := range [][]string{{"update", "-qq"}, {"install", "-y", "-qq", "--no-install-recommends", "libnfs-utils"}} {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		fmt.Fprintf(&log, "$ apt-get %s\n%s", strings.Join(args, " "), out)
		if err != nil {
			t.Skipf("libnfs test skipped: apt-get %s failed (%v):\n%s", args[0], err, kcTail([]byte(log.String()), 30))
		}
	}
	if !look() {
		t.Skipf("libnfs test skipped: libnfs-utils installed but nfs-ls/nfs-cp still not found:\n%s", kcTail([]byte(log.String()), 30))
	}
	return
}

// libRun runs one libnfs command with a time limit and returns its output;
// a failure is reported with the command line and everything it printed.
func libRun(t *testing.T, limit time.Duration, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.WaitDelay = 5 * time.Second
	t0 := time.Now()
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%s %s: no result after %s (hung); output:\n%s", filepath.Base(name), strings.Join(args, " "), limit, out)
	}
	if err != nil {
		t.Fatalf("%s %s: %v; output:\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	t.Logf("%s %s: %s", filepath.Base(name), strings.Join(args, " "), time.Since(t0).Round(time.Millisecond))
	return string(out)
}

func libSHA256(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// libLsEntry finds name in nfs-ls output ("-rw-r--r--  1  0  0  SIZE NAME")
// and returns its fields.
func libLsEntry(out, name string) []string {
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && f[len(f)-1] == name {
			return f
		}
	}
	return nil
}

func TestLibnfsListUploadDownload(t *testing.T) {
	nfsLs, nfsCp := libEnsureTools(t)
	tStart := time.Now()
	bin := kcBuildHanfsd(t)
	srv := kcNewServer(t, bin, "2GiB")
	srv.start()
	port := strconv.Itoa(srv.port)
	q := "?nfsport=" + port + "&mountport=" + port + "&version=3"
	// libnfs splits a file URL at its last slash into export and file, so a
	// file in the export "/" is nfs://HOST//NAME; nfs://HOST/NAME would mount
	// the export "" (which libnfs itself then rejects).
	dirURL := "nfs://127.0.0.1/" + q
	fileURL := func(name string) string { return "nfs://127.0.0.1//" + name + q }

	// A listing of the empty export.
	out := libRun(t, time.Minute, nfsLs, dirURL)
	t.Logf("nfs-ls of the empty export:\n%s", out)

	// Upload 256 MiB of random data.
	const size = 256 << 20
	dir := t.TempDir()
	src, back := filepath.Join(dir, "big.src"), filepath.Join(dir, "big.back")
	f, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	want := libSHA256(t, src)

	t0 := time.Now()
	libRun(t, 3*time.Minute, nfsCp, src, fileURL("big.bin"))
	up := time.Since(t0)

	out = libRun(t, time.Minute, nfsLs, dirURL)
	t.Logf("nfs-ls after the upload:\n%s", out)
	e := libLsEntry(out, "big.bin")
	if e == nil {
		t.Fatalf("nfs-ls does not list big.bin after the upload")
	}
	if !strings.Contains(" "+strings.Join(e, " ")+" ", " "+strconv.Itoa(size)+" ") {
		t.Errorf("nfs-ls shows big.bin as %q, want size %d", strings.Join(e, " "), size)
	}

	t0 = time.Now()
	libRun(t, 3*time.Minute, nfsCp, fileURL("big.bin"), back)
	down := time.Since(t0)
	st, err := os.Stat(back)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != size {
		t.Fatalf("downloaded %d bytes, want %d", st.Size(), size)
	}
	if got := libSHA256(t, back); got != want {
		t.Fatalf("downloaded file differs: sha256 %s, uploaded %s", got, want)
	}
	mb := float64(size) / (1 << 20)
	t.Logf("256 MiB: upload %s (%.0f MiB/s), download %s (%.0f MiB/s), sha256 equal %s",
		up.Round(time.Millisecond), mb/up.Seconds(), down.Round(time.Millisecond), mb/down.Seconds(), want[:16])

	if err := srv.stop(); err != nil {
		t.Errorf("hanfsd did not stop cleanly on SIGTERM: %v", err)
	}
	srv.fsck()
	t.Logf("libnfs test: %s in all", time.Since(tStart).Round(100*time.Millisecond))
}
