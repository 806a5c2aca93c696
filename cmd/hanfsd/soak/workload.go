package soak

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hanfs/hanfs/nfs/client"
	"github.com/hanfs/hanfs/nfs/rpcwire"
)

// Workload limits: files per client directory, bytes per file.
const (
	maxFiles    = 16
	maxFileSize = 64 << 10
	callTimeout = 60 * time.Second // a hard-mount call waits through failovers, not forever
)

// file is the model of one acknowledged file: its handle and the bytes every
// acknowledged write left in it.
type file struct {
	fh   []byte
	data []byte
}

// opCounts counts acknowledged operations by kind.
type opCounts struct {
	Create, Write, Read, Rename, Remove, Getattr atomic.Int64
}

// workload runs one goroutine per client, each with its own nfs/client
// connection (hard mount) and its own directory, and keeps the model of
// what the server acknowledged.
type workload struct {
	service string
	seed    uint64
	violate func(kind, detail string)
	ops     opCounts
	total   atomic.Int64 // completed calls
	written atomic.Int64 // bytes acknowledged by WRITE
	checked atomic.Int64 // bytes read back and compared

	// Outage measurement since the last resetWindow: the longest single
	// call, and the longest time in which no call completed.
	lastDone atomic.Int64
	maxWait  atomic.Int64
	maxGap   atomic.Int64

	stop    chan struct{}
	wg      sync.WaitGroup
	clients []*wclient
}

// wclient is one client: its connection, directory and model.
type wclient struct {
	w     *workload
	id    int
	c     *client.Client
	dir   []byte
	name  string
	rng   *rand.Rand
	seq   int
	mu    sync.Mutex // guards files and unsure (read at the end)
	files map[string]*file
	// unsure are names whose state a failed call left unknown; the final
	// tree comparison ignores them (the failure was already a violation).
	unsure map[string]bool
}

// startWorkload connects n clients, creates their directories and starts
// them.
func startWorkload(ctx context.Context, service string, n int, seed uint64, violate func(kind, detail string)) (*workload, error) {
	w := &workload{service: service, seed: seed, violate: violate, stop: make(chan struct{})}
	w.lastDone.Store(time.Now().UnixNano())
	for i := 0; i < n; i++ {
		c, err := client.DialConfig(ctx, client.Config{Addr: service, Cred: &rpcwire.AuthUnix{Machine: fmt.Sprintf("soak-%d", i)}})
		if err != nil {
			w.close()
			return nil, fmt.Errorf("client %d: dial %s: %w", i, service, err)
		}
		wc := &wclient{w: w, id: i, c: c, name: fmt.Sprintf("client-%d", i), rng: rand.New(rand.NewPCG(seed, uint64(i))),
			files: map[string]*file{}, unsure: map[string]bool{}}
		w.clients = append(w.clients, wc)
		root, err := c.Mount(ctx, "/")
		if err != nil {
			w.close()
			return nil, fmt.Errorf("client %d: mount: %w", i, err)
		}
		if wc.dir, err = c.Mkdir(ctx, root, wc.name, 0o755); err != nil {
			w.close()
			return nil, fmt.Errorf("client %d: mkdir %s: %w", i, wc.name, err)
		}
	}
	for _, wc := range w.clients {
		w.wg.Add(1)
		go wc.run()
	}
	return w, nil
}

// halt stops the clients after their current operation.
func (w *workload) halt() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	w.wg.Wait()
}

// close halts the workload and closes the connections.
func (w *workload) close() {
	w.halt()
	for _, wc := range w.clients {
		wc.c.Close()
	}
}

// resetWindow starts a new outage measurement window.
func (w *workload) resetWindow() {
	w.maxWait.Store(0)
	w.maxGap.Store(0)
}

// window returns the longest call and the longest gap without a completed
// call since resetWindow.
func (w *workload) window() (wait, gap time.Duration) {
	return time.Duration(w.maxWait.Load()), time.Duration(w.maxGap.Load())
}

func storeMax(a *atomic.Int64, v int64) {
	for {
		cur := a.Load()
		if v <= cur || a.CompareAndSwap(cur, v) {
			return
		}
	}
}

