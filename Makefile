# authapi: `make run` serves the API, `make test` runs every test.
GO ?= go

.PHONY: run build test generate check-generated lint ci fuzz staticcheck vulncheck measure-hardening

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

## measure-hardening: peak RSS under 500 concurrent logins, login vs hash throughput, login timing of unknown vs known users (minutes; BENCHMARKS.md)
measure-hardening:
	$(GO) run ./cmd/testpg -- env AUTH_MEASURE=1 $(GO) test -count=1 -timeout 30m -run '^TestMeasure' -v ./cmd/authapi

## fuzz: each fuzz target for FUZZTIME (the server's against a throwaway PostgreSQL)
FUZZTIME ?= 10s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./apikey
	$(GO) test -run '^$$' -fuzz '^FuzzVerify$$' -fuzztime $(FUZZTIME) ./token
	$(GO) run ./cmd/testpg -- $(GO) test -run '^$$' -fuzz '^FuzzRequest$$' -fuzztime $(FUZZTIME) ./server

STATICCHECK_VERSION ?= v0.8.2
GOVULNCHECK_VERSION ?= v1.9.0
# The Go vulnerability database's reports, as a module on the Go module
# proxy: govulncheck reads a database built from them, offline. It is
# built once per version, outside the work tree so that fresh clones share it.
VULNDB_VERSION ?= v0.0.0-20261105234957-e22db6528018
VULNDB ?= $(HOME)/.cache/authapi/vulndb-$(VULNDB_VERSION)

## staticcheck: static analysis of the hand-written code (gen/ is generated)
staticcheck:
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) $$($(GO) list ./... | grep -v '^authapi/gen$$')

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

## ci: what .ci/run checks
ci: check-generated lint staticcheck vulncheck test fuzz
