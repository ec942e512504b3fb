# Bullseye's build. `make demo` runs the end-to-end demonstration, `make dev`
# the mesh on this machine; `make test` runs every module's tests. Tools are
# pinned in scripts/tools.sh and installed into ./bin.

SHELL := /bin/bash
export GOFLAGS := -buildvcs=false
BIN := $(CURDIR)/bin
BUF := $(BIN)/buf
# `./...` does not span a workspace: list every module's packages.
MODULES := $(shell go list -m -f '{{.Dir}}')
PKGS := $(addsuffix /...,$(MODULES))
COMMANDS := cmd/bullseye services/ingest/cmd/bullseye-ingest services/feature/cmd/bullseye-feature \
	services/training/cmd/bullseye-training services/serving/cmd/bullseye-serving
TEST_FLAGS ?= -count=1 -timeout 15m

.PHONY: all tools proto proto-check build lint fmt vet staticcheck buf-lint buf-breaking test dev demo clean bench-train bench-feature bench-ingest bench-recs bench-serve profile-serve drill-loss fuzz

all: build

tools:
	@scripts/tools.sh

proto: tools
	rm -rf pkg/gen/bullseye pkg/gen/inference
	PATH="$(BIN):$$PATH" $(BUF) generate

# Fails when the committed generated code differs from what `make proto` writes.
proto-check: proto
	@git add -N pkg/gen >/dev/null 2>&1 || true
	@if ! git diff --quiet --exit-code -- pkg/gen; then \
		git diff --stat -- pkg/gen; \
		echo "pkg/gen is stale: run 'make proto' and commit the result"; exit 1; \
	fi

# The binaries carry the commit they were built from (`--version`). grpcurl,
# which the README calls the services with, is installed beside them at its
# version pinned in scripts/tools.sh, unless it is there already.
build:
	@mkdir -p $(BIN)
	@TOOLS_BIN=$(BIN) scripts/tools.sh grpcurl
	@for c in $(COMMANDS); do \
		echo "go build $$c"; \
		(cd $$c && CGO_ENABLED=0 go build -buildvcs=auto -o $(BIN)/ .) || exit 1; \
	done

lint: fmt vet staticcheck buf-lint buf-breaking

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^pkg/gen/')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	go vet $(PKGS)

staticcheck: tools
	$(BIN)/staticcheck $(PKGS)

buf-lint: tools
	$(BUF) lint

# Fails on a breaking API change against the previous commit of main: v1 is
# declared stable, so its packages change by additions only. A change that
# must break the API belongs in a new version (bullseye.<service>.v2).
buf-breaking: tools
	@if prev=$$(git rev-parse -q --verify main~1); then \
		$(BUF) breaking --against ".git#ref=$$prev"; \
	else echo "buf breaking: no previous commit of main to compare with"; fi

# Replies built in reused storage (mesh.RecycleAfterMarshal) are checked
# under the race detector too: a reply reused too early is a data race that
# the plain tests would only rarely see.
# Tests run the binaries in $(BIN) where they find them: build them first so
# that none is left from older sources.
# The XGBoost import is tested against models XGBoost itself saves (Debian's
# python3-xgboost, read with pandas).
test: tools build
	@scripts/apt.sh python3-xgboost python3-pandas
	BULLSEYE_BIN=$(BIN) go test $(TEST_FLAGS) $(PKGS)
	go test -race -count=1 ./pkg/mesh -run 'TestRecycle|TestCodec'
	go test -race -count=1 ./services/feature -run 'TestConcurrentLookups'

dev: build
	$(BIN)/bullseye dev

# The end-to-end demonstration on a fresh mesh (reports in out/demo). The full
# Bank model selection is a flag away: make demo DEMO_FLAGS=--full-search
demo: build
	$(BIN)/bullseye demo --out out/demo $(DEMO_FLAGS)

# Benchmarks: each prints Bullseye's figures beside a baseline measured in the
# same run. Bounded in time, loopback only.

