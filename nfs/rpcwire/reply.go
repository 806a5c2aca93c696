package rpcwire

import (
	"encoding/binary"
	"fmt"
	"strconv"
)

// AcceptStat is the status of an accepted call (accept_stat).
type AcceptStat uint32

// Accept statuses (RFC 5531 accept_stat).
const (
	// Success is SUCCESS: the call executed; the body holds the results.
	Success AcceptStat = 0
	// ProgUnavail is PROG_UNAVAIL: the program is not served.
	ProgUnavail AcceptStat = 1
	// ProgMismatch is PROG_MISMATCH: the version is not served; the body holds the lowest and highest served.
	ProgMismatch AcceptStat = 2
	// ProcUnavail is PROC_UNAVAIL: the procedure does not exist.
	ProcUnavail AcceptStat = 3
	// GarbageArgs is GARBAGE_ARGS: the arguments could not be decoded.
	GarbageArgs AcceptStat = 4
	// SystemErr is SYSTEM_ERR: the server failed, such as on a memory allocation.
	SystemErr AcceptStat = 5
)

// String returns the RFC name of s.
func (s AcceptStat) String() string {
	switch s {
	case Success:
		return "SUCCESS"
	case ProgUnavail:
		return "PROG_UNAVAIL"
	case ProgMismatch:
		return "PROG_MISMATCH"
	case ProcUnavail:
		return "PROC_UNAVAIL"
	case GarbageArgs:
		return "GARBAGE_ARGS"
	case SystemErr:
		return "SYSTEM_ERR"
	}
	return "accept_stat(" + strconv.FormatUint(uint64(s), 10) + ")"
}

// AuthStat is the reason of an authentication failure (auth_stat).
type AuthStat uint32

// Authentication statuses (RFC 5531 auth_stat).
const (
	// AuthOK is AUTH_OK: success, never sent in a denied reply.
	AuthOK AuthStat = 0
	// AuthBadCred is AUTH_BADCRED: bad credential (seal broken).
	AuthBadCred AuthStat = 1
	// AuthRejectedCred is AUTH_REJECTEDCRED: the client must begin a new session.
	AuthRejectedCred AuthStat = 2
	// AuthBadVerf is AUTH_BADVERF: bad verifier (seal broken).
	AuthBadVerf AuthStat = 3
	// AuthRejectedVerf is AUTH_REJECTEDVERF: verifier expired or replayed.
	AuthRejectedVerf AuthStat = 4
	// AuthTooWeak is AUTH_TOOWEAK: rejected for security reasons.
	AuthTooWeak AuthStat = 5
	// AuthInvalidResp is AUTH_INVALIDRESP: bogus response verifier.
	AuthInvalidResp AuthStat = 6
	// AuthFailed is AUTH_FAILED: reason unknown.
	AuthFailed AuthStat = 7
)

// String returns the RFC name of s.
func (s AuthStat) String() string {
	switch s {
	case AuthOK:
		return "AUTH_OK"
	case AuthBadCred:
		return "AUTH_BADCRED"
	case AuthRejectedCred:
		return "AUTH_REJECTEDCRED"
	case AuthBadVerf:
		return "AUTH_BADVERF"
	case AuthRejectedVerf:
		return "AUTH_REJECTEDVERF"
	case AuthTooWeak:
		return "AUTH_TOOWEAK"
	case AuthInvalidResp:
		return "AUTH_INVALIDRESP"
	case AuthFailed:
		return "AUTH_FAILED"
	}
	return "auth_stat(" + strconv.FormatUint(uint64(s), 10) + ")"
}

// RejectStat is the reason a call was denied (reject_stat).
type RejectStat uint32

// Reject statuses (RFC 5531 reject_stat).
const (
	// RejectRPCMismatch is RPC_MISMATCH: the RPC version is not 2; the reply holds the lowest and highest served.
	RejectRPCMismatch RejectStat = 0
	// RejectAuthError is AUTH_ERROR: authentication failed; the reply holds an AuthStat.
	RejectAuthError RejectStat = 1
)

// reply_stat values.
const (
	msgAccepted = 0
	msgDenied   = 1
)

// acceptedHeaderLen is the size of an accepted reply header with an empty AUTH_NONE verifier.
const acceptedHeaderLen = 6 * 4

// AppendAcceptedHeader appends to dst the header of a SUCCESS reply to xid,
// with an AUTH_NONE verifier, so that the results can be encoded right after it.
func AppendAcceptedHeader(dst []byte, xid uint32) []byte {
	return appendAccepted(dst, xid, Success)
}

// appendAccepted appends an accepted reply header with status stat.
func appendAccepted(dst []byte, xid uint32, stat AcceptStat) []byte {
	dst = binary.BigEndian.AppendUint32(dst, xid)
	dst = binary.BigEndian.AppendUint32(dst, msgReply)
	dst = binary.BigEndian.AppendUint32(dst, msgAccepted)
	dst = binary.BigEndian.AppendUint32(dst, FlavorNone)
	dst = binary.BigEndian.AppendUint32(dst, 0)
	return binary.BigEndian.AppendUint32(dst, uint32(stat))
}

// AcceptedReply returns a reply record body (without record mark) accepting
// xid with status stat, an AUTH_NONE verifier, and body after the status.
// For ProgMismatch use ProgMismatchReply, whose body the status requires.
func AcceptedReply(xid uint32, stat AcceptStat, body []byte) []byte {
	dst := make([]byte, 0, acceptedHeaderLen+len(body))
	return append(appendAccepted(dst, xid, stat), body...)
}

