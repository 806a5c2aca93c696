package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

func newSwitchoverCmd(e *env) *cobra.Command {
	var addr string
	var to int
	cmd := &cobra.Command{
		Use:   "switchover --primary ADDR [--to N]",
		Short: "Hand the primary role to a backup without waiting for the lease to lapse",
		Long: `Switchover asks the primary (its --metrics address) to hand over: it stops
taking requests, flushes and checkpoints the journal, releases the lease to the
chosen backup (--to, default the lowest peer id) and becomes a backup itself.
The backup takes the lease at once and serves at the same service address.
Clients see a short pause, and no error.`,
		Example: `  hanfsd switchover --primary 127.0.0.1:9051 --to 2`,
		Args:    exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, args []string) error {
			if addr == "" {
				return usageError{fmt.Errorf("--primary ADDR (the primary's --metrics address) is required")}
			}
			url := fmt.Sprintf("http://%s/switchover?to=%d", strings.TrimPrefix(addr, "http://"), to)
			cl := &http.Client{Timeout: 10 * time.Second}
			resp, err := cl.Post(url, "text/plain", nil)
			if err != nil {
				return fmt.Errorf("switchover: %w", err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("switchover refused by %s: %s", addr, strings.TrimSpace(string(body)))
			}
			fmt.Fprintf(e.stdout, "%s", body)
			return nil
		},
	}
	cmd.Flags().StringVar(&addr, "primary", "", "the primary's HTTP address (its --metrics flag)")
	cmd.Flags().IntVar(&to, "to", 0, "the node id to hand over to (default: the lowest peer id)")
	return cmd
}
