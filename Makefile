# hanfs: build, test and run. `make help` lists the targets.

GO        ?= go
export PATH := /usr/local/go/bin:$(PATH)
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
FUZZTIME  ?= 30s
DATA      ?= ./data
IMAGE     ?= $(DATA)/hanfs.img
MNT       ?= $(DATA)/mnt
IMAGESIZE ?= 8GiB
LISTEN    ?= 127.0.0.1:2049
METRICS   ?= 127.0.0.1:9049

# command:package pairs that the tests run; installed with apt-get when missing.
TEST_TOOLS := git:git tar:tar diff:diffutils cp:coreutils nfs-ls:libnfs-utils vagrant:vagrant ip:iproute2 nsenter:util-linux

.PHONY: all help build test deps lint bench run run-single mount-local fuzz clean soak

all: build

help:
	@echo "make build   build bin/hanfsd"
	@echo "make test    install what the tests need, then go test -race ./..."
	@echo "make lint    gofmt and go vet"
	@echo "make bench   run the benchmarks in bench/"
	@echo "make run     format $(IMAGE) if missing and run a two-node cluster serving it on $(LISTEN) (foreground)"
	@echo "make run-single  serve $(IMAGE) from one node"
	@echo "make mount-local  FUSE-mount $(IMAGE) on $(MNT) instead (foreground)"
	@echo "make fuzz    run every Fuzz target for FUZZTIME=$(FUZZTIME)"
	@echo "make soak    long failover drill: FAILURES=$(FAILURES) injected failures, report in $(SOAK_JSON)"
	@echo "make clean   remove bin/ (data/ is kept; remove it yourself)"

build:
	@command -v $(GO) >/dev/null || { echo "go is not installed (expected in /usr/local/go/bin)"; exit 1; }
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/hanfsd ./cmd/hanfsd

deps:
	@command -v $(GO) >/dev/null || { echo "go is not installed (expected in /usr/local/go/bin)"; exit 1; }
	@missing=""; \
	for pair in $(TEST_TOOLS); do \
		command -v "$${pair%%:*}" >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing:$$missing"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
		else \
			echo "missing test tools:$$missing (install them; the tests that need them are skipped)"; \
		fi; \
	fi

# The FUSE tests need root and /dev/fuse; without them they are skipped.
test: deps
	$(GO) test -race -count=1 -timeout 15m ./...

lint:
	@out=$$(gofmt -l $$(git ls-files -co --exclude-standard '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt -l reports:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

bench:
	@if [ -d bench ]; then $(GO) test -run='^$$' -bench=. ./bench/...; else echo "no bench/ directory yet"; fi

run: build
	@mkdir -p $(DATA)
	@if [ ! -e $(IMAGE) ]; then \
		echo "==> creating a sparse $(IMAGESIZE) image $(IMAGE) and formatting it"; \
		bin/hanfsd format --disk $(IMAGE) --size $(IMAGESIZE); \
	fi
	@echo "==> starting a two-node cluster on $(IMAGE), NFS on $(LISTEN) (Ctrl-C stops it)"
	bin/hanfsd lab --disk $(IMAGE) --nodes 2 --listen $(LISTEN)

# run-single serves the image from one node only.
run-single: build
	@mkdir -p $(DATA)
	@if [ ! -e $(IMAGE) ]; then bin/hanfsd format --disk $(IMAGE) --size $(IMAGESIZE); fi
	bin/hanfsd serve --disk $(IMAGE) --listen $(LISTEN) --metrics $(METRICS) --export "/ 127.0.0.0/8 rw,no_root_squash"

# mount-local FUSE-mounts the image on $(MNT) instead of serving it.
mount-local: build
	@mkdir -p $(MNT) 2>/dev/null || true  # a dead mount left by kill -9 is cleaned up by hanfsd mount
	@if [ ! -e $(IMAGE) ]; then bin/hanfsd format --disk $(IMAGE) --size $(IMAGESIZE); fi
	bin/hanfsd mount --disk $(IMAGE) $(MNT)

# soak runs the long failover drill (docs/soak.md): a local two-node cluster,
# a checked NFS workload and FAILURES injected failures of every kind. The
# short soak is part of make test (test/soak_test.go).
FAILURES      ?= 1000
SOAK_INTERVAL ?= 1s
SOAK_SEED     ?= 1
SOAK_JSON     ?= docs/soak-report.json
SOAK_DIR      ?= $(DATA)/soak
soak: build
	bin/hanfsd soak --failures $(FAILURES) --interval $(SOAK_INTERVAL) --seed $(SOAK_SEED) --dir $(SOAK_DIR) --json $(SOAK_JSON)

# Runs each Fuzz target of every package for FUZZTIME.
fuzz:
	@set -e; \
	for f in $$(grep -rl --include='*_test.go' '^func Fuzz' . | sort); do \
		dir=$$(dirname $$f); \
		for name in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do \
			echo "==> $$dir $$name ($(FUZZTIME))"; \
			$(GO) test -run='^$$' -fuzz="^$$name\$$" -fuzztime=$(FUZZTIME) $$dir; \
		done; \
	done

clean:
	rm -rf bin/
	$(GO) clean -testcache
