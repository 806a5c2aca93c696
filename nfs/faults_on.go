//go:build hanfsfault_nodrc

package nfs

// faultNoDRC plants a deliberate fault for the soak checker's tests (build
// tag hanfsfault_nodrc): non-idempotent requests bypass the duplicate-request
// cache, so no record is written or looked up and a retransmission runs again.
const faultNoDRC = true
