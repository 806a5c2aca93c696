package rpcwire

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func TestReplyBuildersGolden(t *testing.T) {
	cases := []struct {
		name string
		got  []byte
		want string
	}{
		{"success", AcceptedReply(0x11223344, Success, []byte{0, 0, 0, 0}),
			"11223344" + "00000001" + "00000000" + "00000000" + "00000000" + "00000000" + "00000000"},
		{"garbage args", AcceptedReply(1, GarbageArgs, nil),
			"00000001" + "00000001" + "00000000" + "00000000" + "00000000" + "00000004"},
		{"prog mismatch", ProgMismatchReply(2, 3, 4),
			"00000002" + "00000001" + "00000000" + "00000000" + "00000000" + "00000002" + "00000003" + "00000004"},
		{"rpc mismatch", DeniedRPCMismatch(3),
			"00000003" + "00000001" + "00000001" + "00000000" + "00000002" + "00000002"},
		{"auth badcred", DeniedAuth(4, AuthBadCred),
			"00000004" + "00000001" + "00000001" + "00000001" + "00000001"},
		{"accepted header", AppendAcceptedHeader([]byte{0xee}, 5),
			"ee" + "00000005" + "00000001" + "00000000" + "00000000" + "00000000" + "00000000"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if want := mustHex(t, tc.want); !bytes.Equal(tc.got, want) {
				t.Fatalf("got  %x\nwant %x", tc.got, want)
			}
		})
	}
}

func TestReplyRoundTrip(t *testing.T) {
	cases := []struct {
		name string
		rec  []byte
		want Reply
	}{
		{"success", AcceptedReply(1, Success, []byte{1, 2, 3, 4}),
			Reply{XID: 1, Accepted: true, Verf: []byte{}, AcceptStat: Success, Body: []byte{1, 2, 3, 4}}},
		{"success header", append(AppendAcceptedHeader(nil, 2), 9, 9, 9, 9),
			Reply{XID: 2, Accepted: true, Verf: []byte{}, AcceptStat: Success, Body: []byte{9, 9, 9, 9}}},
		{"prog unavail", AcceptedReply(3, ProgUnavail, nil),
			Reply{XID: 3, Accepted: true, Verf: []byte{}, AcceptStat: ProgUnavail, Body: []byte{}}},
		{"proc unavail", AcceptedReply(4, ProcUnavail, nil),
			Reply{XID: 4, Accepted: true, Verf: []byte{}, AcceptStat: ProcUnavail, Body: []byte{}}},
		{"garbage args", AcceptedReply(5, GarbageArgs, nil),
			Reply{XID: 5, Accepted: true, Verf: []byte{}, AcceptStat: GarbageArgs, Body: []byte{}}},
		{"system err", AcceptedReply(6, SystemErr, nil),
			Reply{XID: 6, Accepted: true, Verf: []byte{}, AcceptStat: SystemErr, Body: []byte{}}},
		{"prog mismatch", ProgMismatchReply(7, 3, 4),
			Reply{XID: 7, Accepted: true, Verf: []byte{}, AcceptStat: ProgMismatch, Low: 3, High: 4, Body: []byte{}}},
		{"rpc mismatch", DeniedRPCMismatch(8),
			Reply{XID: 8, RejectStat: RejectRPCMismatch, Low: 2, High: 2}},
	}
	for s := AuthBadCred; s <= AuthFailed; s++ {
		cases = append(cases, struct {
			name string
			rec  []byte
			want Reply
		}{s.String(), DeniedAuth(100+uint32(s), s), Reply{XID: 100 + uint32(s), RejectStat: RejectAuthError, AuthStat: s}})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseReply(tc.rec)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*r, tc.want) {
				t.Fatalf("got  %+v\nwant %+v", *r, tc.want)
			}
			// Every truncation fails cleanly.
			for n := range len(tc.rec) - len(tc.want.Body) {
				if r, err := ParseReply(tc.rec[:n]); err == nil || r != nil || !errors.Is(err, ErrShort) {
					t.Fatalf("truncated to %d: %v, %v", n, r, err)
				}
			}
		})
	}
}

func TestParseReplyErrors(t *testing.T) {
	cases := []struct {
		name    string
		rec     []byte
		wantErr error
	}{
		{"call", BuildCall(1, 2, 3, 4, nil, nil), ErrInvalid},
		{"reply status 2", words(1, msgReply, 2), ErrInvalid},
		{"reject status 2", words(1, msgReply, msgDenied, 2), ErrInvalid},
		{"verifier over 400", append(words(1, msgReply, msgAccepted, 0, 404), make([]byte, 408)...), ErrTooLong},
		{"verifier short", words(1, msgReply, msgAccepted, 0, 8, 0), ErrShort},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseReply(tc.rec)
			if r != nil || !errors.Is(err, tc.wantErr) {
				t.Fatalf("got %v, %v; want %v", r, err, tc.wantErr)
			}
		})
	}
}

func TestStatStrings(t *testing.T) {
	cases := []struct {
		got, want string
	}{
		{Success.String(), "SUCCESS"},
		{ProgUnavail.String(), "PROG_UNAVAIL"},
		{ProgMismatch.String(), "PROG_MISMATCH"},
		{ProcUnavail.String(), "PROC_UNAVAIL"},
		{GarbageArgs.String(), "GARBAGE_ARGS"},
		{SystemErr.String(), "SYSTEM_ERR"},
		{AcceptStat(9).String(), "accept_stat(9)"},
		{AuthOK.String(), "AUTH_OK"},
		{AuthBadCred.String(), "AUTH_BADCRED"},
		{AuthRejectedCred.String(), "AUTH_REJECTEDCRED"},
		{AuthBadVerf.String(), "AUTH_BADVERF"},
		{AuthRejectedVerf.String(), "AUTH_REJECTEDVERF"},
		{AuthTooWeak.String(), "AUTH_TOOWEAK"},
		{AuthInvalidResp.String(), "AUTH_INVALIDRESP"},
		{AuthFailed.String(), "AUTH_FAILED"},
		{AuthStat(13).String(), "auth_stat(13)"},
	}
	for _, tc := range cases {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}
