package server

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/labstack/echo/v4"
)

// TestDecodeJSON: what the one decoder of bodies refuses, and where it
// says the problem is.
func TestDecodeJSON(t *testing.T) {
	schema := &openapi3.SchemaRef{Value: &openapi3.Schema{Properties: openapi3.Schemas{
		"password":   {Value: openapi3.NewStringSchema()},
		"scopes":     {Value: openapi3.NewArraySchema().WithItems(openapi3.NewStringSchema())},
		"grace":      {Value: openapi3.NewIntegerSchema()},
		"expires_at": {Value: openapi3.NewDateTimeSchema()},
		"nested":     {Value: openapi3.NewObjectSchema().WithProperty("kelvin", openapi3.NewStringSchema())},
	}}}
	for _, tc := range []struct {
		name, body string
		fields     []string // nil: accepted
	}{
		{"plain", `{"password":"x","scopes":["me:read"],"grace":3,"unknown":{"a":1}}`, nil},
		{"case twin", `{"password":"x","Password":"y"}`, []string{"password"}},
		{"lone case variant of a property", `{"PASSWORD":"y"}`, []string{"password"}},
		{"long s folds to s", `{"ſcopes":[]}`, []string{"scopes"}},
		{"Kelvin sign folds to k", `{"nested":{"\u212aelvin":"x"}}`, []string{"nested.kelvin"}},
		{"exact duplicate", `{"password":"x","password":"y"}`, []string{"password"}},
		{"unknown twins", `{"foo":1,"FOO":2}`, []string{"FOO"}},
		{"a lone unknown member is ignored", `{"Foo":1,"passwordx":"y"}`, nil},
		{"twins inside an unknown member", `{"u":{"a":1,"A":2}}`, []string{"u.A"}},
		{"escaped NUL", `{"password":"a\u0000","scopes":["ok","\u0000"]}`, []string{"password", "scopes.1"}},
		{"NUL in an unknown member", `{"other":"\u0000"}`, []string{"other"}},
		{"invalid UTF-8", "{\"password\":\"a\xffb\"}", []string{"password"}},
		{"UTF-8 encoded surrogate", "{\"password\":\"\xed\xa0\x80\"}", []string{"password"}},
		{"lone high surrogate", `{"password":"\ud83d"}`, []string{"password"}},
		{"lone low surrogate", `{"scopes":["\ude00"]}`, []string{"scopes.0"}},
		{"reversed surrogates", `{"password":"\ude00\ud83d"}`, []string{"password"}},
		{"integer with exponent", `{"grace":1e3}`, []string{"grace"}},
		{"integer with fraction", `{"grace":3.0}`, []string{"grace"}},
		{"number in an unknown member", `{"x":1.5e3}`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := decodeJSON(strings.NewReader(tc.body), nil, schema, nil)
			if tc.fields == nil {
				if err != nil {
					t.Fatalf("decodeJSON(%s) = %v, want it accepted", tc.body, err)
				}
				if _, ok := v.(map[string]any); !ok {
					t.Fatalf("decodeJSON(%s) = %#v, want an object", tc.body, v)
				}
				return
			}
			var be bodyErrors
			if !errors.As(err, &be) {
				t.Fatalf("decodeJSON(%s) = %v, want fields %v refused", tc.body, err, tc.fields)
			}
			var got []string
			for _, f := range be {
				got = append(got, f.Field)
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.fields) {
				t.Fatalf("decodeJSON(%s) refused %v, want %v", tc.body, got, tc.fields)
			}
		})
	}
	for _, body := range []string{``, `{`, `{} x`, `{"a":1}{}`, `{"a":"\x"}`, `{"a":"\uZZZZ"}`, `{'a':1}`, `[1,]`} {
		var pe *openapi3filter.ParseError
		if _, err := decodeJSON(strings.NewReader(body), nil, schema, nil); !errors.As(err, &pe) {
			t.Errorf("decodeJSON(%q) = %v, want a ParseError (400)", body, err)
		}
	}
}

// TestDecodeJSONValues: numbers stay exact, astral characters stay as
// sent, date-times are upper-cased.
func TestDecodeJSONValues(t *testing.T) {
	schema := &openapi3.SchemaRef{Value: &openapi3.Schema{Properties: openapi3.Schemas{
		"at": {Value: openapi3.NewDateTimeSchema()},
	}}}
	v, err := decodeJSON(strings.NewReader(`{"n":12345678901234567890,"s":"😀\ud83d\ude00","at":"2030-01-02t03:04:05.5z","list":[true,null]}`), nil, schema, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := v.(map[string]any)
	if m["n"] != json.Number("12345678901234567890") || m["s"] != "😀😀" || m["at"] != "2030-01-02T03:04:05.5Z" ||
		!slices.Equal(m["list"].([]any), []any{true, nil}) {
		t.Fatalf("decodeJSON = %#v", v)
	}
}

// TestDecodeJSONIsLinear: deep nesting costs no more than its length.
func TestDecodeJSONIsLinear(t *testing.T) {
	const depth = 5000
	body := `{"a":` + strings.Repeat("[", depth) + `"\u0000"` + strings.Repeat("]", depth) + `}`
	_, err := decodeJSON(strings.NewReader(body), nil, nil, nil)
	var be bodyErrors
	if !errors.As(err, &be) || len(be) != 1 || !strings.HasPrefix(be[0].Field, "a.0.0.0.") {
		t.Fatalf("decodeJSON(deep) = %v, want the one field deep inside", err)
	}
}

func TestFoldName(t *testing.T) {
	for _, tc := range []struct {
		a, b string
	}{{"password", "PASSWORD"}, {"scopes", "ſcopes"}, {"kelvin", "\u212aELVIN"}, {"straße", "STRASSE"}, {"Σίσυφος", "ΣΊΣΥΦΟΣ"}} {
		a, b := tc.a, tc.b
		if got := foldName(a) == foldName(b); got != strings.EqualFold(a, b) {
			t.Errorf("foldName(%q) == foldName(%q) is %v, strings.EqualFold says %v", a, b, got, strings.EqualFold(a, b))
		}
	}
}

func TestIsJSON(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/json": true, "application/json; charset=utf-8": true, "APPLICATION/JSON;charset=UTF-8": true,
		"": false, "text/json": false, "application/json; charset=iso-8859-1": false, "application/json+x": false, "application/json;": true, // RFC 9110 allows an empty parameter
	} {
		if got := isJSON(ct); got != want {
			t.Errorf("isJSON(%q) = %v, want %v", ct, got, want)
		}
	}
}

