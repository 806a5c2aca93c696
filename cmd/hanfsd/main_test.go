package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/hanfs/hanfs/shareddisk"
)

// hanfsd runs the command line in-process and returns stdout, stderr and
// the exit code.
func hanfsd(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr, "test-version")
	return stdout.String(), stderr.String(), code
}

// formatted returns the path of a freshly formatted 128 MiB image.
func formatted(t *testing.T) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "disk.img")
	if out, errOut, code := hanfsd(t, "format", "--disk", img, "--size", "128MiB"); code != 0 {
		t.Fatalf("format: exit %d\n%s%s", code, out, errOut)
	}
	return img
}

var uuidRE = regexp.MustCompile(`UUID:\s+([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})`)

func TestFormatCreatesSparseImage(t *testing.T) {
	img := filepath.Join(t.TempDir(), "disk.img")
	out, errOut, code := hanfsd(t, "format", "--disk", img, "--label", "test disk")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"Created sparse image file", "8GiB", "Label:       test disk", "journal", "bitmap", "data", "lease", "mailbox", "superblock A"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !uuidRE.MatchString(out) {
		t.Errorf("output shows no UUID:\n%s", out)
	}
	st, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != 8<<30 {
		t.Errorf("image size %d, want 8 GiB", st.Size())
	}
	if used := st.Sys().(*syscall.Stat_t).Blocks * 512; used > 128<<20 {
		t.Errorf("the 8 GiB image uses %d bytes: not sparse", used)
	}
}

func TestFormatRefusals(t *testing.T) {
	img := formatted(t)
	out, errOut, code := hanfsd(t, "format", "--disk", img)
	if code != exitFailure || !strings.Contains(errOut, "refusing to format") || !strings.Contains(errOut, "holds hanfs file system") ||
		!strings.Contains(errOut, "--force") || !strings.Contains(errOut, img) {
		t.Errorf("format over a hanfs disk: exit %d\n%s%s", code, out, errOut)
	}
	first := uuidRE.FindStringSubmatch(mustFormatOutput(t, img, "--force"))
	if first == nil {
		t.Fatal("no UUID after --force")
	}
	second := uuidRE.FindStringSubmatch(mustFormatOutput(t, img, "--force"))
	if second == nil || second[1] == first[1] {
		t.Errorf("re-format kept UUID %v, %v", first, second)
	}

	// A non-empty file that is not hanfs.
	other := filepath.Join(t.TempDir(), "other.img")
	data := make([]byte, 128<<20)
	copy(data[4096:], "precious data")
	if err := os.WriteFile(other, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = hanfsd(t, "format", "--disk", other)
	if code != exitFailure || !strings.Contains(errOut, "not empty") || !strings.Contains(errOut, "--force") {
		t.Errorf("format over other data: exit %d\n%s%s", code, out, errOut)
	}
	if b, _ := os.ReadFile(other); !bytes.Equal(b, data) {
		t.Error("refused format changed the file")
	}
	mustFormatOutput(t, other, "--force")

	// --size does not resize an existing file.
	_, errOut, code = hanfsd(t, "format", "--disk", other, "--force", "--size", "1GiB")
	if code != exitUsage || !strings.Contains(errOut, "already exists") {
		t.Errorf("--size on an existing file: exit %d\n%s", code, errOut)
	}

	// Too small, a directory, and a journal that does not fit.
	_, errOut, code = hanfsd(t, "format", "--disk", filepath.Join(t.TempDir(), "tiny.img"), "--size", "1MiB")
	if code != exitUsage || !strings.Contains(errOut, "minimum") {
		t.Errorf("tiny disk: exit %d\n%s", code, errOut)
	}
	_, errOut, code = hanfsd(t, "format", "--disk", t.TempDir())
	if code != exitFailure || !strings.Contains(errOut, "directory") {
		t.Errorf("directory: exit %d\n%s", code, errOut)
	}
	_, errOut, code = hanfsd(t, "format", "--disk", filepath.Join(t.TempDir(), "j.img"), "--size", "64MiB", "--journal-size", "64MiB")
	if code == 0 || !strings.Contains(errOut, "journal") {
		t.Errorf("journal as large as the disk: exit %d\n%s", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(t.TempDir(), "j.img")); err == nil {
		t.Error("a failed format left the image file it created")
	}
}

func mustFormatOutput(t *testing.T, img string, extra ...string) string {
	t.Helper()
	out, errOut, code := hanfsd(t, append([]string{"format", "--disk", img}, extra...)...)
	if code != 0 {
		t.Fatalf("format %v: exit %d\n%s%s", extra, code, out, errOut)
	}
	return out
}

func TestParseSize(t *testing.T) {
	good := map[string]int64{
		"4096": 4096, "8GiB": 8 << 30, "8gib": 8 << 30, "512MiB": 512 << 20, "1T": 1 << 40, "1t": 1 << 40,
		"2K": 2048, "10GB": 10e9, "1.5GiB": 3 << 29, "64M": 64 << 20, " 3G ": 3 << 30, "1_000": 1000, "7B": 7, "1PiB": 1 << 50,
	}
	for in, want := range good {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	bad := map[string]string{
		"": "empty", "GiB": "must start with", "-1G": "must start with", "8XB": "unknown unit", "1.5.5G": "malformed",
		"1.G": "malformed", "0.3B": "whole number", "99999999999P": "too large", "8 gigs": "unknown unit", "abc": "must start with",
	}
	for in, want := range bad {
		_, err := parseSize(in)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "invalid size") {
			t.Errorf("parseSize(%q): %v; want an error about %q", in, err, want)
		}
	}
}

func TestBadSizeFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--size", "8XB"},
		{"--size", "lots"},
		{"--size", "-1G"},
		{"--journal-size", "1.5.5M"},
		{"--journal-size", "1000"}, // not a multiple of 4 KiB
		{"--journal-size", "4KiB"}, // below the minimum
	} {
		img := filepath.Join(t.TempDir(), "disk.img")
		_, errOut, code := hanfsd(t, append([]string{"format", "--disk", img}, args...)...)
		if code != exitUsage {
			t.Errorf("format %v: exit %d, want %d\n%s", args, code, exitUsage, errOut)
		}
		if !strings.Contains(errOut, args[0]) && !strings.Contains(errOut, "invalid size") {
			t.Errorf("format %v: error does not name the flag or the size:\n%s", args, errOut)
		}
		if _, err := os.Stat(img); err == nil {
			t.Errorf("format %v created the image", args)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"formt"},
		{"format"},
		{"format", "--disk"},
		{"format", "--disk", "x", "--no-such-flag"},
		{"format", "--disk", "x", "extra-arg"},
		{"fsck"},
		{"mount", "--disk", "x"},
		{"mount", "--disk", "x", "a", "b"},
		{"version", "extra"},
		{"--bogus"},
	} {
		_, errOut, code := hanfsd(t, args...)
		if code != exitUsage {
			t.Errorf("hanfsd %q: exit %d, want %d\n%s", args, code, exitUsage, errOut)
		}
		if !strings.Contains(errOut, "hanfsd: ") || strings.Contains(errOut, "panic") {
			t.Errorf("hanfsd %q: unclear error:\n%s", args, errOut)
		}
	}
	if _, errOut, _ := hanfsd(t, "formt"); !strings.Contains(errOut, `did you mean "format"`) {
		t.Errorf("no suggestion for a misspelt command:\n%s", errOut)
	}
}

