package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

type labFlags struct {
	disk      string
	nodes     int
	listen    string
	hbBase    int
	httpBase  int
	export    string
	restart   time.Duration
	extraArgs []string
}

func newLabCmd(e *env) *cobra.Command {
	var f labFlags
	cmd := &cobra.Command{
		Use:   "lab --disk PATH [--nodes 2] [--listen ADDR]",
		Short: "Run a local cluster: several nodes on one disk, on this machine",
		Long: `Lab starts --nodes "hanfsd serve" processes on one shared disk (an image file
or a device), all on this machine: node i gets heartbeats on 127.0.0.1:(hb-base+i)
and its HTTP endpoint on 127.0.0.1:(http-base+i). One becomes primary and
serves NFS on --listen; the others stand by. Their logs are shown with a
"[node i]" prefix.

Try a failover: kill -9 the primary (its pid is printed); a backup takes over
in about 1.5 s, and the lab restarts the killed node after --restart, when it
rejoins as a backup. Or hand over without waiting:
  hanfsd switchover --primary 127.0.0.1:<http-base+i>
Ctrl-C stops every node.`,
		Example: `  hanfsd format --disk ./data/hanfs.img --size 8GiB
  hanfsd lab --disk ./data/hanfs.img --nodes 2 --listen 127.0.0.1:2049`,
		Args: exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := requireDisk(f.disk); err != nil {
				return err
			}
			if f.nodes < 1 || f.nodes > 16 {
				return usageError{fmt.Errorf("--nodes %d: want 1..16", f.nodes)}
			}
			return runLab(e, &f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.disk, "disk", "", "the shared disk: image file or block device (required; format it first)")
	fl.IntVar(&f.nodes, "nodes", 2, "how many nodes to run")
	fl.StringVar(&f.listen, "listen", "127.0.0.1:2049", "the NFS service address")
	fl.IntVar(&f.hbBase, "heartbeat-base", 7100, "node i's heartbeats use UDP port heartbeat-base+i")
	fl.IntVar(&f.httpBase, "http-base", 9050, "node i's /metrics, /status and /switchover use TCP port http-base+i")
	fl.StringVar(&f.export, "export", "/ 127.0.0.0/8 rw,no_root_squash", "the export given to every node")
	fl.DurationVar(&f.restart, "restart", 3*time.Second, "restart a node that died after this long (0: never)")
	fl.StringArrayVar(&f.extraArgs, "serve-arg", nil, "an extra argument for every hanfsd serve (repeatable)")
	return cmd
}

func runLab(e *env, f *labFlags) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer cancel()
	var out sync.Mutex
	var wg sync.WaitGroup
	host, port := splitHostPortOr(f.listen)
	fmt.Fprintf(e.stdout, "hanfs lab: %d nodes on %s, NFS service on %s\n", f.nodes, f.disk, f.listen)
	fmt.Fprintf(e.stdout, "mount it from a Linux client with:\n  mount -t nfs -o vers=3,proto=tcp,port=%s,mountport=%s,nolock,hard %s:/ /mnt\n", port, port, host)
	fmt.Fprintf(e.stdout, "status:     hanfsd status --disk %s\n", f.disk)
	fmt.Fprintf(e.stdout, "failover:   kill -9 the primary's pid (shown below); it restarts as a backup after %v\n", f.restart)
	fmt.Fprintf(e.stdout, "switchover: hanfsd switchover --primary 127.0.0.1:<%d + primary's node id>\n", f.httpBase)
	fmt.Fprintf(e.stdout, "Ctrl-C stops every node.\n\n")
	for i := 1; i <= f.nodes; i++ {
		args := []string{"serve", "--disk", f.disk, "--node", strconv.Itoa(i),
			"--heartbeat", fmt.Sprintf("127.0.0.1:%d", f.hbBase+i), "--listen", f.listen,
			"--metrics", fmt.Sprintf("127.0.0.1:%d", f.httpBase+i), "--export", f.export}
		for j := 1; j <= f.nodes; j++ {
			if j != i {
				args = append(args, "--peer", fmt.Sprintf("%d=127.0.0.1:%d", j, f.hbBase+j))
			}
		}
		args = append(args, f.extraArgs...)
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for {
				cmd := exec.CommandContext(ctx, self, args...)
				cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
				cmd.WaitDelay = 5 * time.Second
				pr, pw := io.Pipe()
				cmd.Stdout, cmd.Stderr = pw, pw
				if err := cmd.Start(); err != nil {
					out.Lock()
					fmt.Fprintf(e.stderr, "[node %d] start: %v\n", i, err)
					out.Unlock()
					return
				}
				out.Lock()
				fmt.Fprintf(e.stdout, "[node %d] started, pid %d, status http://127.0.0.1:%d/status\n", i, cmd.Process.Pid, f.httpBase+i)
				out.Unlock()
				go func() {
					sc := bufio.NewScanner(pr)
					for sc.Scan() {
						out.Lock()
						fmt.Fprintf(e.stdout, "[node %d] %s\n", i, sc.Text())
						out.Unlock()
					}
				}()
				err := cmd.Wait()
				pw.Close()
				if ctx.Err() != nil {
					return
				}
				out.Lock()
				fmt.Fprintf(e.stdout, "[node %d] exited (%v)", i, err)
				if f.restart > 0 {
					fmt.Fprintf(e.stdout, "; restarting it in %v", f.restart)
				}
				fmt.Fprintln(e.stdout)
				out.Unlock()
				if f.restart <= 0 {
					return
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(f.restart):
				}
			}
		}(i)
		time.Sleep(100 * time.Millisecond)
	}
	wg.Wait()
	return nil
}

func splitHostPortOr(addr string) (string, string) {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			return addr[:i], addr[i+1:]
		}
	}
	return addr, "2049"
}