func TestThrottleAddress(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1":            "192.0.2.1",
		"::ffff:192.0.2.1":     "192.0.2.1",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1": "2001:db8:1:2::/64",
		"not an address":       "not an address",
	} {
		if got := throttleAddress(in); got != want {
			t.Errorf("throttleAddress(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestPanicIsAProblem: a panicking handler gives a 500 problem that reveals
// nothing, and the server keeps serving.
func TestPanicIsAProblem(t *testing.T) {
	var logs strings.Builder
	s := &Server{cfg: Config{Logger: slog.New(slog.NewTextHandler(&logs, nil)), BodyLimit: DefaultBodyLimit}}
	e := echo.New()
	e.HTTPErrorHandler = s.handleError
	e.Use(s.begin, s.logRequests, s.recoverPanics)
	e.GET("/boom", func(echo.Context) error { panic("secret internals: password=hunter2") })
	e.GET("/ok", func(c echo.Context) error { return c.String(200, "ok") })

	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/boom", nil))
	body, _ := io.ReadAll(rec.Body)
	if rec.Code != 500 || rec.Header().Get("Content-Type") != "application/problem+json" || strings.Contains(string(body), "hunter2") {
		t.Fatalf("panic = %d %q %s, want a 500 problem without internals", rec.Code, rec.Header().Get("Content-Type"), body)
	}
	if !strings.Contains(logs.String(), "panic") {
		t.Fatal("the panic was not logged")
	}
	rec = httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/ok", nil))
	if rec.Code != 200 {
		t.Fatalf("after a panic, /ok = %d", rec.Code)
	}
}

// TestScopesComeFromTheSpec: an operation gets a scope check by declaring
// x-required-scopes, nothing else.
func TestScopesComeFromTheSpec(t *testing.T) {
	spec, err := openapi3.NewLoader().LoadFromData([]byte(`
openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /v1/me/things:
    post:
      x-required-scopes: [me:write]
      responses: {"204": {description: ok}}
    get:
      responses: {"200": {description: ok}}
`))
	if err != nil {
		t.Fatal(err)
	}
	got, err := requiredScopes(spec)
	if err != nil {
		t.Fatal(err)
	}
	item := spec.Paths.Find("/v1/me/things")
	if !slices.Equal(got[item.Post], []string{"me:write"}) || got[item.Get] != nil {
		t.Fatalf("requiredScopes = %v, want me:write on POST only", got)
	}
	for _, tc := range []struct {
		required, granted []string
		missing           string
	}{
		{nil, nil, ""},
		{[]string{"me:read"}, []string{"me:read", "me:write"}, ""},
		{[]string{"me:write"}, []string{"me:read"}, "me:write"},
		{[]string{"me:read", "me:write"}, []string{"me:read"}, "me:write"},
	} {
		if got := missingScope(tc.required, tc.granted); got != tc.missing {
			t.Errorf("missingScope(%v, %v) = %q, want %q", tc.required, tc.granted, got, tc.missing)
		}
	}
	item.Post.Extensions["x-required-scopes"] = "me:write"
	if _, err := requiredScopes(spec); err == nil {
		t.Fatal("a scope list that is not a list was accepted")
	}
}

// TestSchemaMessage: each violation is worded for a person, in the
// singular where the bound is one.
func TestSchemaMessage(t *testing.T) {
	one, three := uint64(1), uint64(3)
	obj := &openapi3.Schema{MinProps: 1, Properties: openapi3.Schemas{"full_name": nil, "email": nil}}
	for _, tc := range []struct {
		field  string
		schema *openapi3.Schema
		want   string
	}{
		{"minLength", &openapi3.Schema{MinLength: 1}, "must be at least 1 character"},
		{"minLength", &openapi3.Schema{MinLength: 3}, "must be at least 3 characters"},
		{"maxLength", &openapi3.Schema{MaxLength: &one}, "must be at most 1 character"},
		{"maxLength", &openapi3.Schema{MaxLength: &three}, "must be at most 3 characters"},
		{"minItems", &openapi3.Schema{MinItems: 1}, "must list at least 1 item"},
		{"minProperties", obj, "must set email or full_name"},
		{"uniqueItems", &openapi3.Schema{}, "must not list an item twice"},
		{"nullable", &openapi3.Schema{}, "must not be null"},
		{"format", &openapi3.Schema{Format: "int32"}, "must be a whole number"},
		{"format", &openapi3.Schema{Format: "uuid"}, "must be a valid UUID"},
		{"multipleOf", &openapi3.Schema{}, "is invalid"},
	} {
		if got := schemaMessage(&openapi3.SchemaError{SchemaField: tc.field, Schema: tc.schema}); got != tc.want {
			t.Errorf("%s %+v: %q, want %q", tc.field, tc.schema, got, tc.want)
		}
	}
}
