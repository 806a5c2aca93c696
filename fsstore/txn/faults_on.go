//go:build hanfsfault_earlyreply

package txn

// faultEarlyReply plants a deliberate fault for the soak checker's tests
// (build tag hanfsfault_earlyreply): Commit.Wait returns before the group is
// written and flushed, so replies go out before the change is durable.
const faultEarlyReply = true
