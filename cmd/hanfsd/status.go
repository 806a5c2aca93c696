package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hanfs/hanfs/cmd/hanfsd/cluster"
	"github.com/hanfs/hanfs/fencing"
	"github.com/hanfs/hanfs/shareddisk"
)

func newStatusCmd(e *env) *cobra.Command {
	var disk string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status --disk PATH [--json]",
		Short: "Show every node's role, epoch, lease and heartbeat state",
		Long: `Status reads the lease record and every node's presence record from the disk
(it writes nothing), watches them for a moment to tell live nodes from dead
ones, then asks each live node's HTTP endpoint for its view: role, epoch, lease
holder and age, last heartbeats and mailbox state.`,
		Example: `  hanfsd status --disk ./data/hanfs.img`,
		Args:    exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := requireDisk(disk); err != nil {
				return err
			}
			return runStatus(e, disk, asJSON)
		},
	}
	cmd.Flags().StringVar(&disk, "disk", "", "block device or image file (required)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

type nodeReport struct {
	Node      int             `json:"node"`
	Alive     bool            `json:"alive"`
	Role      string          `json:"role_on_disk"`
	Epoch     uint64          `json:"epoch"`
	StatusURL string          `json:"status_url"`
	LastWrite string          `json:"last_presence_write"`
	Live      *cluster.Status `json:"live,omitempty"`
}

func runStatus(e *env, path string, asJSON bool) error {
	d, err := shareddisk.OpenFile(path, shareddisk.OpenOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer d.Close()
	sb, err := shareddisk.ReadSuperblock(d)
	if err != nil {
		return err
	}
	t := fencing.DefaultTiming()
	area, err := fencing.NewArea(d, sb.Layout, time.Second)
	if err != nil {
		return err
	}
	lease, _, err := area.ReadLease()
	if err != nil {
		return err
	}
	before := map[int]fencing.Presence{}
	for n := 1; n <= fencing.MaxNodes; n++ {
		if p, ok, err := area.ReadPresence(n); err == nil && ok {
			before[n] = p
		}
	}
	time.Sleep(3*t.RenewInterval + 300*time.Millisecond) // presence records are written every 250 ms
	lease2, _, _ := area.ReadLease()
	var nodes []nodeReport
	cl := &http.Client{Timeout: 500 * time.Millisecond}
	for n := 1; n <= fencing.MaxNodes; n++ {
		p0, ok := before[n]
		if !ok {
			continue
		}
		p1, _, _ := area.ReadPresence(n)
		r := nodeReport{Node: n, Alive: p1.Counter != p0.Counter, Role: p1.Role.String(), Epoch: p1.Epoch,
			StatusURL: p1.StatusURL, LastWrite: time.Unix(0, p1.WallTime).Format(time.RFC3339)}
		if r.Alive && p1.StatusURL != "" {
			if resp, err := cl.Get(p1.StatusURL + "/status"); err == nil {
				var st cluster.Status
				if json.NewDecoder(resp.Body).Decode(&st) == nil {
					r.Live = &st
				}
				resp.Body.Close()
			}
		}
		nodes = append(nodes, r)
	}
	renewing := lease2.Counter != lease.Counter
	if asJSON {
		out := map[string]any{"disk": path, "uuid": sb.UUIDString(), "lease": lease2, "lease_renewing": renewing, "nodes": nodes}
		b, _ := json.MarshalIndent(out, "", "  ")
		fmt.Fprintln(e.stdout, string(b))
		return nil
	}
	fmt.Fprintf(e.stdout, "disk %s (uuid %s)\n", path, sb.UUIDString())
	fmt.Fprintf(e.stdout, "lease: %s by node %d, epoch %d, renewals %d (%s)\n", lease2.State, lease2.Owner, lease2.Epoch, lease2.Counter,
		map[bool]string{true: "being renewed", false: "NOT renewed in the last " + (3 * t.RenewInterval).String()}[renewing])
	tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tALIVE\tROLE\tEPOCH\tHEARTBEATS\tMAILBOX\tLEASE AGE\tSTATUS URL")
	for _, r := range nodes {
		hb, mb, age := "-", "-", "-"
		role := r.Role
		if r.Live != nil {
			role = r.Live.Role
			hb = fmt.Sprint(r.Live.LastHeartbeatMS)
			mb = r.Live.Mailbox
			age = fmt.Sprintf("%dms", r.Live.LeaseAgeMS)
		}
		fmt.Fprintf(tw, "%d\t%v\t%s\t%d\t%s\t%s\t%s\t%s\n", r.Node, r.Alive, role, r.Epoch, hb, mb, age, r.StatusURL)
	}
	return tw.Flush()
}
