// Package gen holds the code generated from openapi.yaml: models, the Echo
// strict server interface, the embedded spec and a client. Nothing in it is
// written by hand; run `make generate` after changing the spec.
package gen

//go:generate go run github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen --config=cfg.yaml ../openapi.yaml
