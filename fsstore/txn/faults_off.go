//go:build !hanfsfault_earlyreply

package txn

// faultEarlyReply is the test-only fault of the hanfsfault_earlyreply build:
// off in every normal build.
const faultEarlyReply = false
