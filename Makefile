# authapi: `make run` serves the API, `make test` runs every test, `make`
# alone lists the targets (help). Every target has a `## name: what it does`
# line above it, which help prints (make lint fails on a target without).
# Nothing here installs system packages but `make deps`.
GO ?= go
# go.mod's toolchain line names the Go release to build with (a patch
# release newer than the machines' own may fix vulnerabilities in the
# standard library); the go command fetches it through the module proxy
# the first time. Machines default to GOTOOLCHAIN=local, which would ignore it.
export GOTOOLCHAIN := auto

.DEFAULT_GOAL := help
.PHONY: help deps run run-gateway build test test-faults test-multi test-pgbouncer test-ha test-gateway generate check-generated check-sdk-deps cross lint ci
.PHONY: lint-spec check-breaking test-docs sdk check-sdk test-sdk
.PHONY: fuzz staticcheck vulncheck measure-hardening bench bench-flood bench-growth

## help: list the targets, one line each (the default goal)
help:
	@sed -n 's/^## \([a-z_-]*\): \(.*\)/\1\t\2/p' $(firstword $(MAKEFILE_LIST)) | awk -F '\t' '{ printf "  %-18s %s\n", $$1, $$2 }'

# The Debian packages the targets run: PostgreSQL's server (run, test and
# most others), PgBouncer (test-pgbouncer), Chromium (test-docs), wrk
# (bench), and nginx, Patroni and etcd (the gateway and high-availability
# targets).
DEBIAN_PACKAGES = postgresql pgbouncer chromium wrk nginx patroni etcd-server

## deps: install the Debian packages the targets need (apt-get, as root or through sudo), those missing only
deps:
	@missing=$$(for p in $(DEBIAN_PACKAGES); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -qx 'install ok installed' || echo $$p; done); \
	  if [ -z "$$missing" ]; then echo "deps: installed already: $(DEBIAN_PACKAGES)"; exit 0; fi; \
	  sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  echo "deps: installing" $$missing; \
	  $$sudo apt-get update -qq && \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null

## run: serve the API on 127.0.0.1:8080 with a private PostgreSQL in ./var
run:
	$(GO) run ./cmd/authapi -log-format text

## run-gateway: nginx with deploy/nginx/authapi.conf on 127.0.0.1:8000, in front of make run's authapi and a demo product that echoes what it receives (Debian's nginx package)
run-gateway:
	$(GO) run ./cmd/gatewaydemo

## build: build the binary into bin/authapi
build:
	$(GO) build -o bin/authapi ./cmd/authapi

## test: all tests, against one throwaway PostgreSQL for the whole run
test:
	$(GO) run ./cmd/testpg -- $(GO) test -race -count=1 ./...

## test-faults: the fault suite: real PostgreSQL and authapi processes, killed, stopped, frozen, signalled and starved
test-faults:
	$(GO) vet -tags faults ./faults/
	$(GO) test -tags faults -count=1 -timeout 10m -v ./faults/

## test-multi: three authapi processes on one PostgreSQL: shared accounts and throttling, revocation within 100 ms
test-multi:
	$(GO) vet -tags multi ./multi/
	$(GO) run ./cmd/testpg -- $(GO) test -tags multi -count=1 -v ./multi/

## test-gateway: nginx with the shipped deploy/nginx/authapi.conf in front of an echoing upstream, authapi as its authentication step (Debian's nginx package)
test-gateway:
	@command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || { echo "make test-gateway needs nginx, Debian's nginx package: make deps" >&2; exit 1; }
	$(GO) vet -tags gateway ./gateway/
	$(GO) run ./cmd/testpg -- $(GO) test -tags gateway -count=1 -timeout 10m -v ./gateway/

## test-ha: two authapi instances on PostgreSQL under Patroni (3 members, synchronous, etcd): kill -9 of the primary and a switchover under load (Debian's patroni, etcd-server)
test-ha:
	$(GO) vet -tags ha ./ha/
	$(GO) test -tags ha -count=1 -timeout 8m -v ./ha/

