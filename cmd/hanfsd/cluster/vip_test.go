package cluster

import (
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestVIPInNetns adds and removes a virtual address on a dummy interface
// inside a network namespace made for the test.
func TestVIPInNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces and netlink address changes)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs the ip command (apt-get install iproute2)")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := os.Open("/proc/self/ns/net")
	if err != nil {
		t.Skipf("cannot open the network namespace: %v", err)
	}
	defer orig.Close()
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		t.Skipf("cannot create a network namespace: %v", err)
	}
	defer unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET)
	// The ip commands run in the test thread's namespace via /proc/<tid>.
	ns := "/proc/" + itoa(unix.Gettid()) + "/ns/net"
	run := func(args ...string) string {
		out, err := exec.Command("nsenter", append([]string{"--net=" + ns, "ip"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if _, err := exec.LookPath("nsenter"); err != nil {
		t.Skip("needs nsenter (apt-get install util-linux)")
	}
	run("link", "add", "hanfs0", "type", "veth", "peer", "name", "hanfs1")
	run("link", "set", "hanfs0", "up")
	run("link", "set", "hanfs1", "up")
	v, err := ParseVIP("10.77.0.100/24", "hanfs0")
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Add(); err != nil {
		t.Fatal(err)
	}
	if out := run("addr", "show", "dev", "hanfs0"); !strings.Contains(out, "10.77.0.100/24") {
		t.Fatalf("address not added:\n%s", out)
	}
	if err := v.Add(); err != nil {
		t.Fatalf("adding again: %v", err)
	}
	if err := v.Remove(); err != nil {
		t.Fatal(err)
	}
	if out := run("addr", "show", "dev", "hanfs0"); strings.Contains(out, "10.77.0.100") {
		t.Fatalf("address not removed:\n%s", out)
	}
	if err := v.Remove(); err != nil {
		t.Fatalf("removing again: %v", err)
	}
}

func itoa(i int) string {
	b := []byte{}
	for i > 0 || len(b) == 0 {
		b = append([]byte{byte('0' + i%10)}, b...)
		i /= 10
	}
	return string(b)
}
