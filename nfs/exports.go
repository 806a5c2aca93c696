package nfs

import (
	"fmt"
	"hash/fnv"
	"net/netip"
	"path"
	"strconv"
	"strings"

	"github.com/hanfs/hanfs/fsstore"
)

// Export is one exported directory of the store.
type Export struct {
	Path       string         // absolute path inside the store ("/" is the root)
	Clients    []netip.Prefix // client networks allowed to mount and use it
	ReadOnly   bool
	RootSquash bool   // map uid 0 to AnonUID/AnonGID
	AllSquash  bool   // map every user to AnonUID/AnonGID
	AnonUID    uint32 // default 65534
	AnonGID    uint32 // default 65534

	id   uint32
	root fsstore.Ino
	gen  uint64
}

// DefaultClients are the networks an export allows when none are given:
// loopback only, the safe default.
var defaultClients = []string{"127.0.0.0/8", "::1/128"}

// ParseExport parses "PATH [NETWORKS [OPTIONS]]", for example
// "/ 127.0.0.0/8,10.1.0.0/16 rw,no_root_squash". NETWORKS is a comma-separated
// list of CIDR prefixes or addresses ("*" for any); OPTIONS are rw, ro,
// root_squash, no_root_squash, all_squash, anonuid=N, anongid=N. Defaults:
// loopback clients only, rw, root_squash, anonuid=anongid=65534.
func ParseExport(spec string) (Export, error) {
	f := strings.Fields(spec)
	if len(f) == 0 || len(f) > 3 {
		return Export{}, fmt.Errorf("export %q: want PATH [NETWORKS [OPTIONS]]", spec)
	}
	e := Export{Path: f[0], RootSquash: true, AnonUID: 65534, AnonGID: 65534}
	if !strings.HasPrefix(e.Path, "/") {
		return Export{}, fmt.Errorf("export %q: the path must be absolute inside the store", spec)
	}
	e.Path = path.Clean(e.Path)
	nets := defaultClients
	if len(f) >= 2 {
		nets = strings.Split(f[1], ",")
	}
	for _, n := range nets {
		switch {
		case n == "*":
			e.Clients = append(e.Clients, netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0"))
		case strings.Contains(n, "/"):
			p, err := netip.ParsePrefix(n)
			if err != nil {
				return Export{}, fmt.Errorf("export %q: network %q: %w", spec, n, err)
			}
			e.Clients = append(e.Clients, p.Masked())
		default:
			a, err := netip.ParseAddr(n)
			if err != nil {
				return Export{}, fmt.Errorf("export %q: client %q is not an address or CIDR prefix: %w", spec, n, err)
			}
			e.Clients = append(e.Clients, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	if len(f) == 3 {
		for _, o := range strings.Split(f[2], ",") {
			k, v, hasV := strings.Cut(o, "=")
			switch {
			case o == "rw":
				e.ReadOnly = false
			case o == "ro":
				e.ReadOnly = true
			case o == "root_squash":
				e.RootSquash = true
			case o == "no_root_squash":
				e.RootSquash = false
			case o == "all_squash":
				e.AllSquash = true
			case hasV && (k == "anonuid" || k == "anongid"):
				n, err := strconv.ParseUint(v, 10, 32)
				if err != nil {
					return Export{}, fmt.Errorf("export %q: option %q: %w", spec, o, err)
				}
				if k == "anonuid" {
					e.AnonUID = uint32(n)
				} else {
					e.AnonGID = uint32(n)
				}
			default:
				return Export{}, fmt.Errorf("export %q: unknown option %q (want rw, ro, root_squash, no_root_squash, all_squash, anonuid=N, anongid=N)", spec, o)
			}
		}
	}
	e.id = exportID(e.Path)
	return e, nil
}

func exportID(p string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(p))
	return h.Sum32()
}

// Allows reports whether a client at addr may use the export.
func (e *Export) Allows(addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, p := range e.Clients {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// String formats the export like its specification.
func (e *Export) String() string {
	var nets []string
	for _, p := range e.Clients {
		nets = append(nets, p.String())
	}
	opts := []string{"rw"}
	if e.ReadOnly {
		opts[0] = "ro"
	}
	if e.RootSquash {
		opts = append(opts, "root_squash")
	} else {
		opts = append(opts, "no_root_squash")
	}
	if e.AllSquash {
		opts = append(opts, "all_squash")
	}
	return fmt.Sprintf("%s %s %s", e.Path, strings.Join(nets, ","), strings.Join(opts, ","))
}

// squash maps a client's credential according to the export's options.
func (e *Export) squash(c *fsstore.Cred) *fsstore.Cred {
	if e.AllSquash || (e.RootSquash && c.UID == 0) {
		return &fsstore.Cred{UID: e.AnonUID, GID: e.AnonGID}
	}
	if e.RootSquash && c.GID == 0 {
		c2 := *c
		c2.GID = e.AnonGID
		return &c2
	}
	return c
}
