//go:build !hanfsfault_nofence

package cluster

// faultNoFence is the test-only fault of the hanfsfault_nofence build: off
// in every normal build.
const faultNoFence = false
