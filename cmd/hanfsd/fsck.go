package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/hanfs/hanfs/fsstore"
	"github.com/hanfs/hanfs/shareddisk"
)

// fsck exit codes.
const (
	fsckClean    = 0
	fsckProblems = 1
	fsckError    = 2
)

type fsckFlags struct {
	disk string
	json bool
}

func newFsckCmd(e *env) *cobra.Command {
	var f fsckFlags
	cmd := &cobra.Command{
		Use:   "fsck --disk PATH [--json]",
		Short: "Check a hanfs disk for corruption",
		Long: `Fsck checks every invariant of the file system on a disk: both superblock
copies, the journal (checked as if replayed, without writing), the metadata
checksums and tree, every inode and directory entry, link counts, parent
pointers, and the allocation bitmap against the blocks in use. It never
changes the disk. Run it on a disk no server or mount is using.

Exit status: 0 when the file system is clean, 1 when problems were found (the
report lists them), 2 when the disk could not be checked at all (it cannot be
opened, it is not a hanfs disk, or neither superblock copy is usable).`,
		Example: `  hanfsd fsck --disk ./data/hanfs.img
  hanfsd fsck --disk /dev/sdb --json | jq .problems`,
		Args: exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runFsck(e, &f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.disk, "disk", "", "block device or image file to check (required)")
	fl.BoolVar(&f.json, "json", false, "print the report as JSON on stdout")
	return cmd
}

// fsckJSON is the --json output: the report's fields, "ok", and "error"
// when the disk could not be checked.
type fsckJSON struct {
	*fsstore.FsckReport
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

func runFsck(e *env, f *fsckFlags) error {
	if err := requireDisk(f.disk); err != nil {
		return err
	}
	fail := func(err error) error {
		if f.json {
			writeJSON(e, fsckJSON{FsckReport: &fsstore.FsckReport{Disk: f.disk, Problems: []string{}}, Error: err.Error()})
		}
		return exitError{fsckError, fmt.Errorf("fsck: %w", err)}
	}
	d, err := shareddisk.OpenFile(f.disk, shareddisk.OpenOptions{ReadOnly: true})
	if err != nil {
		return fail(err)
	}
	defer d.Close()
	rep, err := fsstore.Fsck(d)
	if err != nil {
		return fail(err)
	}
	if f.json {
		if rep.Problems == nil {
			rep.Problems = []string{}
		}
		writeJSON(e, fsckJSON{FsckReport: rep, OK: rep.OK()})
	} else {
		fmt.Fprint(e.stdout, rep.String())
	}
	if !rep.OK() {
		return exitError{fsckProblems, fmt.Errorf("fsck %s: %d problem(s) found", f.disk, len(rep.Problems))}
	}
	return nil
}

func writeJSON(e *env, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		fmt.Fprintf(e.stderr, "hanfsd: encode JSON: %v\n", err)
		return
	}
	fmt.Fprintf(e.stdout, "%s\n", b)
}
