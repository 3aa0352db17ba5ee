# weir: `make run` for the demo, `make test` for everything.
# Envoy and other tools are installed into the git-ignored .cache/.

ENVOY := $(CURDIR)/.cache/bin/envoy

.PHONY: all build envoy k8sbins run test bench lint clean

all: build

build:
	go build -o bin/weir ./cmd/weir
	go build -o bin/weir-demo ./cmd/weir-demo

envoy:
	hack/install-envoy.sh

run: build envoy
	bin/weir-demo

# kube-apiserver, kube-controller-manager and etcd for the e2e suite, built
# from the Go module proxy (hack/k8sbins/): ~10 min cold, instant when cached.
k8sbins:
	hack/k8sbins.sh

test: export WEIR_ENVOY := $(ENVOY)
test: export WEIR_K8S_BIN := $(CURDIR)/.cache/k8s/bin
test: export WEIR_EGCTL ?= $(CURDIR)/.cache/egctl/egctl
test: envoy k8sbins
	go vet ./...
	go test -race -count=1 -timeout 30m ./...

# The translator and xds benchmarks, then the scale harness (cmd/weir-bench): weir as a
# separate process with a thousand xDS clients, a real Envoy, and the peers in
# bench/peers/ (modules of their own). It writes BENCHMARKS.md; BENCH_ARGS adds
# harness flags, e.g. BENCH_ARGS='-skip peers -services 2000'.
BENCH_OUT ?= $(or $(TMPDIR),/tmp)/weir-bench
bench: export WEIR_ENVOY := $(ENVOY)
bench: export WEIR_K8S_BIN := $(CURDIR)/.cache/k8s/bin
bench: build envoy k8sbins
	mkdir -p $(BENCH_OUT)
	{ go test -run '^$$' -bench . -benchmem -benchtime 3x ./translator/... && \
	  go test -run '^$$' -bench . -benchmem -benchtime 50x ./xds/; } > $(BENCH_OUT)/gobench.txt; s=$$?; cat $(BENCH_OUT)/gobench.txt; exit $$s
	go run ./cmd/weir-bench -weir bin/weir -gobench $(BENCH_OUT)/gobench.txt -work $(BENCH_OUT)/run $(BENCH_ARGS)

lint:
	@unformatted=$$(find . -name '.?*' -prune -o -path ./bin -prune -o -name '*.go' -print | xargs -r gofmt -l); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	go vet ./...

clean:
	rm -rf bin .cache/demo
