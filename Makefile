# authapi: `make run` serves the API, `make test` runs every test.
GO ?= go

.PHONY: run build test generate check-generated lint ci bench

## run: serve the API on 127.0.0.1:8080 with a private PostgreSQL in ./var
run:
	$(GO) run ./cmd/authapi -log-format text

## build: build the binary into bin/authapi
build:
	$(GO) build -o bin/authapi ./cmd/authapi

## test: all tests, against one throwaway PostgreSQL for the whole run
test:
	$(GO) run ./cmd/testpg -- $(GO) test -race -count=1 ./...

## generate: regenerate gen/ from openapi.yaml
generate:
	$(GO) generate ./gen

## check-generated: fail when gen/ is not what openapi.yaml produces
check-generated: generate
	@git diff --exit-code --stat -- gen/ || { echo "gen/ is stale: run 'make generate' and commit the result" >&2; exit 1; }
	@test -z "$$(git status --porcelain --untracked-files=all -- gen/)" || { echo "gen/ has files that are not committed" >&2; git status --porcelain -- gen/ >&2; exit 1; }

## lint: formatting and vet (gen/ is generated and not linted)
lint:
	@out="$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/'))"; test -z "$$out" || { echo "gofmt would change: $$out" >&2; exit 1; }
	$(GO) vet ./...

## ci: what .ci/run checks
ci: check-generated lint test

## bench: load-test every operation with wrk next to the machine's limits; writes BENCHMARKS.md
BENCH_FLAGS ?= -runs 3 -duration 5s
bench:
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq wrk >/dev/null; } || { echo "make bench needs wrk: apt-get install wrk" >&2; exit 1; }
	$(GO) build -o $${TMPDIR:-/tmp}/authapi-bench ./cmd/authapi
	$(GO) run ./cmd/authbench -bin $${TMPDIR:-/tmp}/authapi-bench $(BENCH_FLAGS)
