package server

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"authapi"
)

// TestOpenAPIJSONKeepsEveryValue walks openapi.yaml node by node and finds
// each key, item and scalar in /openapi.json's document, as the same JSON
// value: converting through a loaded document (kin-openapi) would drop
// `example: null` and `security: []`, and a YAML 1.1 reader would turn an
// unquoted `on` into true.
func TestOpenAPIJSONKeepsEveryValue(t *testing.T) {
	b, err := openAPIJSON()
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(authapi.OpenAPI, &root); err != nil {
		t.Fatal(err)
	}
	sameJSON(t, "", root.Content[0], doc)
}

// sameJSON reports where got, a decoded JSON value, is not what the YAML
// node n says at path.
func sameJSON(t *testing.T, path string, n *yaml.Node, got any) {
	t.Helper()
	switch n.Kind {
	case yaml.AliasNode:
		sameJSON(t, path, n.Alias, got)
	case yaml.MappingNode:
		m, ok := got.(map[string]any)
		if !ok {
			t.Errorf("%s: JSON has a %T, want an object", path, got)
			return
		}
		for i := 0; i < len(n.Content); i += 2 {
			k := n.Content[i].Value
			if v, ok := m[k]; ok {
				sameJSON(t, path+"/"+k, n.Content[i+1], v)
			} else {
				t.Errorf("%s: JSON lacks %q", path, k)
			}
		}
		if len(m) != len(n.Content)/2 {
			t.Errorf("%s: JSON has %d keys, YAML %d", path, len(m), len(n.Content)/2)
		}
	case yaml.SequenceNode:
		s, ok := got.([]any)
		if !ok || len(s) != len(n.Content) {
			t.Errorf("%s: JSON has %#v, want an array of %d items", path, got, len(n.Content))
			return
		}
		for i, item := range n.Content {
			sameJSON(t, fmt.Sprintf("%s/%d", path, i), item, s[i])
		}
	default:
		var want any
		if err := n.Decode(&want); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		switch w := want.(type) {
		case int:
			want = float64(w) // a JSON number
		case time.Time: // an unquoted timestamp, which JSON writes as RFC 3339
			want = w.Format(time.RFC3339Nano)
		}
		if got != want {
			t.Errorf("%s: JSON has %#v, want %#v (YAML %s %q)", path, got, want, n.Tag, n.Value)
		}
	}
}
