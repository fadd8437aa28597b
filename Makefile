# hookstream — `make run` starts everything on an embedded NATS; `make test` runs every test.
GO      ?= go
BIN     := bin/hookstream
PKGS    := ./...
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: help build run test fuzz bench lint clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

build: ## build bin/hookstream
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/hookstream

run: build ## run `hookstream serve` (embedded NATS, API on 127.0.0.1:8080, data in ./data; extra flags in RUN_FLAGS)
	./$(BIN) serve $(RUN_FLAGS)

test: ## run the whole suite with -race (fuzz seed corpora included)
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 -timeout 9m $(PKGS)

fuzz: ## run each fuzz target for FUZZTIME (default 20s)
	@$(GO) list -f '{{.ImportPath}}' $(PKGS) | while read p; do \
	  for f in $$($(GO) test -list '^Fuzz' $$p 2>/dev/null | grep '^Fuzz'); do \
	    echo "fuzz $$p $$f"; $(GO) test -run='^$$' -fuzz="^$$f$$" -fuzztime=$${FUZZTIME:-20s} $$p || exit 1; \
	  done; done

bench: build ## run hookstream bench, the Go benchmarks and the big ones, printing their figures
	./$(BIN) bench
	$(GO) test -p 1 -run='^$$' -bench=. -benchmem -benchtime=$${BENCHTIME:-1s} -timeout 30m $(PKGS)
	@for b in RSSAfterMillionEvents BackoffMillion LookupTenMillion; do \
	  HOOKSTREAM_BENCH_BIG=1 $(GO) test -count=1 -run='^$$' -bench="^Benchmark$$b$$" -benchtime=1x -timeout 60m ./cmd/hookstream | grep -E '^(rss|backoff|lookup|Benchmark|ok|FAIL|---)' || exit 1; \
	done
	HOOKSTREAM_BENCH=1 $(GO) test -count=1 -v -run='^TestHeldDeadLetterRateR3$$' ./faulttest/cluster/ | grep -E '^(held|ok|FAIL|---)'

lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change: $$out"; exit 1; fi
	$(GO) vet $(PKGS)

clean: ## remove build output
	rm -rf bin
