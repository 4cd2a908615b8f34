# muster's front door. `make test` is what CI runs (.ci/run).

GO       ?= go
BIN      ?= bin
IMAGE    ?= ghcr.io/muster-dev/muster-scheduler:dev
# The Kubernetes version muster is built from, reported by --version and /version.
K8S_VERSION := $(shell $(GO) list -m -f '{{.Version}}' k8s.io/kubernetes 2>/dev/null)
LDFLAGS  := -X k8s.io/component-base/version.gitVersion=$(K8S_VERSION)
# Integration tests and the sandbox each run a control plane; two packages at
# a time is what a 2-core machine takes without starving them.
TEST_FLAGS ?= -count=1 -p 2 -timeout 30m

.PHONY: all build test test-alerts unit integration lint sandbox image clean bench bench-smoke bench-schedperf

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/muster-scheduler ./cmd/muster-scheduler
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/muster ./cmd/muster
	ln -sf muster $(BIN)/kubectl-muster  # the kubectl plugin: `kubectl muster ...`

# Unit and integration tests. The integration tests run the muster-scheduler
# binary built here (leader election, start-up failures) as well as
# muster in-process, against a real kube-apiserver and etcd in the test process.
# test/ecosystem is left out: it needs the real operators, which `make
# ecosystem` builds (about twenty-five minutes when the Go build cache is cold).
test: build $(BIN)/helm
	@command -v $(PROMTOOL) >/dev/null 2>&1 || echo "note: $(PROMTOOL) not found (apt-get install prometheus): the promtool alert tests are skipped; make test-alerts runs them"
	MUSTER_SCHEDULER_BIN=$(abspath $(BIN))/muster-scheduler HELM_BIN=$(abspath $(BIN))/helm $(GO) test $(TEST_FLAGS) $$($(GO) list ./... | grep -v $(ECOSYSTEM_PKG))
	$(MAKE) bench-smoke

# muster beside the real operators (test/ecosystem): KubeRay, JobSet,
# Kubeflow's training-operator, Trainer and Spark operator, and the MPI operator,
# each built from its pinned module (hack/ecosystem) into $(ECOSYSTEM_BIN),
# run as processes against an in-process control plane. CI runs it after
# `make test`. ECOSYSTEM_RUN selects tests (a -run regexp). The whole output
# (with the control plane's log lines) goes to $(BIN)/ecosystem.log; the
# tests' own lines, with the measured times, are printed.
ECOSYSTEM_PKG := /test/ecosystem
ECOSYSTEM_RUN ?= .
include hack/ecosystem/ecosystem.mk
ecosystem: ecosystem-tested
	MUSTER_TEST_V=0 MUSTER_ECOSYSTEM_BIN=$(abspath $(ECOSYSTEM_BIN)) $(GO) test -count=1 -timeout 30m -run '$(ECOSYSTEM_RUN)' -v ./test/ecosystem \
		>$(BIN)/ecosystem.log 2>&1; rc=$$?; grep -v -e '^[IWE][0-9]' -e '^ *[a-z_]*\.go:[0-9]*: [IWE][0-9]' -e '^=== NAME' $(BIN)/ecosystem.log; exit $$rc

# Benchmarks (test/bench): muster side by side with kube-scheduler's default
# profile, upstream's GangScheduling and the raw bind limit, on the in-process
# control plane; then kube-scheduler's own scheduler_perf suite on both.
# Results: docs/benchmarks.md. BENCH_SIZE=small runs the short sizes;
# BENCH selects benchmarks (a -bench regexp).
BENCH ?= .
BENCH_SIZE ?= full
BENCH_FLAGS = -run XXX -bench '$(BENCH)' -benchtime 1x -timeout 3h $(if $(filter small,$(BENCH_SIZE)),-short)
bench: $(BIN)/etcd
	$(GO) test $(BENCH_FLAGS) ./test/bench/ ./test/bench/gang/ 2>&1 | tee bench.out
	$(MAKE) bench-schedperf

# A short run of every benchmark, so that they keep working (CI).
bench-smoke:
	$(GO) test -run XXX -bench . -benchtime 1x -short -timeout 20m ./test/bench/ ./test/bench/gang/

# etcd for tools that run it as a process (scheduler_perf), built from the
# etcd server module muster already depends on: nothing is downloaded.
$(BIN)/etcd:
	$(GO) build -o $(BIN)/etcd ./hack/etcd

# kube-scheduler's scheduler_perf (test/bench/schedperf, build tag schedperf):
# it needs test-only modules muster's go.mod does not list, so it runs with a
# tidied copy of go.mod in a temporary directory (the module cache has them).
SCHEDPERF_MOD := $(abspath $(BIN))/schedperf-mod
bench-schedperf: $(BIN)/etcd
	mkdir -p $(SCHEDPERF_MOD) && cp go.mod $(SCHEDPERF_MOD)/go.mod && cp go.sum $(SCHEDPERF_MOD)/go.sum
	GOFLAGS=-mod=mod $(GO) mod tidy -modfile=$(SCHEDPERF_MOD)/go.mod
	cd test/bench/schedperf && PATH=$(abspath $(BIN)):$$PATH $(GO) test -modfile=$(SCHEDPERF_MOD)/go.mod -tags schedperf \
		-run XXX -bench . -benchtime 1x -timeout 3h $(if $(filter small,$(BENCH_SIZE)),-short) . -args -data-items-dir=$(SCHEDPERF_MOD) 2>&1 | tee -a $(CURDIR)/bench.out | grep -v '^[IWE][0-9]'

