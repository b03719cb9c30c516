# Jellyfish build, test and benchmark targets.
GO        ?= go
TAGS      := noselfupdate
BIN       := bin/jellyfish
PKGS      := ./...
# A fuzz target runs for this long in `make fuzz`.
FUZZTIME  ?= 10s
BENCHTIME ?= 1s
# bench-codec repeats every benchmark and summarises medians: this VM's
# figures swing by a third between runs.
CODEC_BENCHTIME ?= 0.5s
BENCHCOUNT ?= 3

.PHONY: all build test test-short lint fuzz bench-codec bench-segsize mem-codec demo clean

all: build

build:
	$(GO) build -tags $(TAGS) -o $(BIN) ./cmd/jellyfish

# The whole test suite: unit tests, integration tests on in-process networks.
# -count=1: several suites run the jellyfish binary they build, which the
# test cache cannot see, so results are never reused.
test: lint
	$(GO) test -tags $(TAGS) -count=1 -timeout 30m $(PKGS)

# The random-interruption check of the fault tests at length: syncs ended
# at random moments by SIGINT, SIGTERM or SIGKILL, each checked from another
# device. INTERRUPT_SEED repeats a run's choices.
INTERRUPTS     ?= 200
INTERRUPT_SEED ?=
SEED ?=
# The lifetime simulation at length: a year on 40 nodes, 10 % of them
# leaving for good each month, with and without the owner's node. make
# test runs 90 days on 20. SEED= replays a run.
.PHONY: test-long
test-long:
	JELLYFISH_LIFETIME=long JELLYFISH_SIM_SEED=$(SEED) \
	  $(GO) test -tags $(TAGS) -count=1 -timeout 60m -v -run '^TestLifetime' ./cmd/jellyfish/internal/lifetime/

# The hostile-peer suite: each attack runs from a separate process held to
# half a core by a CPU cgroup (needs root), for HOSTILE_DURATION, while an
# honest client stores and reads back 100 MiB rounds on the attacked
# holder. HOSTILE=half-headers,slow-puts picks attacks (1: all).
HOSTILE          ?= 1
HOSTILE_DURATION ?= 5m
.PHONY: bench-hostile
bench-hostile:
	JELLYFISH_HOSTILE=$(HOSTILE) JELLYFISH_HOSTILE_DURATION=$(HOSTILE_DURATION) \
	  $(GO) test -tags $(TAGS) -count=1 -timeout 90m -v -run '^TestHostileSuite$$' ./p2pnode/shardproto/

.PHONY: test-interrupts test-known-bugs
test-interrupts:
	JELLYFISH_INTERRUPTS=$(INTERRUPTS) JELLYFISH_INTERRUPT_SEED=$(INTERRUPT_SEED) \
	  $(GO) test -tags $(TAGS) -count=1 -timeout 60m -v -run '^TestRandomInterruptions$$' ./fstests/faults/

# Tests that reproduce reported bugs not fixed yet (knownBug skips them
# otherwise); drop a name here with its knownBug call once it is fixed.
# None at the moment.
KNOWN_BUGS ?=
test-known-bugs:
	JELLYFISH_KNOWN_BUGS=1 $(GO) test -tags $(TAGS) -count=1 -timeout 30m -v -run '^($(KNOWN_BUGS))$$' ./fstests/faults/

