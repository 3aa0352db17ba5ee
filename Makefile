# weir: `make run` for the demo, `make test` for everything.
# Envoy and other tools are installed into the git-ignored .cache/.

ENVOY := $(CURDIR)/.cache/bin/envoy

.PHONY: all build envoy run test bench lint clean

all: build

build:
	go build -o bin/weir ./cmd/weir
	go build -o bin/weir-demo ./cmd/weir-demo

envoy:
	hack/install-envoy.sh

run: build envoy
	bin/weir-demo

test: export WEIR_ENVOY := $(ENVOY)
test: envoy
	go vet ./...
	go test -race -count=1 -timeout 30m ./...

bench:
	go test -run '^$$' -bench . -benchmem ./translator/...

lint:
	@unformatted=$$(find . -name '.?*' -prune -o -path ./bin -prune -o -name '*.go' -print | xargs -r gofmt -l); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	go vet ./...

clean:
	rm -rf bin .cache/demo