# The alerts (manifests/prometheus-rule.yaml) unit-tested by promtool
# (manifests/testdata/alerts_test.yaml; Debian package prometheus). `make
# test` runs them too when promtool is installed; here a missing promtool is
# an error.
PROMTOOL ?= promtool
test-alerts:
	@command -v $(PROMTOOL) >/dev/null 2>&1 || { echo "promtool not found: apt-get install prometheus" >&2; exit 1; }
	MUSTER_REQUIRE_PROMTOOL=1 PROMTOOL=$$(command -v $(PROMTOOL)) $(GO) test -count=1 -v -run '^TestAlert' ./manifests/

unit:
	$(GO) test -count=1 $$($(GO) list ./... | grep -v -e /test/ -e /pkg/sandbox -e /pkg/controlplane)

integration: build
	MUSTER_SCHEDULER_BIN=$(abspath $(BIN))/muster-scheduler $(GO) test $(TEST_FLAGS) $$($(GO) list ./test/... | grep -v $(ECOSYSTEM_PKG)) ./pkg/sandbox/ ./pkg/controlplane/

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	hack/verify-logging.sh

# The newcomer's first command: muster on a simulated cluster, nothing installed.
sandbox: build
	$(BIN)/muster sandbox $(SANDBOX_FLAGS)

image:
	docker build -t $(IMAGE) .

clean:
	rm -rf $(BIN)

# helm, for the chart's tests (manifests/helm_test.go: helm lint, helm
# template). Built from a module of its own, hack/tools, so that helm's
# Kubernetes libraries never meet the main module's; the version is the one
# hack/tools/go.mod pins.
HELM_VERSION = $(shell cd hack/tools && $(GO) list -m -f '{{.Version}}' helm.sh/helm/v3)
$(BIN)/helm: hack/tools/go.mod hack/tools/go.sum
	cd hack/tools && $(GO) build -ldflags "-X helm.sh/helm/v3/internal/version.version=$(HELM_VERSION)" -o $(abspath $(BIN))/helm helm.sh/helm/v3/cmd/helm

# Soak (test/reliability): one muster-scheduler binary under churn of pods,
# gangs, queue edits and nodes for SOAK_DURATION; its goroutines and memory
# are sampled to SOAK_OUT (CSV) and must stay flat. CI runs a 60 s version
# inside `make test`. Results: docs/reliability.md.
SOAK_DURATION ?= 1h
SOAK_OUT      ?= $(abspath soak.csv)
.PHONY: soak
soak: build
	SOAK_DURATION=$(SOAK_DURATION) SOAK_OUT=$(SOAK_OUT) MUSTER_SCHEDULER_BIN=$(abspath $(BIN))/muster-scheduler \
		$(GO) test -count=1 -v -timeout 0 -run TestReliabilitySoak ./test/reliability

# Chaos (test/reliability): two muster-scheduler binaries with leader election
# under churn of pods, gangs, Spark apps, queue edits and nodes for
# CHAOS_DURATION; the leader is killed (SIGKILL) every 2 minutes and replaced,
# and the apiserver is stopped once for 30 s. CI runs a 90 s version (one kill,
# a 10 s outage) inside `make test`. Results: docs/reliability.md.
CHAOS_DURATION ?= 20m
.PHONY: chaos
chaos: build
	CHAOS_DURATION=$(CHAOS_DURATION) MUSTER_SCHEDULER_BIN=$(abspath $(BIN))/muster-scheduler \
		$(GO) test -count=1 -v -timeout 0 -run TestReliabilityChaos ./test/reliability

# Fuzzing (Go native) of every parser of tenant or admin input, each target
# for FUZZTIME, one after another (go test takes one -fuzz target per run).
# The seed corpora (testdata/fuzz/<FuzzName>) also run in every plain
# `go test`. The first run of the pkg/sandbox targets builds an instrumented
# control plane, which takes a while; later runs reuse it.
FUZZTIME ?= 10s
FUZZ_TARGETS := \
	pkg/queue:FuzzParse \
	pkg/gang:FuzzParseMinMember \
	pkg/gang:FuzzParseTimeout \
	pkg/gang:FuzzParseExecutorResources \
	pkg/gang:FuzzIdentify \
	pkg/gang:FuzzSparkProperties \
	pkg/capacity:FuzzParsePolicy \
	pkg/capacity:FuzzTypeOf \
	pkg/sandbox:FuzzParseTrace \
	pkg/sandbox:FuzzParseCluster \
	pkg/sandbox:FuzzValidate
.PHONY: fuzz
fuzz:
	@for f in $$(grep -rl --include='*_test.go' '^func Fuzz' pkg); do \
		for name in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do \
			case " $(FUZZ_TARGETS) " in *" $$(dirname $$f):$$name "*) ;; \
			*) echo "$$(dirname $$f):$$name is not in FUZZ_TARGETS"; exit 1;; esac; \
		done; \
	done
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "== $$name ($$pkg, $(FUZZTIME))"; \
		$(GO) test -run XXX -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) ./$$pkg; \
	done
