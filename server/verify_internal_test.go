package server

import (
	"net/url"
	"path"
	"regexp"
	"strings"
	"testing"

	"authapi/gen"
)

func TestAllowedPath(t *testing.T) {
	for _, tc := range []struct {
		target string
		want   bool
	}{
		{"/v1/me", true},
		{"/v1/me/", true},
		{"/v1/me/things", true},
		{"/v1/me/things/1/parts", true},
		{"/v1/me?x=1", true},
		{"/v1/me/things?next=/admin&x=../..", true},
		{"/v1/me/./x", true},
		{"/v1/me/x/../y", true},
		{"/v1/me/x/..", true},
		{"/v1/me/x//y", true},
		{"/v1/me//x", true},
		{"/v1/me/caf%C3%A9", true},
		{"/v1/me/café", true},
		{"/v1/me/a%20b", true},
		{"/v1/me/m%65", true},
		{"/v1/m%65/x", true}, // decoded once: "me"
		{"/v1/me/x;y", true},
		{"/v1/me/file.json", true},
		{"/v1/me/.hidden", true},

		{"", false},
		{"/", false},
		{"*", false},
		{"/v1", false},
		{"/v1/", false},
		{"/v1/meow", false},
		{"/v1/me-too", false},
		{"/V1/ME", false},
		{"/v1/ME", false},
		{"/v2/me", false},
		{"/admin?x=/v1/me/", false},
		{"http://example.com/v1/me", false},
		{"v1/me", false},
		// Dot segments that climb out.
		{"/v1/me/..", false},
		{"/v1/me/../admin", false},
		{"/v1/me/x/../../admin", false},
		{"/v1/me/../me/x", false}, // back inside, but it left on the way
		{"/../v1/me", false},
		{"/./v1/me", false},
		{"/v1/./me", false},
		// Empty segments, read either way.
		{"//v1/me", false},
		{"/v1//me", false},
		{"/v1/me//../x", false},      // /v1/me/x to RFC 3986, /v1/x with merged slashes
		{"/v1/me/x//../../y", false}, // /v1/me/x/y... or /v1/y
		// Encoded separators and dots, double encoding.
		{"/v1/me%2f..%2fadmin", false},
		{"/v1/me%2F..%2Fadmin", false},
		{"/v1/me/x%2fy", false},
		{"/v1/me/%2e%2e/admin", false},
		{"/v1/me/%2E%2E/admin", false},
		{"/v1/me/.%2e/admin", false},
		{"/v1/me/%2e", false},
		{"/v1/me/file%2ejson", false},
		{"/v1/me/%252e%252e/admin", false},
		{"/v1/me/%25", false},
		{"/v1/me/%", false},
		{"/v1/me/%2", false},
		{"/v1/me/%zz", false},
		// NUL and other control characters, raw or encoded.
		{"/v1/me/%00", false},
		{"/v1/me/x%00/../../admin", false},
		{"/v1/me/%0a", false},
		{"/v1/me/%7f", false},
		{"/v1/me/\x00", false},
		{"/v1/me/a b", false},
		{"/v1/me/\t", false},
		// Backslashes, raw or encoded.
		{`/v1/me\..\admin`, false},
		{`/v1/me/..\..\admin`, false},
		{"/v1/me/%5c..%5cadmin", false},
		{"/v1/me/%5C", false},
		// Encoded query and fragment delimiters, raw fragments.
		{"/v1/me/x%3f/../../admin", false},
		{"/v1/me/x%23/../../admin", false},
		{"/v1/me/x#frag", false},
		// Path parameters on dot segments (Tomcat), and their encodings.
		{"/v1/me/..;/admin", false},
		{"/v1/me/.;/x", false},
		{"/v1/me;/../admin", false},
		{"/v1/me/x%3b/../../admin", false},
		// Runs of dots and spaces that some servers trim to "..".
		{"/v1/me/.../admin", false},
		{"/v1/me/..%20/admin", false},
		{"/v1/me/%20", false},
		// Invalid UTF-8, raw or encoded, including overlong '.' and '/'.
		{"/v1/me/\xff", false},
		{"/v1/me/%ff", false},
		{"/v1/me/%c0%ae%c0%ae/admin", false},
		{"/v1/me/%c0%af", false},
		{"/v1/me/%e0%80%ae", false},
	} {
		if got := allowedPath(tc.target); got != tc.want {
			t.Errorf("allowedPath(%q) = %v, want %v", tc.target, got, tc.want)
		}
	}
}

