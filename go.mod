module github.com/hanfs/hanfs

go 1.26.8