# Fit time and test AUC on Bank for logistic regression, linear and kernel SVM
# beside scikit-learn's, and boosted trees beside scikit-learn's
# HistGradientBoosting and XGBoost's hist (Debian's python3-sklearn and
# python3-xgboost) on the same split; the table goes to BENCHMARKS.md. Then
# the boosted trees' accuracy through the mesh: TestBankBoostedTrees with
# -bank-seeds 5 (import, feature set, training jobs at the family's defaults,
# registry, Evaluate), its median test AUC with and without duration beside
# HistGradientBoosting at its defaults and XGBoost (400 trees, depth 6) over
# the same seeds, and the selection against logistic regression, in its own
# section (bench-train-mesh). --runs 0 runs only the mesh part. Then CDNOW's
# lifetime value model (--clv): TestCDNOWLifetimeValueThroughTheMesh's
# parameters and fit times beside an independent scipy fit (Debian's
# python3-scipy), in the bench-train-clv section.
bench-train:
	@scripts/apt.sh python3-sklearn python3-xgboost python3-pandas python3-scipy
	/usr/bin/python3 scripts/bench-train.py --go --runs 5 --mesh-seeds 5 --clv --write BENCHMARKS.md

# ALS seconds per iteration (rank 10, 1M-shaped generated set) beside the same
# update in numpy (Debian's python3-numpy; OpenBLAS's tuning variables unset
# for this command only), and top-10 throughput over 20,000 items at rank 64,
# batched vs one user at a time.
bench-recs:
	@scripts/apt.sh python3-numpy
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 scripts/bench-recs.py --go --runs 5

# Sustained events/s through Track (batches of 500, durable acks, gRPC on
# loopback) beside publishing the same events straight to JetStream.
bench-ingest:
	cd services/ingest && go run ./internal/bench/cmd/bench-ingest -runs 5 -duration 3s

# ghz against serving: Predict with 64 inline features vs a no-op server with the
# same messages, Predict by user id (feature lookups per call), Recommend
# batched vs not, p99 latency at half the peak rate, and boosted trees (300 trees,
# 31 leaves) beside logistic regression, with and without TreeSHAP contributions.
bench-serve: tools build
	cd services/serving && BULLSEYE_BIN=$(BIN) go run ./cmd/bullseye-serving-bench -runs 5 -write $(CURDIR)/BENCHMARKS.md

# A CPU and an allocation profile of the serving process under ghz's inline Predict
# load (c=32, 10 s), from its pprof endpoint, into out/profile-serve (LOAD=user for
# Predict by user id).
LOAD ?= inline
profile-serve: tools build
	cd services/serving && BULLSEYE_BIN=$(BIN) go run ./cmd/bullseye-serving-bench -only $(LOAD) -runs 1 -phase 20s -serving-profile $(CURDIR)/out/profile-serve
	go tool pprof -top -nodecount 25 out/profile-serve/serving-cpu.pprof

# GetOnlineFeatures latency (1 and 64 entities of 20 features, concurrency 1
# and 16, both reply layouts; closed loop and at stated loads) over gRPC on
# loopback, and materialisation throughput beside ingest's Track rate in the
# same run (real bullseye-ingest and bullseye-feature processes).
bench-feature:
	cd services/feature && go run ./cmd/bullseye-feature-bench -runs 5

# Fuzz targets, each for FUZZTIME, outside CI: the importer's CSV and
# JSON-lines reader, ingest's record builder and free-text scanner, and the
# encoders of ids into subjects and keys. A
# finding's input lands in the package's testdata/fuzz: commit it with its
# fix, and `make test` replays it from then on.
FUZZTIME ?= 1m
FUZZ_TARGETS := services/ingest/internal/rows:FuzzParseRows services/ingest/internal/record:FuzzBuildEncodes services/ingest/internal/record:FuzzPersonalSpans pkg/eventlog:FuzzEventSubject services/feature/internal/state:FuzzKeyOf
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		dir=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$name in $$dir for $(FUZZTIME)"; \
		(cd $$dir && go test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) .) || exit 1; \
	done

# Drills: loaded reproductions of past failures, on loopback, bounded in
# time. drill-loss imports a MovieLens-shaped set as eleven files back to
# back, with busy loops on every core and training jobs running, and checks
# per event name that every accepted row is exported and counted online, in
# each of DRILL_RUNS runs.
DRILL_RUNS ?= 3
drill-loss:
	cd cmd/bullseye && go run ./internal/drill/loss -runs $(DRILL_RUNS)

clean:
	rm -rf $(BIN) .data
