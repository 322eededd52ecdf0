package server

import (
	"encoding/json"
	"fmt"
	"sync"

	"go.yaml.in/yaml/v3"

	"authapi"
)

// openAPIJSON is openapi.yaml as JSON, for GET /openapi.json. It is made
// from the YAML the server was built with, not taken from gen/: the spec
// oapi-codegen embeds has its operationIds renamed by the name normalizer
// (listApiKeys becomes ListAPIKeys), and the two documents must be the same
// description.
var openAPIJSON = sync.OnceValues(func() ([]byte, error) {
	var doc any
	if err := yaml.Unmarshal(authapi.OpenAPI, &doc); err != nil {
		return nil, fmt.Errorf("server: openapi.yaml: %w", err)
	}
	doc, err := jsonValue(doc)
	if err != nil {
		return nil, fmt.Errorf("server: openapi.yaml: %w", err)
	}
	return json.Marshal(doc)
})

// jsonValue makes a decoded YAML value encodable as JSON: mapping keys
// must be strings there (a response code written 200, unquoted, is an int
// to YAML).
func jsonValue(v any) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			var err error
			if x[k], err = jsonValue(e); err != nil {
				return nil, err
			}
		}
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			switch k.(type) {
			case string, int, bool:
			default:
				return nil, fmt.Errorf("mapping key %v (%T) has no JSON form", k, k)
			}
			var err error
			if m[fmt.Sprint(k)], err = jsonValue(e); err != nil {
				return nil, err
			}
		}
		return m, nil
	case []any:
		for i, e := range x {
			var err error
			if x[i], err = jsonValue(e); err != nil {
				return nil, err
			}
		}
	}
	return v, nil
}