func TestHelp(t *testing.T) {
	flags := map[string][]string{
		"format":  {"--disk", "--size", "--force", "--journal-size", "--label"},
		"fsck":    {"--disk", "--json"},
		"mount":   {"--disk", "--debug", "DIR"},
		"version": {},
	}
	for cmd, want := range flags {
		out, errOut, code := hanfsd(t, cmd, "--help")
		if code != 0 {
			t.Errorf("%s --help: exit %d\n%s", cmd, code, errOut)
		}
		for _, w := range append(want, "Usage:", "Examples:", "hanfsd "+cmd) {
			if !strings.Contains(out, w) {
				t.Errorf("%s --help does not mention %q:\n%s", cmd, w, out)
			}
		}
	}
	out, _, code := hanfsd(t, "--help")
	for _, w := range []string{"format", "fsck", "mount", "version"} {
		if code != 0 || !strings.Contains(out, w) {
			t.Errorf("hanfsd --help does not list %q:\n%s", w, out)
		}
	}
}

func TestVersion(t *testing.T) {
	out, _, code := hanfsd(t, "version")
	if code != 0 || !strings.HasPrefix(out, "hanfsd test-version (go") {
		t.Errorf("version: exit %d, %q", code, out)
	}
	out, _, code = hanfsd(t, "--version")
	if code != 0 || out != "hanfsd test-version\n" {
		t.Errorf("--version: exit %d, %q", code, out)
	}
	if version != "dev" {
		t.Errorf("default version %q, want dev", version)
	}
}

