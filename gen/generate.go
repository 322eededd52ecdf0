// Package gen holds the server's code generated from openapi.yaml: models,
// the Echo strict server interface and the embedded spec. The Go SDK's
// client is generated apart, into authapi/client/gen, so that the SDK does
// not depend on the server. Nothing in it is written by hand; run `make
// generate` after changing the spec.
package gen

//go:generate go run github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen --config=cfg.yaml ../openapi.yaml
