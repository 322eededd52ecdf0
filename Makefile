# authapi: `make run` serves the API, `make test` runs every test.
GO ?= go

.PHONY: run build test test-faults test-pgbouncer generate check-generated lint ci
.PHONY: lint-spec check-breaking test-docs sdk check-sdk test-sdk

## run: serve the API on 127.0.0.1:8080 with a private PostgreSQL in ./var
run:
	$(GO) run ./cmd/authapi -log-format text

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

## test-pgbouncer: the tests again (but pglocal's, which use no database URL), through PgBouncer in transaction pooling mode
test-pgbouncer:
	$(GO) run ./cmd/testpg -pgbouncer -- $(GO) test -count=1 $$($(GO) list ./... | grep -v /pglocal)

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
## (a deliberate one updates the baseline in the same commit)
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

## test-docs: walk the reference flow through /docs in headless Chromium
## (Debian's chromium package); the screenshot lands in tmp/test-artifacts
test-docs: node_modules
	node --test test/browser/*.test.mjs

## ci: what .ci/run checks
ci: check-generated check-sdk lint lint-spec check-breaking test test-sdk test-docs
