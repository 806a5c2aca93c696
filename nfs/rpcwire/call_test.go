package rpcwire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// NFS program numbers used by the tests.
const (
	progNFS   = 100003
	procWrite = 7
)

// goldenCall is an NFSv3 GETATTR call with AUTH_UNIX, written out by hand from RFC 5531.
const goldenCall = "" +
	"12345678" + // xid
	"00000000" + // CALL
	"00000002" + // rpcvers
	"000186a3" + // prog 100003
	"00000003" + // vers 3
	"00000001" + // proc GETATTR
	"00000001" + // AUTH_UNIX
	"00000024" + // cred length 36
	"00000007" + // stamp
	"00000005" + "686f737431000000" + // machine "host1" padded
	"000003e8" + // uid 1000
	"00000064" + // gid 100
	"00000002" + "0000000a" + "0000000b" + // gids 10, 11
	"00000000" + "00000000" + // verifier AUTH_NONE
	"00000008" + "0102030405060708" // args: an 8-byte handle

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseCallGolden(t *testing.T) {
	rec := mustHex(t, goldenCall)
	c, err := ParseCall(rec)
	if err != nil {
		t.Fatal(err)
	}
	want := &AuthUnix{Stamp: 7, Machine: "host1", UID: 1000, GID: 100, GIDs: []uint32{10, 11}}
	if c.XID != 0x12345678 || c.RPCVers != 2 || c.Prog != progNFS || c.Vers != 3 || c.Proc != 1 ||
		c.CredFlavor != FlavorUnix || len(c.Cred) != 36 || c.VerfFlavor != FlavorNone || len(c.Verf) != 0 {
		t.Fatalf("header %+v", c)
	}
	if !reflect.DeepEqual(c.Unix, want) {
		t.Fatalf("cred %+v, want %+v", c.Unix, want)
	}
	if !bytes.Equal(c.Args, mustHex(t, "000000080102030405060708")) {
		t.Fatalf("args %x", c.Args)
	}
	if !bytes.Equal(BuildCall(0x12345678, progNFS, 3, 1, want, c.Args), rec) {
		t.Fatal("BuildCall differs from the golden record")
	}
}

func TestParseCallRoundTrip(t *testing.T) {
	long := strings.Repeat("m", MaxMachineName)
	gids := []uint32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	cases := []struct {
		name string
		cred *AuthUnix
		args []byte
	}{
		{"none no args", nil, nil},
		{"none args", nil, []byte{0, 0, 0, 1, 2}},
		{"unix root", &AuthUnix{Machine: "", UID: 0, GID: 0, GIDs: []uint32{}}, nil},
		{"unix one byte machine", &AuthUnix{Machine: "a", UID: 1, GID: 2, GIDs: []uint32{3}}, []byte{9}},
		{"unix inline limit", &AuthUnix{Machine: strings.Repeat("x", inlineMachine), GIDs: []uint32{}}, nil},
		{"unix past inline", &AuthUnix{Machine: strings.Repeat("y", inlineMachine+1), GIDs: []uint32{}}, nil},
		{"unix limits", &AuthUnix{Stamp: 0xffffffff, Machine: long, UID: 0xfffffffe, GID: 65534, GIDs: gids}, make([]byte, 4096)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := BuildCall(0xabcdef01, progNFS, 3, procWrite, tc.cred, tc.args)
			c, err := ParseCall(rec)
			if err != nil {
				t.Fatal(err)
			}
			if c.XID != 0xabcdef01 || c.Prog != progNFS || c.Vers != 3 || c.Proc != procWrite || !bytes.Equal(c.Args, tc.args) {
				t.Fatalf("call %+v", c)
			}
			if tc.cred == nil {
				if c.CredFlavor != FlavorNone || c.Unix != nil {
					t.Fatalf("cred %d %+v", c.CredFlavor, c.Unix)
				}
				return
			}
			if c.CredFlavor != FlavorUnix || !reflect.DeepEqual(c.Unix, tc.cred) {
				t.Fatalf("cred %+v, want %+v", c.Unix, tc.cred)
			}
			// The credential is copied, the arguments alias the record.
			for i := range rec {
				rec[i] ^= 0xff
			}
			if !reflect.DeepEqual(c.Unix, tc.cred) {
				t.Fatal("credential aliases the record")
			}
			if len(tc.args) > 0 && c.Args[0] == tc.args[0] {
				t.Fatal("args do not alias the record")
			}
		})
	}
}

// callWithCred builds a call record whose credential has the given flavor and raw body.
func callWithCred(xid, flavor uint32, body []byte, verfFlavor uint32, verf []byte) []byte {
	var e Encoder
	e.Uint32(xid)
	e.Uint32(msgCall)
	e.Uint32(RPCVersion)
	e.Uint32(progNFS)
	e.Uint32(3)
	e.Uint32(0)
	e.Uint32(flavor)
	e.Opaque(body)
	e.Uint32(verfFlavor)
	e.Opaque(verf)
	return e.Bytes()
}

