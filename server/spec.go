package server

import (
	"fmt"
	"sync"

	"github.com/invopop/yaml"

	"authapi"
)

// openAPIJSON is openapi.yaml as JSON, for GET /openapi.json. It is made
// from the YAML the server was built with, not taken from gen/: the spec
// oapi-codegen embeds has its operationIds renamed by the name normalizer
// (listApiKeys becomes ListAPIKeys), and the two documents must be the same
// description. Converting the YAML itself (rather than a document loaded by
// kin-openapi, which drops `example: null` and `security: []`) keeps every
// value; invopop/yaml reads YAML 1.2 as the served file's readers do (`on`
// stays a string) and gives non-string mapping keys, such as the response
// codes, their JSON string form.
var openAPIJSON = sync.OnceValues(func() ([]byte, error) {
	b, err := yaml.YAMLToJSON(authapi.OpenAPI)
	if err != nil {
		return nil, fmt.Errorf("server: openapi.yaml: %w", err)
	}
	return b, nil
})
