package server_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"sort"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// TestSpecJSONIsTheYAML: /openapi.json and /openapi.yaml are one
// description, down to the operationIds that SDK generators name methods
// after.
func TestSpecJSONIsTheYAML(t *testing.T) {
	e := newEnv(t)
	docs := map[string]*openapi3.T{}
	for _, path := range []string{"/openapi.yaml", "/openapi.json"} {
		r := e.do(false, http.MethodGet, path, "")
		if r.Status != 200 {
			t.Fatalf("GET %s = %d", path, r.Status)
		}
		doc, err := openapi3.NewLoader().LoadFromData(r.Body)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		docs[path] = doc
	}
	ids := func(doc *openapi3.T) []string {
		var out []string
		for path, item := range doc.Paths.Map() {
			for method, op := range item.Operations() {
				out = append(out, method+" "+path+" "+op.OperationID)
			}
		}
		sort.Strings(out)
		return out
	}
	yamlIDs, jsonIDs := ids(docs["/openapi.yaml"]), ids(docs["/openapi.json"])
	if len(yamlIDs) == 0 || !slices.Equal(yamlIDs, jsonIDs) {
		t.Fatalf("operations in /openapi.json = %v, want those of /openapi.yaml: %v", jsonIDs, yamlIDs)
	}
	y, err := json.Marshal(docs["/openapi.yaml"])
	if err != nil {
		t.Fatal(err)
	}
	j, err := json.Marshal(docs["/openapi.json"])
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(y, j) {
		t.Fatalf("/openapi.json differs from /openapi.yaml:\n%s\n%s", j, y)
	}
}
