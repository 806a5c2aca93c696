package rpcwire

import (
	"errors"
	"fmt"
	"unsafe"
)

// RPC protocol constants (RFC 5531).
const (
	// RPCVersion is the only ONC RPC version served.
	RPCVersion = 2
	// MaxAuthBytes is the largest body of a credential or verifier.
	MaxAuthBytes = 400
	// MaxMachineName is the longest machine name in an AUTH_UNIX credential.
	MaxMachineName = 255
	// MaxGIDs is the largest number of supplementary groups in an AUTH_UNIX credential.
	MaxGIDs = 16
	// FlavorNone is the AUTH_NONE authentication flavor.
	FlavorNone = 0
	// FlavorUnix is the AUTH_UNIX (AUTH_SYS) authentication flavor.
	FlavorUnix = 1
	// msgCall and msgReply are the msg_type values.
	msgCall  = 0
	msgReply = 1
	// inlineMachine is the longest machine name that ParseCall stores without a separate allocation.
	inlineMachine = 64
)

// AuthUnix is an AUTH_UNIX (AUTH_SYS) credential.
type AuthUnix struct {
	// Stamp is an arbitrary id chosen by the client.
	Stamp uint32
	// Machine is the client's host name, at most MaxMachineName bytes.
	Machine string
	// UID is the caller's effective user id.
	UID uint32
	// GID is the caller's effective group id.
	GID uint32
	// GIDs are the caller's supplementary groups, at most MaxGIDs.
	GIDs []uint32
}

// Call is a parsed RPC call. Its byte slices alias the record it was parsed
// from; Unix, and the strings and group list in it, do not.
type Call struct {
	// XID is the transaction id, to be echoed in the reply.
	XID uint32
	// RPCVers is the RPC version, 2 unless ParseCall returned ErrRPCMismatch.
	RPCVers uint32
	// Prog is the program number.
	Prog uint32
	// Vers is the program version.
	Vers uint32
	// Proc is the procedure number.
	Proc uint32
	// CredFlavor is the credential's authentication flavor.
	CredFlavor uint32
	// Cred is the credential's body.
	Cred []byte
	// VerfFlavor is the verifier's authentication flavor.
	VerfFlavor uint32
	// Verf is the verifier's body.
	Verf []byte
	// Unix is the decoded credential if CredFlavor is FlavorUnix, else nil.
	Unix *AuthUnix
	// Args are the procedure's arguments: the rest of the record.
	Args []byte
}

// unixCall holds a Call with an AUTH_UNIX credential in one allocation.
type unixCall struct {
	call    Call
	unix    AuthUnix
	gids    [MaxGIDs]uint32
	machine [inlineMachine]byte
}

// ParseCall parses an RPC call record. The returned Call's byte slices
// alias rec.
//
// On error, the Call holds what could be read, and is nil only if rec is
// shorter than an xid, when there is nobody to answer. The errors are:
// ErrGarbage (wrapping the XDR error) for a record too short for its header;
// ErrNotCall for another message type (the call holds only XID); ErrRPCMismatch
// for an RPC version other than 2 (the call holds XID and RPCVers only);
// ErrBadCred for a credential body over MaxAuthBytes, an AUTH_NONE
// credential with a body, or an AUTH_UNIX body that does not decode exactly
// within its limits; ErrBadVerf for a verifier body over MaxAuthBytes.
// Other credential flavors are left to the caller in CredFlavor and Cred.
func ParseCall(rec []byte) (*Call, error) {
	var d Decoder
	d.Reset(rec)
	xid, err := d.Uint32()
	if err != nil {
		return nil, fmt.Errorf("rpcwire: call xid: %w: %w", ErrGarbage, err)
	}
	c := Call{XID: xid}
	mtype, err := d.Uint32()
	if err != nil {
		return garbage(c, "message type", err)
	}
	if mtype != msgCall {
		return onHeap(c), fmt.Errorf("rpcwire: call xid %#x: message type %d: %w", xid, mtype, ErrNotCall)
	}
	if c.RPCVers, err = d.Uint32(); err != nil {
		return garbage(c, "rpc version", err)
	}
	if c.RPCVers != RPCVersion {
		return onHeap(c), fmt.Errorf("rpcwire: call xid %#x: rpc version %d: %w", xid, c.RPCVers, ErrRPCMismatch)
	}
	if c.Prog, err = d.Uint32(); err != nil {
		return garbage(c, "program", err)
	}
	if c.Vers, err = d.Uint32(); err != nil {
		return garbage(c, "version", err)
	}
	if c.Proc, err = d.Uint32(); err != nil {
		return garbage(c, "procedure", err)
	}
	if c.CredFlavor, err = d.Uint32(); err != nil {
		return garbage(c, "credential flavor", err)
	}
	// An oversized credential or verifier is skipped, so that a truncated
	// header is reported as ErrGarbage first; then the credential comes first.
	var credErr, verfErr error
	if c.Cred, credErr, err = opaqueAuth(&d); err != nil {
		return garbage(c, "credential", err)
	}
	if c.VerfFlavor, err = d.Uint32(); err != nil {
		return garbage(c, "verifier flavor", err)
	}
	if c.Verf, verfErr, err = opaqueAuth(&d); err != nil {
		return garbage(c, "verifier", err)
	}
	c.Args = d.Rest()
	if credErr != nil {
		return onHeap(c), fmt.Errorf("rpcwire: call xid %#x: credential: %w: %w", xid, ErrBadCred, credErr)
	}
	if verfErr != nil {
		return onHeap(c), fmt.Errorf("rpcwire: call xid %#x: verifier: %w: %w", xid, ErrBadVerf, verfErr)
	}
	switch c.CredFlavor {
	case FlavorNone:
		if len(c.Cred) != 0 {
			return onHeap(c), fmt.Errorf("rpcwire: call xid %#x: AUTH_NONE credential of %d bytes: %w", xid, len(c.Cred), ErrBadCred)
		}
	case FlavorUnix:
		u := &unixCall{call: c}
		if err := decodeAuthUnix(c.Cred, u); err != nil {
			return &u.call, fmt.Errorf("rpcwire: call xid %#x: AUTH_UNIX credential: %w: %w", xid, ErrBadCred, err)
		}
		u.call.Unix = &u.unix
		return &u.call, nil
	}
	return onHeap(c), nil
}

