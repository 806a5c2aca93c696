package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

func newVersionCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of hanfsd",
		Long: `Version prints the hanfsd version (set at build time with
-ldflags "-X main.version=..."; "dev" otherwise), the Go version and the
platform.`,
		Example: `  hanfsd version`,
		Args:    exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintf(e.stdout, "hanfsd %s (%s, %s/%s", e.version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			if bi, ok := debug.ReadBuildInfo(); ok {
				for _, s := range bi.Settings {
					if s.Key == "vcs.revision" && len(s.Value) >= 12 {
						fmt.Fprintf(e.stdout, ", commit %s", s.Value[:12])
					}
				}
			}
			fmt.Fprintln(e.stdout, ")")
			return nil
		},
	}
}
