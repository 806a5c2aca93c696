//go:build !hanfsfault_nodrc

package nfs

// faultNoDRC is the test-only fault of the hanfsfault_nodrc build: off in
// every normal build.
const faultNoDRC = false