## test-pgbouncer: the tests again (but pglocal's, which use no database URL), through PgBouncer in transaction pooling mode
test-pgbouncer:
	$(GO) run ./cmd/testpg -pgbouncer -- $(GO) test -count=1 $$($(GO) list ./... | grep -v /pglocal)

# The generated Go packages: the server's side, and the Go SDK's client and
# models (kept apart so that the SDK does not depend on the server).
GENERATED = gen/ client/gen/

## generate: regenerate gen/ and client/gen/ from openapi.yaml
generate:
	$(GO) generate ./gen ./client/gen

## check-generated: fail when gen/ or client/gen/ is not what openapi.yaml produces
check-generated: generate
	@git diff --exit-code --stat -- $(GENERATED) || { echo "$(GENERATED) stale: run 'make generate' and commit the result" >&2; exit 1; }
	@test -z "$$(git status --porcelain --untracked-files=all -- $(GENERATED))" || { echo "$(GENERATED) have files that are not committed" >&2; git status --porcelain -- $(GENERATED) >&2; exit 1; }

# The packages the Go SDK may need besides the standard library: its own,
# oapi-codegen's runtime, and what that runtime needs.
SDK_OWN = authapi/client authapi/client/gen
SDK_RUNTIME = github.com/oapi-codegen/runtime github.com/oapi-codegen/runtime/types
# GO_DEPS lists the non-standard packages that the packages named after it
# import, directly or not, themselves included.
GO_DEPS = $(GO) list -deps -f '{{if not .Standard}}{{.ImportPath}}{{end}}'

## check-sdk-deps: fail when the Go SDK (client/) needs more than the standard library and oapi-codegen's runtime
check-sdk-deps:
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	  { printf '%s\n' $(SDK_OWN) && $(GO_DEPS) $(SDK_RUNTIME); } > "$$tmp/allowed" && \
	  $(GO_DEPS) ./client > "$$tmp/client" && $(GO_DEPS) ./server > "$$tmp/server" && \
	  if ! grep -vxF -f "$$tmp/allowed" "$$tmp/server" | grep -q labstack; then \
	    echo "check-sdk-deps: the check missed Echo in the server's dependencies" >&2; exit 1; fi && \
	  if grep -vxF -f "$$tmp/allowed" "$$tmp/client" > "$$tmp/extra"; then \
	    echo "check-sdk-deps: the Go SDK (client/) depends on more than the standard library and oapi-codegen's runtime:" >&2; \
	    sed 's/^/  /' "$$tmp/extra" >&2; exit 1; fi

## cross: vet every package, its tests included, for macOS and Windows (Linux-only code sits behind build constraints)
# The fault and multi-instance suites (build tags faults, multi) are Linux
# suites: they read /proc and stop processes with signals.
cross:
	GOOS=darwin GOARCH=arm64 $(GO) vet ./...
	GOOS=windows GOARCH=amd64 $(GO) vet ./...

## lint: gofmt and go vet (not on the generated gen/ and client/gen/), and a help line for every target
lint:
	@out="$$(gofmt -l $$(git ls-files '*.go' | grep -v -e '^gen/' -e '^client/gen/'))"; test -z "$$out" || { echo "gofmt would change: $$out" >&2; exit 1; }
	$(GO) vet ./...
	@for t in $$(sed -n 's/^\.PHONY://p' $(firstword $(MAKEFILE_LIST))); do \
	  grep -q "^## $$t: " $(firstword $(MAKEFILE_LIST)) || { echo "Makefile: target $$t has no '## $$t: description' line for make help" >&2; exit 1; }; done

## node_modules: the npm tools, exactly as package-lock.json pins them
node_modules: package.json package-lock.json sdk/typescript/package.json
	npm ci
	@touch node_modules

