package server

import (
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

func TestStorable(t *testing.T) {
	for _, tc := range []struct {
		literal string // between the quotes
		want    bool
	}{
		{`plain`, true},
		{`é 密 😀`, true},
		{`\u00e9`, true},
		{`\ud83d\ude00`, true}, // a surrogate pair
		{`\\u0000`, true},      // an escaped backslash, then text
		{`\"\u0041\"`, true},
		{`\u0000`, false},
		{`a\u0000b`, false},
		{`\ud83d`, false},       // high alone
		{`\ude00`, false},       // low alone
		{`\ud83dx`, false},      // high then text
		{`\ud83d\u0041`, false}, // high then a non-surrogate escape
		{`\ude00\ud83d`, false}, // reversed
		{"\xff", false},         // raw invalid UTF-8
		{"\xed\xa0\x80", false}, // a surrogate encoded in UTF-8
		{"\xc3", false},         // truncated sequence
	} {
		if got := storable([]byte(tc.literal)); got != tc.want {
			t.Errorf("storable(%q) = %v, want %v", tc.literal, got, tc.want)
		}
	}
}

func TestInvalidTextPaths(t *testing.T) {
	for _, tc := range []struct {
		body string
		want []string
	}{
		{`{"a":"fine","b":"\u0000"}`, []string{"b"}},
		{`{"a":[{"b":"\u0000"},"ok","x\ud800"],"c":{"d":{"e":"\u0000"}},"f\u0000":"a key is not checked"}`, []string{"a.0.b", "a.2", "c.d.e"}},
		{`{"q\"uote":"\u0000", "s": [ [ "\\", "\u0000" ] ] }`, []string{`q"uote`, "s.0.1"}},
		{`"\u0000"`, []string{"body"}},
		{`[1, true, null, {"a": 2}, "\u0000"]`, []string{"4"}},
		{"{\"raw\":\"\xff\"}", []string{"raw"}},
		{`{"all":"fine","n":[1,2,{"m":"ok"}]}`, nil},
	} {
		var bad []string
		invalidText([]byte(tc.body), &bad)
		if !slices.Equal(bad, tc.want) {
			t.Errorf("invalidText(%s) = %q, want %q", tc.body, bad, tc.want)
		}
	}
}

// TestInvalidTextIsLinear: deep nesting costs no more than its length. A
// descent that re-parsed each level took seconds of CPU on a 20 KB body of
// nested arrays, allocating at every level.
func TestInvalidTextIsLinear(t *testing.T) {
	const depth = 5000
	body := []byte(`{"a":` + strings.Repeat("[", depth) + `"\u0000"` + strings.Repeat("]", depth) + `}`)
	var bad []string
	allocs := testing.AllocsPerRun(1, func() { bad = nil; invalidText(body, &bad) })
	if allocs > 100 {
		t.Fatalf("invalidText on %d nested arrays made %v allocations, want them bounded by the stack's growth", depth, allocs)
	}
	if len(bad) != 1 || !strings.HasPrefix(bad[0], "a.0.0.0.") {
		t.Fatalf("invalidText found %d fields (%.20q...), want the one deep inside", len(bad), bad)
	}
}

func TestDecodeJSONCountsCodePoints(t *testing.T) {
	v, err := decodeJSON(strings.NewReader(`{"a":"😀😀","b":["x😀"],"c":{"d":"plain"}}`), nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := v.(map[string]any)
	if m["a"] != "\ufffd\ufffd" || m["b"].([]any)[0] != "x\ufffd" || m["c"].(map[string]any)["d"] != "plain" {
		t.Fatalf("decodeJSON = %#v, want astral characters replaced one for one", v)
	}
	_, err = decodeJSON(strings.NewReader(`{"ok":"x","bad":"a\u0000","nested":{"deep":["\ud800"]}}`), nil, nil, nil)
	var te *invalidTextError
	if !errors.As(err, &te) || strings.Join(te.fields, ",") != "bad,nested.deep.0" && strings.Join(te.fields, ",") != "nested.deep.0,bad" {
		t.Fatalf("decodeJSON(invalid text) = %v, want the two fields named", err)
	}
	for _, body := range []string{``, `{`, `{} x`, `{"a":1}{}`} {
		var pe *openapi3filter.ParseError
		if _, err := decodeJSON(strings.NewReader(body), nil, nil, nil); !errors.As(err, &pe) {
			t.Errorf("decodeJSON(%q) = %v, want a ParseError", body, err)
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
	s := &Server{log: slog.New(slog.NewTextHandler(&logs, nil)), bodyLimit: DefaultBodyLimit}
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
