// Command hanfsd is the hanfs server: it formats and checks shared disks and
// mounts them locally through FUSE.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, version))
}

// env is what the commands share: output streams and the build version.
type env struct {
	stdout, stderr io.Writer
	version        string
}

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // the command failed (for fsck: problems found)
	exitUsage   = 2 // bad flags or arguments (for fsck: the disk could not be checked)
)

// usageError is a mistake on the command line.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// exitError ends the program with a chosen code; a nil err prints nothing.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}
func (e exitError) Unwrap() error { return e.err }

// run executes the command line args and returns the exit code.
func run(args []string, stdout, stderr io.Writer, version string) int {
	e := &env{stdout: stdout, stderr: stderr, version: version}
	root := newRootCmd(e)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteC()
	if err == nil {
		return exitOK
	}
	var ee exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintf(stderr, "hanfsd: %v\n", ee.err)
		}
		return ee.code
	}
	fmt.Fprintf(stderr, "hanfsd: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) || isCobraUsageError(err) {
		if cmd == nil {
			cmd = root
		}
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		return exitUsage
	}
	return exitFailure
}

// isCobraUsageError recognises the argument errors cobra makes itself.
func isCobraUsageError(err error) bool {
	msg := err.Error()
	return strings.HasPrefix(msg, "unknown command") || strings.HasPrefix(msg, "unknown flag") ||
		strings.HasPrefix(msg, "unknown shorthand flag") || strings.Contains(msg, "flag needs an argument")
}

func newRootCmd(e *env) *cobra.Command {
	root := &cobra.Command{
		Use:   "hanfsd",
		Short: "hanfs: a highly available NFS server on a shared disk",
		Long: `hanfsd runs hanfs, a highly available NFS server whose servers share one disk
(a block device, or an image file for tests).

It formats a disk, checks it, mounts it locally through FUSE, and serves it
over NFSv3.`,
		Example: `  hanfsd format --disk ./data/hanfs.img --size 8GiB
  hanfsd fsck --disk ./data/hanfs.img
  sudo hanfsd mount --disk ./data/hanfs.img ./data/mnt`,
		Version:       e.version,
		SilenceUsage:  true,
		SilenceErrors: true,
		// A root that runs turns unknown commands into a usage error.
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				cmd.SetOut(e.stderr)
				_ = cmd.Help()
				return usageError{errors.New("missing command")}
			}
			msg := fmt.Sprintf("unknown command %q", args[0])
			cmd.SuggestionsMinimumDistance = 2
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += fmt.Sprintf("; did you mean %q?", s[0])
			}
			return usageError{errors.New(msg)}
		},
	}
	root.SetVersionTemplate("hanfsd {{.Version}}\n")
	root.CompletionOptions.HiddenDefaultCmd = true
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newFormatCmd(e), newFsckCmd(e), newMountCmd(e), newServeCmd(e), newStatusCmd(e), newSwitchoverCmd(e), newLabCmd(e), newSoakCmd(e), newVersionCmd(e))
	return root
}

// exactArgs is cobra.ExactArgs with a usage error that names the arguments.
func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			if n == 0 {
				return usageError{fmt.Errorf("%s takes no arguments, got %q", cmd.CommandPath(), args)}
			}
			return usageError{fmt.Errorf("%s needs %s, got %d argument(s)", cmd.CommandPath(), names, len(args))}
		}
		return nil
	}
}

// requireDisk checks that --disk was given.
func requireDisk(disk string) error {
	if disk == "" {
		return usageError{errors.New("--disk PATH is required")}
	}
	return nil
}
