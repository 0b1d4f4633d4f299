# gvs — build, test, benchmark. `make test` is what CI runs (.ci/run).
SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
STATICCHECK_VERSION := v0.8.2
STATICCHECK := $(BIN)/staticcheck
PKGS := ./...
# The DPDK driver (build tag dpdk; cgo against Debian's libdpdk-dev) and what
# builds on it. Its tests are a test binary of their own: EAL starts once
# per process.
DPDK_PKGS := ./driver/dpdk/... ./cmd/gvsd/...
# Run a recipe line only where libdpdk is installed; CI (CI=true) must have
# it (deps-system installs it as root).
IF_DPDK = if pkg-config --exists libdpdk 2>/dev/null; then
NO_DPDK = else if [ -n "$$CI" ]; then echo "libdpdk-dev missing (make deps-system as root)"; exit 1; fi; \
	echo "skipping the DPDK build tag: libdpdk-dev not installed (make deps-system as root)"; fi
# Packages with goroutines or shared state: run under the race detector.
RACE_PKGS := ./driver/... ./pmd/... ./lb/... ./ctl/... ./tests/lab/... ./health/... ./bench/trafficgen/...
FUZZTIME ?= 60s

.PHONY: all build test check fmt-check vet staticcheck unit race bench bench-hot fuzz demo clean deps deps-system dpdk-test bench-dpdk

all: build

deps:
	$(GO) mod download

build: deps
	$(GO) build $(PKGS)

$(STATICCHECK):
	GOBIN=$(BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)
	@$(IF_DPDK) $(GO) vet -tags dpdk $(DPDK_PKGS) ./tests/...; $(NO_DPDK)

staticcheck: $(STATICCHECK)
	$(STATICCHECK) $(PKGS)
	@$(IF_DPDK) $(STATICCHECK) -tags dpdk $(DPDK_PKGS) ./tests/...; $(NO_DPDK)

check: fmt-check vet staticcheck

# Plain run of every package, then the concurrent ones again with -race.
unit: dpdk-test
	$(GO) test -count=1 $(PKGS)

# DPDK tests (EAL with --no-huge --no-pci, net_ring/net_null/net_pcap/net_tap
# devices in process), then gvsd with driver = "dpdk" end to end in
# namespaces (net_af_packet on the gvs namespace's veth).
dpdk-test:
	@$(IF_DPDK) set -e; $(GO) test -count=1 -tags dpdk ./driver/dpdk/...; \
	  $(GO) test -count=1 -tags dpdk -run '^TestDPDK' ./tests/; $(NO_DPDK)

race:
	$(GO) test -count=1 -race $(RACE_PKGS)
	@$(IF_DPDK) $(GO) test -count=1 -race -tags dpdk ./driver/dpdk/...; $(NO_DPDK)

test: deps deps-system check unit race
	@echo "make test: all checks and tests passed"

# Hot-path microbenchmarks (ns/pkt, allocs/op). Compare runs with benchstat.
bench-hot:
	$(GO) test -run '^$$' -bench 'BenchmarkPipeline|BenchmarkWorkers' -benchmem ./pipeline ./pmd
	$(GO) test -run '^$$' -bench 'BenchmarkSessionTable|BenchmarkMaglevBuild' -benchmem ./lb

# The whole-system benchmark (root: namespaces; under 10 minutes on 2 cores):
# packet rate (gvs afxdp/afpacket/dpdk, nftables numgen/jhash, bare XDP_TX and
# AF_XDP ceilings), wrk new connections and keep-alive requests (direct, gvs,
# nftables, HAProxy), latency with trafficgen, hot-path microbenchmarks; rounds
# alternated, medians, ratios in one report: bench-out/report.txt, .json, *.svg.
# gvs-dpdk joins where libdpdk-dev is installed (deps-system installs it).
BENCH_OUT ?= bench-out
bench: deps deps-system
	@tags=""; if pkg-config --exists libdpdk 2>/dev/null; then tags="-tags dpdk"; fi; \
	$(GO) build $$tags -o $(BIN)/gvs-bench ./cmd/gvs-bench && \
	$(BIN)/gvs-bench all --out $(BENCH_OUT) $(BENCH_FLAGS)

# DPDK benchmark note (root, libdpdk-dev, dpdk-dev): testpmd io forwarding,
# the bare poll loop through gvs's binding and gvs's pipeline on net_null, as
# Mpps per core and ratios.
bench-dpdk: deps
	bash scripts/bench-dpdk.sh

# Bounded fuzzing of the packet parser (not part of `make test`).
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./pipeline

# Debian packages the demo, the namespace tests and the benchmarks use
# (installed when missing; needs root, as the namespaces do).
SYSTEM_PKGS := iproute2 ethtool curl nginx-light procps libdpdk-dev dpdk-dev pkg-config keepalived bird2 nftables haproxy wrk
deps-system:
	@missing=""; for p in $(SYSTEM_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then echo "installing:$$missing"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else echo "not root: cannot install$$missing"; fi; \
	fi

demo: deps deps-system
	BIN=$(BIN) bash scripts/demo.sh

clean:
	rm -rf $(BIN)
