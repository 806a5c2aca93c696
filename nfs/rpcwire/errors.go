package rpcwire

import "errors"

// Sentinel errors; match them with errors.Is.
var (
	// ErrShort reports input that ends before an XDR field is complete.
	ErrShort = errors.New("input too short")
	// ErrTooLong reports a length field above its limit.
	ErrTooLong = errors.New("length above limit")
	// ErrInvalid reports a field whose value is not allowed, such as a bool other than 0 or 1.
	ErrInvalid = errors.New("invalid value")
	// ErrRecordTooLarge reports a record longer than the reader's limit; the stream must be closed.
	ErrRecordTooLarge = errors.New("record too large")
	// ErrTooManyFragments reports a record split into more than MaxFragments fragments; the stream must be closed.
	ErrTooManyFragments = errors.New("record has too many fragments")
	// ErrGarbage reports a call record too short or malformed for its RPC header.
	ErrGarbage = errors.New("garbage call header")
	// ErrNotCall reports a record whose message type is not CALL; the server drops it.
	ErrNotCall = errors.New("message is not a call")
	// ErrRPCMismatch reports a call whose RPC version is not 2; the server answers RPC_MISMATCH.
	ErrRPCMismatch = errors.New("rpc version mismatch")
	// ErrBadCred reports a malformed or oversized credential; the server answers AUTH_BADCRED.
	ErrBadCred = errors.New("bad credential")
	// ErrBadVerf reports an oversized verifier; the server answers AUTH_BADVERF.
	ErrBadVerf = errors.New("bad verifier")
)