// opaqueAuth reads the body of an opaque_auth. A body over MaxAuthBytes is
// skipped and reported in tooLong, with a nil body; err reports a truncation.
func opaqueAuth(d *Decoder) (body []byte, tooLong, err error) {
	body, err = d.Opaque(MaxAuthBytes)
	if err == nil || !errors.Is(err, ErrTooLong) {
		return body, nil, err
	}
	tooLong = err
	if _, err = d.Opaque(-1); err != nil {
		return nil, nil, err
	}
	return nil, tooLong, nil
}

// onHeap returns a heap copy of c, so that ParseCall's local Call can stay on the stack.
func onHeap(c Call) *Call {
	p := new(Call)
	*p = c
	return p
}

// garbage returns c and an ErrGarbage error for the header field what.
func garbage(c Call, what string, err error) (*Call, error) {
	return onHeap(c), fmt.Errorf("rpcwire: call xid %#x: %s: %w: %w", c.XID, what, ErrGarbage, err)
}

// decodeAuthUnix decodes an AUTH_UNIX body, which must be exactly consumed,
// into u.unix, storing the groups and a short machine name in u itself.
func decodeAuthUnix(body []byte, u *unixCall) error {
	var d Decoder
	d.Reset(body)
	a := &u.unix
	var err error
	if a.Stamp, err = d.Uint32(); err != nil {
		return fmt.Errorf("stamp: %w", err)
	}
	mach, err := d.Opaque(MaxMachineName)
	if err != nil {
		return fmt.Errorf("machine name: %w", err)
	}
	if a.UID, err = d.Uint32(); err != nil {
		return fmt.Errorf("uid: %w", err)
	}
	if a.GID, err = d.Uint32(); err != nil {
		return fmt.Errorf("gid: %w", err)
	}
	n, err := d.Uint32()
	if err != nil {
		return fmt.Errorf("group count: %w", err)
	}
	if n > MaxGIDs {
		return fmt.Errorf("%d groups at offset %d, limit %d: %w", n, d.Pos()-4, MaxGIDs, ErrTooLong)
	}
	for i := range n {
		if u.gids[i], err = d.Uint32(); err != nil {
			return fmt.Errorf("group %d: %w", i, err)
		}
	}
	if d.Remaining() != 0 {
		return fmt.Errorf("%d bytes after the credential at offset %d: %w", d.Remaining(), d.Pos(), ErrInvalid)
	}
	a.GIDs = u.gids[:n:n]
	switch {
	case len(mach) == 0:
		a.Machine = ""
	case len(mach) <= len(u.machine):
		// u.machine is written once, here, and never again: the string
		// is immutable as Go requires, and keeps u alive as long as it is.
		k := copy(u.machine[:], mach)
		a.Machine = unsafe.String(&u.machine[0], k)
	default:
		a.Machine = string(mach)
	}
	return nil
}

// BuildCall returns a call record body (without record mark) with an
// AUTH_NONE verifier and cred as AUTH_UNIX credential, or AUTH_NONE if cred
// is nil. It encodes cred as given, beyond the limits ParseCall enforces, so
// that tests can build malformed calls.
func BuildCall(xid, prog, vers, proc uint32, cred *AuthUnix, args []byte) []byte {
	var e Encoder
	size := 10*4 + len(args)
	if cred != nil {
		size += 5*4 + len(cred.Machine) + 3 + 4*len(cred.GIDs)
	}
	e.Reset(make([]byte, 0, size))
	e.Uint32(xid)
	e.Uint32(msgCall)
	e.Uint32(RPCVersion)
	e.Uint32(prog)
	e.Uint32(vers)
	e.Uint32(proc)
	if cred == nil {
		e.Uint32(FlavorNone)
		e.Uint32(0)
	} else {
		e.Uint32(FlavorUnix)
		e.Opaque(AppendAuthUnix(nil, cred))
	}
	e.Uint32(FlavorNone)
	e.Uint32(0)
	return append(e.Bytes(), args...)
}

// AppendAuthUnix appends the XDR body of an AUTH_UNIX credential to dst, without checking limits.
func AppendAuthUnix(dst []byte, a *AuthUnix) []byte {
	e := Encoder{buf: dst}
	e.Uint32(a.Stamp)
	e.String(a.Machine)
	e.Uint32(a.UID)
	e.Uint32(a.GID)
	e.Uint32(uint32(len(a.GIDs)))
	for _, g := range a.GIDs {
		e.Uint32(g)
	}
	return e.Bytes()
}