// FuzzAllowedPath: whatever allowedPath lets through lies under /v1/me to
// an upstream that decodes once and cleans the path (Go's net/http), and
// to one that resolves dot segments without merging slashes (RFC 3986).
func FuzzAllowedPath(f *testing.F) {
	for _, s := range []string{"/v1/me", "/v1/me/x/../y", "/v1/me//../x", "/v1/me%2f..%2f", "/v1/me/..;/x", "/v1/me/%c0%ae", "//v1/me"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, target string) {
		if !allowedPath(target) {
			return
		}
		p, _, _ := strings.Cut(target, "?")
		decoded, err := url.PathUnescape(p)
		if err != nil {
			t.Fatalf("allowedPath(%q) = true, but it does not decode: %v", target, err)
		}
		under := func(p string) bool { return p == "/v1/me" || strings.HasPrefix(p, "/v1/me/") }
		if c := path.Clean(decoded); !under(c) {
			t.Fatalf("allowedPath(%q) = true, but it cleans to %q", target, c)
		}
		if r := removeDotSegments(decoded); !under(r) && r != "/v1/me/" {
			t.Fatalf("allowedPath(%q) = true, but RFC 3986 resolves it to %q", target, r)
		}
	})
}

// removeDotSegments is RFC 3986 section 5.2.4 on a path, written
// separately from allowedPath's reading.
func removeDotSegments(in string) string {
	var out []string
	segs := strings.Split(in, "/")[1:]
	for i, s := range segs {
		last := i == len(segs)-1
		switch s {
		case ".":
			if last {
				out = append(out, "")
			}
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			if last {
				out = append(out, "")
			}
		default:
			out = append(out, s)
		}
	}
	return "/" + strings.Join(out, "/")
}

// TestScopesByMethodChecked: the extension is read at start-up and a spec
// that leaves a method without a requirement, or names a scope that does
// not exist, is refused.
func TestScopesByMethodChecked(t *testing.T) {
	for _, tc := range []struct {
		name  string
		table any
		both  bool
		want  string
	}{
		{"no default", map[string]any{"GET": []any{"me:read"}}, false, "'*'"},
		{"unknown scope", map[string]any{"GET": []any{"me:reed"}, "*": []any{"me:write"}}, false, "not a Scope"},
		{"empty list", map[string]any{"GET": []any{}, "*": []any{"me:write"}}, false, "not a list"},
		{"not a map", []any{"me:read"}, false, "not a map"},
		{"with x-required-scopes", map[string]any{"*": []any{"me:write"}}, true, "also has"},
		{"missing", nil, false, "has no x-required-scopes-by-method"},
	} {
		spec, err := gen.GetSwagger()
		if err != nil {
			t.Fatal(err)
		}
		op := spec.Paths.Find("/v1/auth/verify").Get
		if tc.table == nil {
			delete(op.Extensions, "x-required-scopes-by-method")
		} else {
			op.Extensions["x-required-scopes-by-method"] = tc.table
		}
		if tc.both {
			op.Extensions["x-required-scopes"] = []any{"me:read"}
		}
		err = (&Server{}).readScopesByMethod(spec)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: readScopesByMethod = %v, want an error about %s", tc.name, err, tc.want)
		}
	}
	spec, _ := gen.GetSwagger()
	s := &Server{}
	if err := s.readScopesByMethod(spec); err != nil {
		t.Fatal(err)
	}
	for method, want := range map[string]string{"GET": "me:read", "HEAD": "me:read", "OPTIONS": "me:read", "POST": "me:write", "PUT": "me:write", "PATCH": "me:write", "DELETE": "me:write", "get": "me:write", "PROPFIND": "me:write"} {
		if got := strings.Join(s.verifyScopes.of(method), " "); got != want {
			t.Errorf("the spec's scopes for %s = %q, want %q", method, got, want)
		}
	}
}

// TestASCIIClass: the byte sets that stand for the forwarded headers'
// patterns accept exactly the ASCII strings the patterns do.
func TestASCIIClass(t *testing.T) {
	spec, err := gen.GetSwagger()
	if err != nil {
		t.Fatal(err)
	}
	patterns := []string{`^[a-c]+$`, `^[^x]+$`}
	for _, ref := range spec.Paths.Find(verifyPath).Get.Parameters {
		patterns = append(patterns, ref.Value.Schema.Value.Pattern)
	}
	for _, pattern := range patterns {
		set, ok := asciiClass(pattern)
		if !ok {
			t.Errorf("asciiClass(%q) = not a class, want one", pattern)
			continue
		}
		re := regexp.MustCompile(pattern)
		for c := range 128 {
			for _, s := range []string{string(rune(c)), "a" + string(rune(c)), string(rune(c)) + "GET"} {
				if got, want := set.all(s), re.MatchString(s); got != want {
					t.Errorf("asciiClass(%q).all(%q) = %v, the pattern says %v", pattern, s, got, want)
				}
			}
		}
		if set.all("") {
			t.Errorf("asciiClass(%q).all(\"\") = true, want false", pattern)
		}
	}
	for _, pattern := range []string{`^[a-z]*$`, `^[a-z]+`, `[a-z]+$`, `^(ab)+$`, `^[a-z]+x$`, `^a+$`} {
		if _, ok := asciiClass(pattern); ok {
			t.Errorf("asciiClass(%q) = a class, want none", pattern)
		}
	}
}