// ProgMismatchReply returns a PROG_MISMATCH reply to xid naming the lowest and highest versions served.
func ProgMismatchReply(xid, low, high uint32) []byte {
	dst := make([]byte, 0, acceptedHeaderLen+8)
	dst = appendAccepted(dst, xid, ProgMismatch)
	dst = binary.BigEndian.AppendUint32(dst, low)
	return binary.BigEndian.AppendUint32(dst, high)
}

// DeniedRPCMismatch returns an RPC_MISMATCH reply to xid naming version 2 as the lowest and highest served.
func DeniedRPCMismatch(xid uint32) []byte {
	dst := appendDenied(make([]byte, 0, 6*4), xid, RejectRPCMismatch)
	dst = binary.BigEndian.AppendUint32(dst, RPCVersion)
	return binary.BigEndian.AppendUint32(dst, RPCVersion)
}

// DeniedAuth returns an AUTH_ERROR reply to xid with reason stat.
func DeniedAuth(xid uint32, stat AuthStat) []byte {
	dst := appendDenied(make([]byte, 0, 5*4), xid, RejectAuthError)
	return binary.BigEndian.AppendUint32(dst, uint32(stat))
}

// appendDenied appends a denied reply header with reason rs.
func appendDenied(dst []byte, xid uint32, rs RejectStat) []byte {
	dst = binary.BigEndian.AppendUint32(dst, xid)
	dst = binary.BigEndian.AppendUint32(dst, msgReply)
	dst = binary.BigEndian.AppendUint32(dst, msgDenied)
	return binary.BigEndian.AppendUint32(dst, uint32(rs))
}

// Reply is a parsed RPC reply.
type Reply struct {
	// XID is the transaction id of the call answered.
	XID uint32
	// Accepted is true for MSG_ACCEPTED, false for MSG_DENIED.
	Accepted bool
	// VerfFlavor is the verifier's flavor, for accepted replies.
	VerfFlavor uint32
	// Verf is the verifier's body, for accepted replies; it aliases the record.
	Verf []byte
	// AcceptStat is the status of an accepted reply.
	AcceptStat AcceptStat
	// RejectStat is the reason of a denied reply.
	RejectStat RejectStat
	// Low is the lowest version served, for PROG_MISMATCH and RPC_MISMATCH.
	Low uint32
	// High is the highest version served, for PROG_MISMATCH and RPC_MISMATCH.
	High uint32
	// AuthStat is the reason of an AUTH_ERROR denial.
	AuthStat AuthStat
	// Body is the rest of an accepted reply, the results for Success; it aliases the record.
	Body []byte
}

// ParseReply parses an RPC reply record. It returns errors wrapping ErrShort
// for a truncated reply, ErrInvalid for a message that is not a reply or an
// unknown reply or reject status, and ErrTooLong for a verifier over
// MaxAuthBytes. A denied reply with trailing bytes is accepted.
func ParseReply(rec []byte) (*Reply, error) {
	var d Decoder
	d.Reset(rec)
	var r Reply
	var err error
	fail := func(what string, err error) (*Reply, error) {
		return nil, fmt.Errorf("rpcwire: reply xid %#x: %s: %w", r.XID, what, err)
	}
	if r.XID, err = d.Uint32(); err != nil {
		return fail("xid", err)
	}
	mtype, err := d.Uint32()
	if err != nil {
		return fail("message type", err)
	}
	if mtype != msgReply {
		return fail("message type", fmt.Errorf("%d is not REPLY: %w", mtype, ErrInvalid))
	}
	rstat, err := d.Uint32()
	if err != nil {
		return fail("reply status", err)
	}
	switch rstat {
	case msgAccepted:
		r.Accepted = true
		if r.VerfFlavor, err = d.Uint32(); err != nil {
			return fail("verifier flavor", err)
		}
		if r.Verf, err = d.Opaque(MaxAuthBytes); err != nil {
			return fail("verifier", err)
		}
		st, err := d.Uint32()
		if err != nil {
			return fail("accept status", err)
		}
		r.AcceptStat = AcceptStat(st)
		if r.AcceptStat == ProgMismatch {
			if r.Low, err = d.Uint32(); err != nil {
				return fail("lowest version", err)
			}
			if r.High, err = d.Uint32(); err != nil {
				return fail("highest version", err)
			}
		}
		r.Body = d.Rest()
	case msgDenied:
		rs, err := d.Uint32()
		if err != nil {
			return fail("reject status", err)
		}
		r.RejectStat = RejectStat(rs)
		switch r.RejectStat {
		case RejectRPCMismatch:
			if r.Low, err = d.Uint32(); err != nil {
				return fail("lowest version", err)
			}
			if r.High, err = d.Uint32(); err != nil {
				return fail("highest version", err)
			}
		case RejectAuthError:
			st, err := d.Uint32()
			if err != nil {
				return fail("auth status", err)
			}
			r.AuthStat = AuthStat(st)
		default:
			return fail("reject status", fmt.Errorf("%d: %w", rs, ErrInvalid))
		}
	default:
		return fail("reply status", fmt.Errorf("%d: %w", rstat, ErrInvalid))
	}
	return &r, nil
}
