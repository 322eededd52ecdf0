// Package authapi carries the OpenAPI description of the service,
// openapi.yaml, which is the source of truth for routes, schemas, errors and
// security schemes: gen/ is generated from it, the server validates requests
// against it, and serves it as written.
package authapi

import _ "embed"

// OpenAPI is openapi.yaml, byte for byte.
//
//go:embed openapi.yaml
var OpenAPI []byte
