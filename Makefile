# authapi: `make run` serves the API, `make test` runs every test.
GO ?= go

.PHONY: run build test generate check-generated lint ci
.PHONY: lint-spec check-breaking test-docs

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

## test-docs: walk the reference flow through /docs in headless Chromium
## (Debian's chromium package); the screenshot lands in tmp/test-artifacts
test-docs: node_modules
	node --test test/browser/*.test.mjs

## ci: what .ci/run checks
ci: check-generated lint lint-spec check-breaking test test-docs