## lint-spec: Redocly and Spectral (OWASP ruleset) on openapi.yaml; a warning fails
lint-spec: node_modules
	REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true npx --no-install redocly lint openapi.yaml
	npx --no-install spectral lint --fail-severity=warn openapi.yaml

# oasdiff, pinned here; `go run` checks it against go.sum's database.
OASDIFF = $(GO) run github.com/oasdiff/oasdiff@v1.37.0

## check-breaking: fail on a breaking change from api/openapi.baseline.yaml
# A deliberate breaking change updates the baseline in the same commit.
check-breaking:
	@# The gate must be able to fail: removing an endpoint has to be caught.
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	  sed 's|^  /v1/me:$$|  /v1/me-gone:|' openapi.yaml > "$$tmp/removed.yaml" && \
	  if $(OASDIFF) breaking --fail-on WARN openapi.yaml "$$tmp/removed.yaml" >/dev/null 2>&1; then \
	    echo "check-breaking: oasdiff missed a removed endpoint" >&2; exit 1; fi
	$(OASDIFF) breaking --fail-on WARN api/openapi.baseline.yaml openapi.yaml

## sdk: regenerate the TypeScript SDK's types from openapi.yaml, and build it
sdk: node_modules
	npm run --workspace sdk/typescript generate
	npm run --workspace sdk/typescript build

## check-sdk: fail when the committed TypeScript types are not what openapi.yaml produces
check-sdk: sdk
	@git diff --exit-code --stat -- sdk/typescript/src/ || { echo "sdk/typescript is stale: run 'make sdk' and commit the result" >&2; exit 1; }
	@test -z "$$(git status --porcelain --untracked-files=all -- sdk/typescript/src/)" || { echo "sdk/typescript/src has files that are not committed" >&2; git status --porcelain -- sdk/typescript/src/ >&2; exit 1; }

## test-sdk: the TypeScript SDK's tests, against a live authapi
test-sdk: node_modules
	npm test --workspace sdk/typescript