func TestFsckClean(t *testing.T) {
	img := formatted(t)
	out, errOut, code := hanfsd(t, "fsck", "--disk", img)
	if code != fsckClean || !strings.Contains(out, "clean") {
		t.Errorf("fsck of a new disk: exit %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = hanfsd(t, "fsck", "--disk", img, "--json")
	if code != fsckClean {
		t.Errorf("fsck --json: exit %d\n%s%s", code, out, errOut)
	}
	var rep struct {
		Disk     string   `json:"disk"`
		OK       bool     `json:"ok"`
		Problems []string `json:"problems"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || !rep.OK || rep.Disk != img || len(rep.Problems) != 0 {
		t.Errorf("fsck --json: %+v, %v\n%s", rep, err, out)
	}
}

// corrupt overwrites bytes of block blk of the image.
func corrupt(t *testing.T, img string, blk int64) {
	t.Helper()
	f, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte("garbage garbage garbage"), blk*shareddisk.BlockSize+100); err != nil {
		t.Fatal(err)
	}
}

func TestFsckCorruptSuperblock(t *testing.T) {
	// One copy bad: the other is used, and fsck reports the damage.
	img := formatted(t)
	corrupt(t, img, shareddisk.SuperblockABlock)
	out, errOut, code := hanfsd(t, "fsck", "--disk", img)
	if code != fsckProblems || !strings.Contains(out, "copy A") {
		t.Errorf("fsck with superblock copy A corrupt: exit %d, want %d\n%s%s", code, fsckProblems, out, errOut)
	}
	out, _, code = hanfsd(t, "fsck", "--disk", img, "--json")
	if code != fsckProblems || !strings.Contains(out, `"ok": false`) {
		t.Errorf("fsck --json with copy A corrupt: exit %d\n%s", code, out)
	}

	// Both copies bad: the disk cannot be checked; the error names the disk and the region.
	corrupt(t, img, shareddisk.SuperblockBBlock)
	out, errOut, code = hanfsd(t, "fsck", "--disk", img)
	if code != fsckError {
		t.Errorf("fsck with both superblock copies corrupt: exit %d, want %d\n%s%s", code, fsckError, out, errOut)
	}
	for _, want := range []string{img, "superblock", "block 0", "block 1"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("error does not mention %q:\n%s", want, errOut)
		}
	}
	if strings.Contains(errOut, "panic") || strings.Contains(errOut, "goroutine") {
		t.Errorf("panic:\n%s", errOut)
	}
	out, _, code = hanfsd(t, "fsck", "--disk", img, "--json")
	if code != fsckError || !strings.Contains(out, `"error"`) {
		t.Errorf("fsck --json with both copies corrupt: exit %d\n%s", code, out)
	}
	// Mount gives the same clear error before touching the mount point.
	_, errOut, code = hanfsd(t, "mount", "--disk", img, t.TempDir())
	if code != exitFailure || !strings.Contains(errOut, img) || !strings.Contains(errOut, "superblock") {
		t.Errorf("mount with both copies corrupt: exit %d\n%s", code, errOut)
	}
}

func TestFsckNotHanfs(t *testing.T) {
	dir := t.TempDir()
	zero := filepath.Join(dir, "zero.img")
	if err := shareddisk.CreateImage(zero, 64<<20); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := hanfsd(t, "fsck", "--disk", zero)
	if code != fsckError || !strings.Contains(errOut, "not a hanfs disk") || !strings.Contains(errOut, zero) {
		t.Errorf("fsck of a zero image: exit %d\n%s", code, errOut)
	}
	_, errOut, code = hanfsd(t, "fsck", "--disk", filepath.Join(dir, "missing.img"))
	if code != fsckError || !strings.Contains(errOut, "missing.img") {
		t.Errorf("fsck of a missing file: exit %d\n%s", code, errOut)
	}
	// A truncated image: the superblock promises more blocks than there are.
	img := formatted(t)
	if err := os.Truncate(img, 96<<20); err != nil {
		t.Fatal(err)
	}
	_, errOut, code = hanfsd(t, "fsck", "--disk", img)
	if code != fsckError || !strings.Contains(errOut, img) || strings.Contains(errOut, "panic") {
		t.Errorf("fsck of a truncated image: exit %d\n%s", code, errOut)
	}
}

func TestServeProcs(t *testing.T) {
	for _, tc := range []struct {
		flag   int
		envSet bool
		cpus   int
		want   int
	}{
		{0, false, 2, minServeProcs},
		{0, false, 32, 32},
		{3, false, 2, 3},
		{3, true, 2, 3},
		{0, true, 2, runtime.GOMAXPROCS(0)},
	} {
		if got := serveProcs(tc.flag, tc.envSet, tc.cpus); got != tc.want {
			t.Errorf("serveProcs(%d, %v, %d) = %d, want %d", tc.flag, tc.envSet, tc.cpus, got, tc.want)
		}
	}
	var out, errb bytes.Buffer
	if code := run([]string{"serve", "--disk", "/nonexistent", "--procs", "-1"}, &out, &errb, "test"); code != exitUsage || !strings.Contains(errb.String(), "--procs -1") {
		t.Errorf("serve --procs -1: exit %d, want %d, and an error naming --procs (%s)", code, exitUsage, errb.String())
	}
}

func TestServeJournaledWrites(t *testing.T) {
	for _, tc := range []struct {
		size int64
		want int
		ok   bool
	}{
		{0, -1, true},
		{4096, 1, true},
		{32 << 10, 8, true},
		{36 << 10, 0, false},
		{1000, 0, false},
		{-4096, 0, false},
	} {
		got, err := journaledWriteBlocks(tc.size)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("journaledWriteBlocks(%d) = %d, %v; want %d (ok %v)", tc.size, got, err, tc.want, tc.ok)
		}
	}
	var out, errb bytes.Buffer
	if code := run([]string{"serve", "--disk", "/nonexistent", "--journaled-writes", "64KiB"}, &out, &errb, "test"); code != exitUsage || !strings.Contains(errb.String(), "--journaled-writes") {
		t.Errorf("serve --journaled-writes 64KiB: exit %d, want %d, and an error naming the flag (%s)", code, exitUsage, errb.String())
	}
}
