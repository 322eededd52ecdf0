package server_test

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/google/uuid"

	"authapi"
)

// specOperation is one operation of openapi.yaml with where it lives.
type specOperation struct {
	method, path string
	op           *openapi3.Operation
}

// specOperations lists every operation of openapi.yaml, in a stable order.
func specOperations(tb testing.TB) []specOperation {
	tb.Helper()
	spec, err := openapi3.NewLoader().LoadFromData(authapi.OpenAPI)
	if err != nil {
		tb.Fatal(err)
	}
	var out []specOperation
	for path, item := range spec.Paths.Map() {
		for method, op := range item.Operations() {
			out = append(out, specOperation{method, path, op})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path+out[i].method < out[j].path+out[j].method })
	return out
}

// requestExample is the JSON example of an operation's request body.
func requestExample(tb testing.TB, op *openapi3.Operation) map[string]any {
	tb.Helper()
	mt := op.RequestBody.Value.Content.Get("application/json")
	ex := mt.Example
	if ex == nil && len(mt.Examples) > 0 {
		names := make([]string, 0, len(mt.Examples))
		for n := range mt.Examples {
			names = append(names, n)
		}
		sort.Strings(names)
		ex = mt.Examples[names[0]].Value.Value
	}
	obj, ok := ex.(map[string]any)
	if !ok {
		tb.Fatalf("%s has no JSON object example for its request body", op.OperationID)
	}
	return obj
}

// TestTwinMembersOfEveryOperation sends every operation that takes a body
// its own example with a member whose name folds to a property's, next to
// the property and in its place: every such body is refused with a 422
// naming the property, before any handler runs. An operation added to the
// spec is covered by declaring it.
func TestTwinMembersOfEveryOperation(t *testing.T) {
	e := newEnv(t)
	u := e.MustLogin("twins")
	key := e.MustCreateKey(u, "twins")
	credentials := map[string][]string{
		"bearerAuth": {"Authorization", "Bearer " + u.Token},
		"apiKeyAuth": {"X-API-Key", key.RawKey},
	}
	covered := 0
	for _, so := range specOperations(t) {
		if so.op.RequestBody == nil {
			continue
		}
		var header []string
		if so.op.Security != nil {
			for _, req := range *so.op.Security {
				for scheme := range req {
					header = append(header, credentials[scheme]...)
				}
			}
		}
		path := so.path
		for _, p := range so.op.Parameters {
			path = strings.ReplaceAll(path, "{"+p.Value.Name+"}", uuid.NewString())
		}
		example := requestExample(t, so.op)
		props := slices.Sorted(func(yield func(string) bool) {
			for name := range so.op.RequestBody.Value.Content.Get("application/json").Schema.Value.Properties {
				if !yield(name) {
					return
				}
			}
		})
		for _, name := range props {
			for _, twin := range []string{strings.ToUpper(name), strings.ToUpper(name[:1]) + name[1:],
				strings.NewReplacer("s", "ſ", "k", "\u212a").Replace(name)} {
				if twin == name {
					continue
				}
				for _, alone := range []bool{false, true} {
					body := map[string]any{}
					for k, v := range example {
						body[k] = v
					}
					value := body[name]
					if value == nil {
						value = "x"
					}
					if alone {
						delete(body, name)
					}
					body[twin] = value
					b, _ := json.Marshal(body)
					r := e.do(false, so.method, path, string(b), header...)
					if r.Status != http.StatusUnprocessableEntity || !slices.Equal(r.Fields(), []string{name}) {
						t.Errorf("%s %s with %q (alone: %v) = %d %s, want 422 naming %s", so.method, so.path, twin, alone, r.Status, r.Body, name)
					}
					covered++
				}
			}
		}
	}
	if covered < 20 {
		t.Fatalf("only %d twin bodies sent: the spec's request bodies were not found", covered)
	}
}

// TestTwinMemberAttacks replays the twin-member attacks found against the
// server that decoded bodies twice: each is refused, and nothing it
// carried reaches the database.
func TestTwinMemberAttacks(t *testing.T) {
	e := newEnv(t)
	u := e.MustLogin("victim")
	reg := func(n int, extra string) string {
		return fmt.Sprintf(`{"username":"twin%d","email":"twin%d@example.com","password":"secureP@ss123","full_name":"W"%s}`, n, n, extra)
	}
	long := strings.Repeat("u", 60000)
	for i, tc := range []struct {
		name, path, body, field string
	}{
		{"a weak password over the validated one", "/v1/auth/register", reg(1, `,"Password":"a"`), "password"},
		{"a blank full name", "/v1/auth/register", reg(2, `,"Full_name":"   "`), "full_name"},
		{"a look-alike email", "/v1/auth/register", reg(3, `,"Email":"twin3@ex\u0430mple.com"`), "email"},
		{"a quoted local part", "/v1/auth/register", reg(4, `,"EMAIL":"\"x@example.com\"@evil.test"`), "email"},
		{"a non-ASCII username", "/v1/auth/register", reg(5, `,"Username":"tw\u00efn"`), "username"},
		{"a folded username", "/v1/auth/register", reg(6, `,"u\u017fername":"other"`), "username"},
		{"every scope over a validated one", "/v1/auth/api-keys", `{"name":"k","scopes":["me:read"],"Scopes":[]}`, "scopes"},
		{"a long username on login", "/v1/auth/login", `{"username":"victim","password":"wrong","Username":"` + long + `"}`, "username"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(false, http.MethodPost, tc.path, tc.body, "Authorization", "Bearer "+u.Token)
			if r.Status != http.StatusUnprocessableEntity || !slices.Equal(r.Fields(), []string{tc.field}) {
				t.Fatalf("%s = %d %s, want 422 naming %s", tc.name, r.Status, r.Body, tc.field)
			}
			if tc.path == "/v1/auth/register" {
				if r := e.do(true, http.MethodPost, "/v1/auth/login", fmt.Sprintf(`{"username":"twin%d","password":"secureP@ss123"}`, i+1)); r.Status != http.StatusUnauthorized {
					t.Fatalf("the refused registration's user logs in: %d", r.Status)
				}
			}
		})
	}
	if n := e.MustCount(`SELECT count(*) FROM login_failures WHERE length(username) > 50`); n != 0 {
		t.Fatalf("login failures with a long username = %d, want none: the handler ran", n)
	}
	if n := e.MustCount(`SELECT count(*) FROM api_keys`); n != 0 {
		t.Fatalf("%d keys after the refused creation, want none", n)
	}
}

// MustCount runs a query of one integer on the env's database.
func (e *env) MustCount(query string, args ...any) int {
	e.t.Helper()
	db, err := sql.Open("postgres", e.DBURL)
	if err != nil {
		e.t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(query, args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", query, err)
	}
	return n
}