## test-docs: walk the reference flow through /docs in headless Chromium; the screenshot lands in tmp/test-artifacts
# Chromium is Debian's chromium package (make deps).
test-docs: node_modules
	node --test test/browser/*.test.mjs

## measure-hardening: peak RSS under 500 concurrent logins, login vs hash throughput, login timing of unknown vs known users (minutes; BENCHMARKS.md)
measure-hardening:
	$(GO) run ./cmd/testpg -- env AUTH_MEASURE=1 $(GO) test -count=1 -timeout 30m -run '^TestMeasure' -v ./cmd/authapi

## fuzz: each fuzz target for a number of runs (FUZZTIME overrides them all; the server's against a throwaway PostgreSQL)
# Counts, about ten seconds each on a quiet machine, rather than times: Go
# 1.26's fuzzing coordinator can fail a timed run at its deadline with
# "context deadline exceeded" and no failing input, when the machine is
# busy (go.dev/issue/75804, fixed in Go 1.27). A count has no deadline.
FUZZTIME ?=
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(or $(FUZZTIME),500000x) ./apikey
	$(GO) test -run '^$$' -fuzz '^FuzzVerify$$' -fuzztime $(or $(FUZZTIME),100000x) ./token
	$(GO) run ./cmd/testpg -- $(GO) test -run '^$$' -fuzz '^FuzzRequest$$' -fuzztime $(or $(FUZZTIME),20000x) ./server
	$(GO) run ./cmd/testpg -- $(GO) test -run '^$$' -fuzz '^FuzzAllowedPath$$' -fuzztime $(or $(FUZZTIME),20000x) ./server

STATICCHECK_VERSION ?= v0.8.2
GOVULNCHECK_VERSION ?= v1.9.0
# The Go vulnerability database's reports, as a module on the Go module
# proxy: govulncheck reads a database built from them, offline. It is
# built once per version, outside the work tree so that fresh clones share it.
VULNDB_VERSION ?= v0.0.0-20261105234957-e22db6528018
VULNDB ?= $(HOME)/.cache/authapi/vulndb-$(VULNDB_VERSION)

## staticcheck: static analysis of the hand-written code (gen/ and client/gen/ are generated)
staticcheck:
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) $$($(GO) list ./... | grep -v -e '^authapi/gen$$' -e '^authapi/client/gen$$')

## vulncheck: govulncheck, failing on called vulnerabilities not accepted in .ci/govulncheck-accepted
vulncheck: $(VULNDB)/index/db.json
	@mkdir -p bin
	$(GO) run golang.org/x/vuln/cmd/govulncheck@$(GOVULNCHECK_VERSION) -db file://$(abspath $(VULNDB)) -format json ./... > bin/govulncheck.json
	$(GO) run ./tools/vulngate -accept .ci/govulncheck-accepted bin/govulncheck.json

$(VULNDB)/index/db.json:
	@mkdir -p $(dir $(VULNDB))
	tmp=$$(mktemp -d $(VULNDB).tmp.XXXXXX) && \
	$(GO) run golang.org/x/vulndb/cmd/indexdb@$(VULNDB_VERSION) -vulns "$$($(GO) env GOMODCACHE)/golang.org/x/vulndb@$(VULNDB_VERSION)/data/osv" -out $$tmp/db && \
	{ mv -T $$tmp/db $(VULNDB) 2>/dev/null || true; } && rm -rf $$tmp

# CI's checks, in order. .ci/run installs what they need (make deps), runs
# make test, then make ci CI_DONE=test (the list without what CI_DONE
# names), so that this list is the only one.
CI_CHECKS = check-generated check-sdk check-sdk-deps cross lint staticcheck vulncheck lint-spec check-breaking \
	test test-multi fuzz test-pgbouncer test-faults test-ha test-gateway test-sdk test-docs

## ci: every check CI runs, one after another, stopping at the first failure
ci:
	@for t in $(filter-out $(CI_DONE),$(CI_CHECKS)); do echo "== make $$t"; $(MAKE) --no-print-directory $$t || exit 1; done

## bench: load-test every operation with wrk next to the machine's limits, the gateway through nginx, then bench-flood; writes BENCHMARKS.md
BENCH_FLAGS ?= -runs 3 -duration 5s
bench:
	@command -v wrk >/dev/null || { echo "make bench needs wrk, Debian's wrk package: make deps (or apt-get install wrk)" >&2; exit 1; }
	$(GO) build -o $${TMPDIR:-/tmp}/authapi-bench ./cmd/authapi
	$(GO) run ./cmd/authbench -bin $${TMPDIR:-/tmp}/authapi-bench $(BENCH_FLAGS)
	$(GO) run ./cmd/floodbench -bin $${TMPDIR:-/tmp}/authapi-bench $(FLOOD_FLAGS)

## bench-flood: one address floods bad logins, then unknown API keys, with the default limits: another address's latency, the flood's 429s, log lines (minutes; BENCHMARKS.md)
FLOOD_FLAGS ?= -runs 3 -duration 20s
# floodbench builds authapi into a temporary folder of its own.
bench-flood:
	$(GO) run ./cmd/floodbench $(FLOOD_FLAGS)

## bench-growth: the operations on a small database against one of 1,000,000 users and keys, alternately (ratios), start-up, this round's migrations, memory, the credential cache's hit rate; needs wrk (about 15 minutes; writes BENCHMARKS.md)
GROWTH_FLAGS ?= -runs 5 -duration 5s
bench-growth:
	@command -v wrk >/dev/null || { echo "make bench-growth needs wrk, Debian's wrk package: make deps (or apt-get install wrk)" >&2; exit 1; }
	$(GO) build -o bin/authapi-growth ./cmd/authapi
	$(GO) run ./cmd/authbench -growth -bin bin/authapi-growth $(GROWTH_FLAGS)
