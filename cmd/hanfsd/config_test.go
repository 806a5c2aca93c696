package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeConfig writes text to a config file in a temp dir and returns its path.
func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "hanfsd.conf")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestConfigFileKeys reads every setting from a config file, and checks that
// flags given on the command line win over the file.
func TestConfigFileKeys(t *testing.T) {
	p := writeConfig(t, `# a full config
disk /dev/sdb
listen 0.0.0.0:2049   # trailing comment
metrics 127.0.0.1:9049
node 2
heartbeat 10.0.0.2:7946
peer 1=10.0.0.1:7946
vip 10.0.0.100/24
vip-dev eth0
read-cache 256MiB
journaled-writes 16KiB
procs 4
pprof true
fence-command systemctl poweroff --force
watchdog /dev/watchdog
export / 10.0.0.0/8 rw,root_squash
`)
	var c serveConfig
	if err := loadConfigFile(p, &c, func(string) bool { return false }); err != nil {
		t.Fatal(err)
	}
	want := serveConfig{disk: "/dev/sdb", listen: "0.0.0.0:2049", metrics: "127.0.0.1:9049", node: 2,
		heartbeat: "10.0.0.2:7946", peers: []string{"1=10.0.0.1:7946"}, vip: "10.0.0.100/24", vipDev: "eth0",
		readCache: 256 << 20, journaledWrites: 16 << 10, procs: 4, pprof: true,
		fenceCmd: "systemctl poweroff --force", watchdog: "/dev/watchdog", exports: []string{"/ 10.0.0.0/8 rw,root_squash"}}
	if got, w := fmt.Sprintf("%+v", c), fmt.Sprintf("%+v", want); got != w {
		t.Errorf("config read as\n%s\nwant\n%s", got, w)
	}

	// Flags set on the command line keep their values.
	c = serveConfig{readCache: 1 << 20, procs: 8, pprof: false, node: 1}
	flagged := map[string]bool{"read-cache": true, "procs": true, "pprof": true, "node": true}
	if err := loadConfigFile(p, &c, func(n string) bool { return flagged[n] }); err != nil {
		t.Fatal(err)
	}
	if c.readCache != 1<<20 || c.procs != 8 || c.pprof || c.node != 1 {
		t.Errorf("flags overridden by the file: read-cache %d, procs %d, pprof %v, node %d", c.readCache, c.procs, c.pprof, c.node)
	}
	if c.journaledWrites != 16<<10 {
		t.Errorf("journaled-writes %d, want the file's 16KiB", c.journaledWrites)
	}
}

// TestConfigFileErrors: a bad line is named with its line number and what is
// wrong, never ignored.
func TestConfigFileErrors(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"disk /d\nbogus 1\n", `:2: unknown setting "bogus" (want one of disk,`},
		{"node two\n", `:1: node "two"`},
		{"\n\nprocs many\n", `:3: procs "many"`},
		{"read-cache lots\n", `:1: read-cache:`},
		{"journaled-writes 1XB\n", `:1: journaled-writes:`},
		{"pprof yes please\n", `:1: pprof "yes please": want true or false`},
		{"listen\n", `:1: "listen" needs a value`},
		{"export /x 10.0.0.0/33\n", `:1:`},
	} {
		var c serveConfig
		err := loadConfigFile(writeConfig(t, tc.text), &c, func(string) bool { return false })
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("config %q: error %v, want one containing %q", tc.text, err, tc.want)
		}
	}
}
