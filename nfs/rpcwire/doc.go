// Package rpcwire is the ONC RPC version 2 (RFC 5531) wire layer of the NFS
// server: TCP record marking, XDR (RFC 4506) primitives, call parsing and
// reply building.
//
// The package does no scheduling and keeps no state beyond the values a
// caller creates. Every parser returns an error, never panics, whatever its
// input. Errors wrap the sentinels in errors.go; match them with errors.Is.
//
// A server loop looks like this:
//
//	rr := rpcwire.NewRecordReader(bufio.NewReader(conn), rpcwire.DefaultMaxRecord)
//	for {
//		rec, err := rr.Next() // any error: close the connection
//		...
//		call, err := rpcwire.ParseCall(rec)
//		switch {
//		case errors.Is(err, rpcwire.ErrRPCMismatch):
//			reply = rpcwire.DeniedRPCMismatch(call.XID)
//		case errors.Is(err, rpcwire.ErrBadCred):
//			reply = rpcwire.DeniedAuth(call.XID, rpcwire.AuthBadCred)
//		case errors.Is(err, rpcwire.ErrBadVerf):
//			reply = rpcwire.DeniedAuth(call.XID, rpcwire.AuthBadVerf)
//		case errors.Is(err, rpcwire.ErrGarbage) && call != nil:
//			reply = rpcwire.AcceptedReply(call.XID, rpcwire.GarbageArgs, nil)
//		case err != nil:
//			continue // nothing to answer: drop
//		}
//		...
//	}
package rpcwire