func TestParseCallErrors(t *testing.T) {
	unix := func(a *AuthUnix) []byte { return AppendAuthUnix(nil, a) }
	good := unix(&AuthUnix{Machine: "h", GIDs: []uint32{1}})
	cases := []struct {
		name    string
		rec     []byte
		wantErr error
		wantNil bool
	}{
		{"empty", nil, ErrGarbage, true},
		{"three bytes", []byte{1, 2, 3}, ErrGarbage, true},
		{"xid only", words(5), ErrGarbage, false},
		{"reply", words(5, msgReply, 0, 0, 0, 0), ErrNotCall, false},
		{"message type 7", words(5, 7), ErrNotCall, false},
		{"rpc version 3", words(5, msgCall, 3), ErrRPCMismatch, false},
		{"rpc version 1 with body", words(5, msgCall, 1, 1, 2, 3, 0, 0, 0, 0), ErrRPCMismatch, false},
		{"no procedure", words(5, msgCall, 2, progNFS, 3), ErrGarbage, false},
		{"no verifier", words(5, msgCall, 2, progNFS, 3, 0, 0, 0), ErrGarbage, false},
		{"cred body truncated", words(5, msgCall, 2, progNFS, 3, 0, 1, 20, 0), ErrGarbage, false},
		{"cred huge length", words(5, msgCall, 2, progNFS, 3, 0, 1, 0xffffffff), ErrGarbage, false},
		{"cred over 400", callWithCred(5, FlavorUnix, make([]byte, 404), 0, nil), ErrBadCred, false},
		{"cred over 400 other flavor", callWithCred(5, 6, make([]byte, 404), 0, nil), ErrBadCred, false},
		{"cred 400 other flavor", callWithCred(5, 6, make([]byte, 400), 0, nil), nil, false},
		{"verf over 400", callWithCred(5, FlavorNone, nil, 0, make([]byte, 401)), ErrBadVerf, false},
		{"cred and verf over 400", callWithCred(5, FlavorUnix, make([]byte, 404), 0, make([]byte, 404)), ErrBadCred, false},
		{"cred over 400 verf truncated", callWithCred(5, FlavorUnix, make([]byte, 404), 0, make([]byte, 404))[:480], ErrGarbage, false},
		{"verf 400", callWithCred(5, FlavorNone, nil, 6, make([]byte, 400)), nil, false},
		{"verf truncated", callWithCred(5, FlavorNone, nil, 0, make([]byte, 8))[:44], ErrGarbage, false},
		{"none with body", callWithCred(5, FlavorNone, []byte{0, 0, 0, 0}, 0, nil), ErrBadCred, false},
		{"unix ok", callWithCred(5, FlavorUnix, good, 0, nil), nil, false},
		{"unix 17 gids", callWithCred(5, FlavorUnix, unix(&AuthUnix{GIDs: make([]uint32, 17)}), 0, nil), ErrBadCred, false},
		{"unix 256-byte machine", callWithCred(5, FlavorUnix, unix(&AuthUnix{Machine: strings.Repeat("a", 256)}), 0, nil), ErrBadCred, false},
		{"unix gid count past body", callWithCred(5, FlavorUnix, words(0, 0, 0, 0, 3, 1), 0, nil), ErrBadCred, false},
		{"unix trailing bytes", callWithCred(5, FlavorUnix, append(good, 0, 0, 0, 0), 0, nil), ErrBadCred, false},
		{"unix empty", callWithCred(5, FlavorUnix, nil, 0, nil), ErrBadCred, false},
		{"unix huge machine length", callWithCred(5, FlavorUnix, words(0, 0xfffffff0), 0, nil), ErrBadCred, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseCall(tc.rec)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if (c == nil) != tc.wantNil {
				t.Fatalf("call = %+v, want nil %v", c, tc.wantNil)
			}
			if c != nil && c.XID != 5 {
				t.Fatalf("xid %d, want 5", c.XID)
			}
			if errors.Is(err, ErrRPCMismatch) && c.RPCVers == RPCVersion {
				t.Fatal("RPCVers not kept")
			}
			if errors.Is(err, ErrBadCred) && c.Unix != nil {
				t.Fatal("Unix set with ErrBadCred")
			}
			if errors.Is(err, ErrGarbage) && !errors.Is(err, ErrShort) {
				t.Fatalf("ErrGarbage does not wrap the XDR error: %v", err)
			}
		})
	}
}

func TestParseCallEveryTruncation(t *testing.T) {
	rec := BuildCall(77, progNFS, 3, procWrite,
		&AuthUnix{Stamp: 1, Machine: "client.example.com", UID: 5, GID: 6, GIDs: []uint32{7, 8, 9}},
		[]byte{1, 2, 3, 4})
	argStart := len(rec) - 4
	for n := range len(rec) + 1 {
		c, err := ParseCall(rec[:n])
		switch {
		case n >= argStart:
			if err != nil || len(c.Args) != n-argStart || c.Unix == nil {
				t.Fatalf("n=%d: %v", n, err)
			}
		case n < 4:
			if c != nil || !errors.Is(err, ErrGarbage) {
				t.Fatalf("n=%d: call %v err %v", n, c, err)
			}
		default:
			if c == nil || c.XID != 77 || !errors.Is(err, ErrGarbage) {
				t.Fatalf("n=%d: call %v err %v", n, c, err)
			}
		}
	}
}

func TestParseCallOtherFlavor(t *testing.T) {
	rec := callWithCred(9, 6, []byte("gss-cred"), 6, []byte("gss-verf"))
	rec = append(rec, 0xaa)
	c, err := ParseCall(rec)
	if err != nil {
		t.Fatal(err)
	}
	if c.CredFlavor != 6 || string(c.Cred) != "gss-cred" || c.VerfFlavor != 6 || string(c.Verf) != "gss-verf" ||
		c.Unix != nil || !bytes.Equal(c.Args, []byte{0xaa}) {
		t.Fatalf("call %+v", c)
	}
}