test-short:
	$(GO) test -tags $(TAGS) -short -timeout 10m $(PKGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet -tags $(TAGS) $(PKGS)

# Each fuzz target, briefly. Corpus seeds live in testdata/fuzz.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
	  for t in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/func //'); do \
	    echo "== $$pkg $$t"; \
	    $(GO) test -tags $(TAGS) -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

# Codec benchmarks on one and two cores, then one summary line per case.
bench-codec:
	$(GO) test -tags $(TAGS) -run '^$$' -bench 'Codec|Parts' -benchtime $(CODEC_BENCHTIME) -count $(BENCHCOUNT) -cpu 1,2 -timeout 60m ./codec/ | tee bench-codec.out
	$(GO) run ./codec/internal/benchsum < bench-codec.out

# The main job on an embedded default; see README.md.
DEMO_DIR ?= /tmp/jellyfish-demo
demo: build
	./$(BIN) demo --dir $(DEMO_DIR)

clean:
	rm -rf bin bench-*.out

# Peak resident memory of encoding a 2 GiB stream (goal: under 256 MiB).
mem-codec:
	$(GO) run ./codec/internal/memcheck -size 2GiB -k 10 -m 20

# Shard protocol vs a raw libp2p stream (store on tmpfs), a full provider
# node with its store on disk and on tmpfs, and the disk's own write speed.
# BENCH_DIR is the on-disk folder (default: the system temp folder).
BENCH_DIR ?= $(or $(TMPDIR),/tmp)
.PHONY: bench-net
bench-net:
	$(GO) test -tags $(TAGS) -run '^$$' -bench 'BenchmarkShardPut/tcp-noise-yamux|BenchmarkRawStream/tcp-noise-yamux' -benchtime $(BENCHTIME) -count 1 -timeout 30m ./p2pnode/shardproto/ | tee bench-net.out
	JELLYFISH_BENCH_DIR=$(BENCH_DIR) $(GO) test -tags $(TAGS) -run '^$$' -bench 'BenchmarkProviderPut' -benchtime $(BENCHTIME) -count 1 -timeout 30m ./p2pnode/provider/ | tee -a bench-net.out
	dd if=/dev/zero of=$(BENCH_DIR)/jellyfish-dd.tmp bs=1M count=512 oflag=direct 2>&1 | tee -a bench-net.out; rm -f $(BENCH_DIR)/jellyfish-dd.tmp
	$(GO) run ./p2pnode/internal/netbenchsum < bench-net.out

# A renewal of 1,024 shards in a shard store on disk under BENCH_DIR: time
# and fsyncs per renewal.
.PHONY: bench-renew
bench-renew:
	TMPDIR=$(BENCH_DIR) $(GO) test -tags $(TAGS) -run '^$$' -bench 'BenchmarkDiskRenew' -benchtime 20x -count 3 -timeout 30m ./p2pnode/shardstore/

# End to end against a `jellyfish testnet` process of BENCH_NODES nodes (stores
# on tmpfs, then on disk under BENCH_DIR): upload and download of a SIZE random
# file, each a fresh `jellyfish` process timed to its exit, against a raw
# libp2p stream from a client node; and the client's peak RSS. bench-mem does
# the same with 2 GiB on tmpfs only (goal: peak RSS under 300 MiB).
# PROFILE=FILE writes a CPU profile of the tmpfs upload process.
SIZE          ?= 1GiB
BENCH_NODES   ?= 10
BENCH_K       ?= 4
BENCH_M       ?= 6
BENCH_SHM     ?= /dev/shm/jf-bench
PROFILE       ?=
BENCH_E2E      = $(GO) run -tags $(TAGS) ./cmd/jellyfish/internal/benche2e -bin $(BIN) \
	-nodes $(BENCH_NODES) -k $(BENCH_K) -m $(BENCH_M) -dir $(BENCH_SHM) -work $(BENCH_SHM)-work
.PHONY: bench-e2e bench-mem bench-small bench-medium bench-scale
bench-e2e: build
	$(BENCH_E2E) -mode e2e -size $(SIZE) -disk-dir $(BENCH_DIR)/jf-bench-disk $(if $(PROFILE),-cpuprofile $(PROFILE)); \
	rc=$$?; rm -rf $(BENCH_SHM) $(BENCH_SHM)-work $(BENCH_DIR)/jf-bench-disk; exit $$rc

bench-mem: build
	$(BENCH_E2E) -mode e2e -size 2GiB -disk-dir ''; \
	rc=$$?; rm -rf $(BENCH_SHM) $(BENCH_SHM)-work; exit $$rc

# 2,000 files of 4 KiB in 20 folders synced by a fresh `jellyfish sync` process
# (start-up and final flush included) into the network, into a local folder and
# into a crypt remote over a local folder; then a no-op re-sync to each.
bench-small: build
	$(BENCH_E2E) -mode small -small-dest $(BENCH_DIR)/jf-bench-small; \
	rc=$$?; rm -rf $(BENCH_SHM) $(BENCH_SHM)-work $(BENCH_DIR)/jf-bench-small; exit $$rc

# 500 files of 64 KiB (too big to go inline, small enough to be packed) synced
# the same way, then again with packing turned off (every file an object of its
# own) for comparison.
bench-medium: build
	$(BENCH_E2E) -mode small -files 500 -file-size 65536 -small-dest $(BENCH_DIR)/jf-bench-small; \
	rc=$$?; rm -rf $(BENCH_SHM) $(BENCH_SHM)-work $(BENCH_DIR)/jf-bench-small; [ $$rc = 0 ] || exit $$rc; \
	echo "--- the same with pack_max=0:"; \
	RCLONE_JELLYFISH_PACK_MAX=0 $(BENCH_E2E) -mode small -files 500 -file-size 65536 -small-dest $(BENCH_DIR)/jf-bench-small; \
	rc=$$?; rm -rf $(BENCH_SHM) $(BENCH_SHM)-work $(BENCH_DIR)/jf-bench-small; exit $$rc

# One account's namespace at scale, against a `jellyfish testnet` process with
# its stores on disk under BENCH_DIR: a generated tree of SCALE_FILES files
# (95 % of 0-4 KiB, 5 % of 8-128 KiB, SCALE_FILES/20 folders up to 12 deep, one
# folder of SCALE_FILES/10) synced by a fresh `jellyfish` process; then
# SCALE_FILES/1000 copyto commands and the shard bytes the providers accepted
# for each; no-op syncs against the local backend; check from another device;
# a cold listing against a 1,000-file account's; peak RSS of lsf -R and of a
# mount. Failed commands are counted, not fatal. Everything lives on disk: at
# SCALE_FILES=1000000 about 5 GiB of files twice (the tree and a local copy)
# and node stores capped at 5 times that, so up to about 40 GB.
SCALE_FILES ?= 1000000
SCALE_SEED  ?= 1
bench-scale: build
	$(GO) run -tags $(TAGS) ./cmd/jellyfish/internal/benche2e -bin $(BIN) -mode scale \
	  -files $(SCALE_FILES) -seed $(SCALE_SEED) -nodes $(BENCH_NODES) -k $(BENCH_K) -m $(BENCH_M) \
	  -dir $(BENCH_DIR)/jf-bench-scale -work $(BENCH_DIR)/jf-bench-scale-work; \
	rc=$$?; rm -rf $(BENCH_DIR)/jf-bench-scale $(BENCH_DIR)/jf-bench-scale-work; exit $$rc

# Transfers between separate hosts over shaped links (fstests/netlab; needs
# root, iproute2, iptables and iperf3): iperf3 on the home host's path,
# then a WAN_SIZE upload from a home host with a 20 Mbit/s uplink, a 40 ms
# round trip and 0.5 % loss to 12 providers, the download back, and a WAN_SLOW_SIZE upload from a 5 Mbit/s
# uplink; one line per case, each against what its links allow. WAN_K and
# WAN_M set the shards per segment. Then from a host with an 80 ms round
# trip and 0.5 % loss (netem, or the lab's own wire without it): the
# upload, 2,000 files of 4 KiB and a cold listing. Then
# WAN_HOLDER_SIZE from a 50 Mbit/s uplink to 8 providers, again with one of
# them slowed to 256 kbit/s. Then HOLEPUNCH_RUNS clients behind a home
# router each reach a node behind another through its relay, punch a hole
# and put and read back HOLEPUNCH_SEND of test shards.
WAN_SIZE      ?= 256MiB
WAN_SLOW_SIZE ?= 256MiB
WAN_HOLDER_SIZE ?= 64MiB
WAN_K         ?= 6
WAN_M         ?= 2
HOLEPUNCH_RUNS ?= 20
HOLEPUNCH_SEND ?= 64MiB
.PHONY: bench-wan
bench-wan:
	JELLYFISH_BENCH_WAN=1 WAN_SIZE=$(WAN_SIZE) WAN_SLOW_SIZE=$(WAN_SLOW_SIZE) WAN_K=$(WAN_K) WAN_M=$(WAN_M) \
	  WAN_HOLDER_SIZE=$(WAN_HOLDER_SIZE) HOLEPUNCH_RUNS=$(HOLEPUNCH_RUNS) HOLEPUNCH_SEND=$(HOLEPUNCH_SEND) \
	  $(GO) test -tags $(TAGS) -count=1 -timeout 150m -v -run '^(TestBenchWAN(SlowHolder|List)?|TestHolePunch)$$' ./fstests/netlab/

# The measurement behind the default segment size.
bench-segsize:
	$(GO) test -tags $(TAGS) -run '^$$' -bench 'SegmentSize' -benchtime $(CODEC_BENCHTIME) -count 1 -cpu 1 -timeout 30m ./codec/

# 300 provider nodes on 127.0.0.1 (TCP, kad-dht, shard stores on tmpfs) and
# a remote opened as rclone does: 1 GiB in 64 MiB segments uploaded and read
# back, its shards on more than 255 providers; start-up, transfer times and
# peak RSS are logged. make test runs the same with 12 MiB in 1 MiB segments.
.PHONY: test-scale300
test-scale300:
	JELLYFISH_SCALE300=full $(GO) test -tags $(TAGS) -count=1 -timeout 30m -v -run '^TestThreeHundredProvidersNetwork$$' ./backend/jellyfish/
