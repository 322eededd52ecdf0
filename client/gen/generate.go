// Package gen holds the Go SDK's code generated from openapi.yaml: the
// models and an HTTP client, nothing of the server (that is authapi/gen).
// Nothing in it is written by hand; run `make generate` after changing the
// spec.
package gen

//go:generate go run github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen --config=cfg.yaml ../../openapi.yaml
