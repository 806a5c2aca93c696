// Package shareddisk gives access to the disk that the hanfs servers share: a
// block device or an image file opened with O_DIRECT so that every read sees
// what the other node wrote, an in-memory disk for tests, the region map
// (Layout) that Format writes, and the superblock that records it.
//
// Every offset and length is a multiple of BlockSize. Regions are addressed in
// blocks of BlockSize bytes; see Layout and docs/ondisk-format.md.
package shareddisk
