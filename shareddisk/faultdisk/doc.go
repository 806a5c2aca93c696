// Package faultdisk wraps a shareddisk.Disk for crash and failure tests. Its
// writes go to a volatile cache until Flush, like a disk's write cache; a
// power cut keeps a chosen subset of the cached writes, possibly torn at a
// 512-byte sector boundary, and kills the disk. It can also fail or stall
// any call.
package faultdisk
