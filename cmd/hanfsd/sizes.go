package main

import (
	"fmt"
	"math"
	"math/big"
	"strings"
)

// sizeUnits maps a lower-case unit to its multiplier. K, M, G... and KiB,
// MiB, GiB... are powers of 1024; KB, MB, GB... are powers of 1000, as in
// truncate(1) and dd(1).
var sizeUnits = map[string]uint64{
	"": 1, "b": 1,
	"k": 1 << 10, "kib": 1 << 10, "kb": 1e3,
	"m": 1 << 20, "mib": 1 << 20, "mb": 1e6,
	"g": 1 << 30, "gib": 1 << 30, "gb": 1e9,
	"t": 1 << 40, "tib": 1 << 40, "tb": 1e12,
	"p": 1 << 50, "pib": 1 << 50, "pb": 1e15,
}

// parseSize parses a human-friendly size: "8GiB", "512MiB", "1T", "1.5G",
// "4096". Units are case-insensitive; the result must be a whole number of
// bytes that fits an int64.
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.' || t[i] == '_') {
		i++
	}
	num, unit := strings.ReplaceAll(t[:i], "_", ""), strings.ToLower(strings.TrimSpace(t[i:]))
	if num == "" {
		if t == "" {
			return 0, fmt.Errorf("invalid size %q: empty (use e.g. 8GiB, 512MiB, 1T or a number of bytes)", s)
		}
		return 0, fmt.Errorf("invalid size %q: must start with a non-negative number (e.g. 8GiB, 512MiB, 1T or 4096)", s)
	}
	mult, ok := sizeUnits[unit]
	if !ok {
		return 0, fmt.Errorf("invalid size %q: unknown unit %q (use B, K/KiB, M/MiB, G/GiB, T/TiB, P/PiB for powers of 1024, or KB, MB, GB, TB, PB for powers of 1000)", s, t[i:])
	}
	if strings.Count(num, ".") > 1 || strings.HasPrefix(num, ".") || strings.HasSuffix(num, ".") {
		return 0, fmt.Errorf("invalid size %q: malformed number %q", s, num)
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok {
		return 0, fmt.Errorf("invalid size %q: malformed number %q", s, num)
	}
	r.Mul(r, new(big.Rat).SetInt(new(big.Int).SetUint64(mult)))
	if !r.IsInt() {
		return 0, fmt.Errorf("invalid size %q: not a whole number of bytes", s)
	}
	n := r.Num()
	if !n.IsInt64() || n.Int64() > math.MaxInt64 {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return n.Int64(), nil
}

// formatSize renders n bytes in binary units, exactly when it is a whole
// number of a unit ("8GiB"), else with one decimal ("1.5GiB (1610612736 bytes)").
func formatSize(n int64) string {
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB"}
	if n < 1024 {
		return fmt.Sprintf("%d bytes", n)
	}
	u, v := -1, float64(n)
	for u+1 < len(units) && v >= 1024 {
		v /= 1024
		u++
	}
	if v == math.Trunc(v) {
		return fmt.Sprintf("%d%s", int64(v), units[u])
	}
	return fmt.Sprintf("%.1f%s (%d bytes)", v, units[u], n)
}

// sizeValue is a pflag.Value for a size flag.
type sizeValue struct{ n *int64 }

func (v sizeValue) String() string {
	if v.n == nil || *v.n == 0 {
		return "0"
	}
	return formatSize(*v.n)
}

func (v sizeValue) Set(s string) error {
	n, err := parseSize(s)
	if err != nil {
		return err
	}
	*v.n = n
	return nil
}

func (v sizeValue) Type() string { return "size" }