// call runs one client call with the hard-mount bound, timing it for the
// outage window.
func (wc *wclient) call(fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	start := time.Now()
	err := fn(ctx)
	now := time.Now()
	storeMax(&wc.w.maxWait, int64(now.Sub(start)))
	prev := wc.w.lastDone.Swap(now.UnixNano())
	storeMax(&wc.w.maxGap, now.UnixNano()-prev)
	if err == nil {
		wc.w.total.Add(1)
	}
	return err
}

func (wc *wclient) fail(op, name string, err error) {
	wc.mu.Lock()
	wc.unsure[name] = true
	delete(wc.files, name)
	wc.mu.Unlock()
	wc.w.violate("client_error", fmt.Sprintf("%s: %s %s: %v", wc.name, op, name, err))
}

func (wc *wclient) run() {
	defer wc.w.wg.Done()
	for {
		select {
		case <-wc.w.stop:
			return
		default:
		}
		wc.step()
	}
}

// names returns the model's file names, sorted (deterministic choice).
func (wc *wclient) names() []string {
	wc.mu.Lock()
	defer wc.mu.Unlock()
	out := make([]string, 0, len(wc.files))
	for n := range wc.files {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// step runs one randomly chosen operation.
func (wc *wclient) step() {
	names := wc.names()
	p := wc.rng.IntN(100)
	switch {
	case len(names) < 3 || (p < 12 && len(names) < maxFiles):
		wc.create()
	case len(names) >= maxFiles || p < 20:
		wc.remove(names[wc.rng.IntN(len(names))])
	case p < 30:
		wc.rename(names[wc.rng.IntN(len(names))])
	case p < 70:
		wc.write(names[wc.rng.IntN(len(names))])
	default:
		wc.verify(names[wc.rng.IntN(len(names))])
	}
}

func (wc *wclient) create() {
	wc.seq++
	name := fmt.Sprintf("f%d", wc.seq)
	var fh []byte
	err := wc.call(func(ctx context.Context) (err error) {
		fh, err = wc.c.Create(ctx, wc.dir, name, 0o644)
		return err
	})
	if err != nil {
		wc.fail("create", name, err)
		return
	}
	wc.w.ops.Create.Add(1)
	wc.mu.Lock()
	wc.files[name] = &file{fh: fh}
	wc.mu.Unlock()
}

func (wc *wclient) remove(name string) {
	err := wc.call(func(ctx context.Context) error { return wc.c.Remove(ctx, wc.dir, name) })
	if err != nil {
		wc.fail("remove", name, err)
		return
	}
	wc.w.ops.Remove.Add(1)
	wc.mu.Lock()
	delete(wc.files, name)
	wc.mu.Unlock()
}

func (wc *wclient) rename(name string) {
	wc.seq++
	to := fmt.Sprintf("r%d", wc.seq)
	err := wc.call(func(ctx context.Context) error { return wc.c.Rename(ctx, wc.dir, name, wc.dir, to) })
	if err != nil {
		wc.mu.Lock()
		wc.unsure[to] = true
		wc.mu.Unlock()
		wc.fail("rename "+to, name, err)
		return
	}
	wc.w.ops.Rename.Add(1)
	wc.mu.Lock()
	wc.files[to] = wc.files[name]
	delete(wc.files, name)
	wc.mu.Unlock()
}

func (wc *wclient) write(name string) {
	wc.mu.Lock()
	f := wc.files[name]
	size := len(f.data)
	wc.mu.Unlock()
	off := 0
	if size > 0 {
		off = wc.rng.IntN(size + 1)
	}
	n := 512 + wc.rng.IntN(16<<10)
	if off+n > maxFileSize {
		off, n = 0, min(n, maxFileSize)
	}
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(wc.rng.Uint32())
	}
	var got uint32
	err := wc.call(func(ctx context.Context) (err error) {
		got, _, err = wc.c.Write(ctx, f.fh, uint64(off), data)
		return err
	})
	if err == nil && int(got) != n {
		err = fmt.Errorf("short write: %d of %d bytes", got, n)
	}
	if err != nil {
		wc.fail(fmt.Sprintf("write [%d,%d)", off, off+n), name, err)
		return
	}
	wc.w.ops.Write.Add(1)
	wc.w.written.Add(int64(n))
	wc.mu.Lock()
	if off+n > len(f.data) {
		f.data = append(f.data, make([]byte, off+n-len(f.data))...)
	}
	copy(f.data[off:], data)
	wc.mu.Unlock()
}

// verify reads the whole file back and compares it with the model.
func (wc *wclient) verify(name string) {
	wc.mu.Lock()
	f := wc.files[name]
	want := append([]byte(nil), f.data...)
	wc.mu.Unlock()
	var got []byte
	err := wc.call(func(ctx context.Context) (err error) {
		got, err = wc.c.ReadAll(ctx, f.fh)
		return err
	})
	if err != nil {
		wc.fail("read", name, err)
		return
	}
	wc.w.ops.Read.Add(1)
	if !bytes.Equal(got, want) {
		wc.mu.Lock()
		wc.unsure[name] = true
		delete(wc.files, name)
		wc.mu.Unlock()
		wc.w.violate("lost_write", fmt.Sprintf("%s: %s reads back %d bytes, acknowledged %d (%s)", wc.name, name, len(got), len(want), firstDiff(got, want)))
		return
	}
	wc.w.checked.Add(int64(len(want)))
}

// firstDiff describes where got and want first differ.
func firstDiff(got, want []byte) string {
	for i := 0; i < len(got) && i < len(want); i++ {
		if got[i] != want[i] {
			return fmt.Sprintf("first difference at byte %d", i)
		}
	}
	return fmt.Sprintf("lengths differ: %d vs %d", len(got), len(want))
}

// verifyAll compares the tree with the model through the given client: the
// directory listing of every client (names and handles), and every file's
// content, byte for byte. It returns the bytes compared.
func (w *workload) verifyAll(c *client.Client) (int64, error) {
	var total int64
	for _, wc := range w.clients {
		wc.mu.Lock()
		files := make(map[string]*file, len(wc.files))
		for k, v := range wc.files {
			files[k] = v
		}
		unsure := make(map[string]bool, len(wc.unsure))
		for k := range wc.unsure {
			unsure[k] = true
		}
		wc.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		ents, err := c.ReadDirPlus(ctx, wc.dir)
		cancel()
		if err != nil {
			return total, fmt.Errorf("final check: readdirplus %s: %w", wc.name, err)
		}
		seen := map[string]bool{}
		for _, e := range ents {
			if e.Name == "." || e.Name == ".." {
				continue
			}
			seen[e.Name] = true
			f, ok := files[e.Name]
			switch {
			case !ok && !unsure[e.Name]:
				w.violate("tree_mismatch", fmt.Sprintf("%s: %s exists but was removed or never acknowledged", wc.name, e.Name))
			case ok && e.Handle != nil && !bytes.Equal(e.Handle, f.fh):
				w.violate("tree_mismatch", fmt.Sprintf("%s: %s has another handle than the one CREATE returned", wc.name, e.Name))
			}
		}
		for name, f := range files {
			if !seen[name] {
				w.violate("tree_mismatch", fmt.Sprintf("%s: acknowledged file %s is missing", wc.name, name))
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
			got, err := c.ReadAll(ctx, f.fh)
			cancel()
			if err != nil {
				w.violate("lost_write", fmt.Sprintf("final check: %s: read %s: %v", wc.name, name, err))
				continue
			}
			if !bytes.Equal(got, f.data) {
				w.violate("lost_write", fmt.Sprintf("final check: %s: %s reads back %d bytes, acknowledged %d (%s)",
					wc.name, name, len(got), len(f.data), firstDiff(got, f.data)))
				continue
			}
			total += int64(len(f.data))
		}
	}
	return total, nil
}

// errStopped is returned by waits that the soak's stop interrupted.
var errStopped = errors.New("soak stopped")

// waitProgress waits until the workload completed n more calls.
func (w *workload) waitProgress(n int64, within time.Duration) error {
	target := w.total.Load() + n
	deadline := time.Now().Add(within)
	for w.total.Load() < target {
		if time.Now().After(deadline) {
			return fmt.Errorf("the clients completed %d of %d calls in %v", w.total.Load()-(target-n), n, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}
