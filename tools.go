//go:build tools

// Package authapi pins the code generator's version in go.mod, so that
// `make generate` is reproducible.
package authapi

import (
	_ "github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen"
)
