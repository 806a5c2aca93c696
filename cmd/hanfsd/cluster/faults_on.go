//go:build hanfsfault_nofence

package cluster

// faultNoFence plants a deliberate fault for the soak checker's tests (build
// tag hanfsfault_nofence): the write gates of the store disk, the store and
// the NFS server never refuse, so a demoted primary keeps writing.
const faultNoFence = true
