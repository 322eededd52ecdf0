package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/labstack/echo/v4"

	"authapi/gen"
	"authapi/store"
)

// This file is GET /v1/auth/verify, the authentication step of an API
// gateway: the gateway holds a request for the product's /v1/me/*
// endpoints and asks whether its API key may make it. The key is checked
// by authenticate, exactly as for GET /v1/me (same cache, refusals,
// metrics and log events); what the key may do depends on the forwarded
// request, which only the handler sees validated, so the path and the
// scope are judged here.

// verifyOperation is the operationId of GET /v1/auth/verify (the
// generated code's embedded spec spells it VerifyAPIKey), at verifyPath.
const (
	verifyOperation = "verifyApiKey"
	verifyPath      = "/v1/auth/verify"
)

// methodScopes is an operation's x-required-scopes-by-method: the scopes
// the forwarded request's method needs.
type methodScopes struct {
	byMethod map[string][]string
	other    []string // '*': every method not listed
}

// of returns the scopes method needs. Methods are case-sensitive (RFC
// 9110): "get" is not GET, so it needs what any other method does.
func (m *methodScopes) of(method string) []string {
	if s, ok := m.byMethod[method]; ok {
		return s
	}
	return m.other
}

// readScopesByMethod reads every operation's x-required-scopes-by-method,
// and the verify operation's, which must have one. Scopes must be values
// of the spec's Scope schema, and '*' must be given, so that no method is
// left without a requirement.
func (s *Server) readScopesByMethod(spec *openapi3.T) error {
	known := map[string]bool{}
	if ref := spec.Components.Schemas["Scope"]; ref != nil && ref.Value != nil {
		for _, v := range ref.Value.Enum {
			if scope, ok := v.(string); ok {
				known[scope] = true
			}
		}
	}
	s.byMethod = make(map[*openapi3.Operation]*methodScopes)
	for path, item := range spec.Paths.Map() {
		for method, op := range item.Operations() {
			raw, ok := op.Extensions["x-required-scopes-by-method"]
			if !ok {
				continue
			}
			fail := func(format string, args ...any) error {
				return fmt.Errorf("server: %s %s: x-required-scopes-by-method: %s", method, path, fmt.Sprintf(format, args...))
			}
			if _, both := op.Extensions["x-required-scopes"]; both {
				return fail("also has x-required-scopes")
			}
			table, ok := raw.(map[string]any)
			if !ok {
				return fail("is not a map from methods to scopes")
			}
			ms := &methodScopes{byMethod: make(map[string][]string)}
			for m, v := range table {
				list, ok := v.([]any)
				if !ok || len(list) == 0 {
					return fail("%s is not a list of scopes", m)
				}
				var scopes []string
				for _, x := range list {
					scope, ok := x.(string)
					if !ok || !known[scope] {
						return fail("%s lists %v, which is not a Scope", m, x)
					}
					scopes = append(scopes, scope)
				}
				if m == "*" {
					ms.other = scopes
				} else {
					ms.byMethod[m] = scopes
				}
			}
			if ms.other == nil {
				return fail("has no '*' entry for the methods it does not list")
			}
			s.byMethod[op] = ms
			if strings.EqualFold(op.OperationID, verifyOperation) {
				s.verifyScopes = ms
			}
		}
	}
	if s.verifyScopes == nil {
		return errors.New("server: the spec's " + verifyOperation + " has no x-required-scopes-by-method")
	}
	return nil
}

// VerifyAPIKey tells a gateway whether the request it holds may go on.
// The key was checked by authenticate; then the forwarded path, then the
// scope its method needs.
// (GET /v1/auth/verify)
func (s *Server) VerifyAPIKey(ctx context.Context, req gen.VerifyAPIKeyRequestObject) (gen.VerifyAPIKeyResponseObject, error) {
	p, err := principalFrom(ctx)
	if err != nil {
		return nil, err
	}
	if p.verified == nil {
		return nil, errors.New("server: /v1/auth/verify reached without an API key's answer")
	}
	method, target, bad := forwardedRequest(req.Params)
	if bad != nil {
		return nil, validationProblem(bad)
	}
	info := infoFrom(ctx)
	if !allowedPath(target) {
		info.event, info.reason = eventAuthFailed, schemeAPIKey+": forwarded path outside /v1/me"
		return nil, errPathNotAllowed
	}
	// The same refusal, log event and reason as authenticate's for an
	// operation's own x-required-scopes.
	if missing := missingScope(s.verifyScopes.of(method), p.scopes); missing != "" {
		info.event, info.reason = eventAuthFailed, schemeAPIKey+": lacks scope "+missing
		return nil, insufficientScope(missing)
	}
	s.uses.Record(p.keyID, s.cfg.Now())
	return p.verified, nil
}

// verifyRoute returns the handler of GET /v1/auth/verify and the
// validator in front of it, in place of the generated ones: the validator
// checks the key as for GET /v1/me, and the handler binds and checks the
// forwarded headers itself (headerParam), far cheaper than kin-openapi's
// per-parameter decoding and the generated binder. The strict server's
// VerifyAPIKey answers.
func (s *Server) verifyRoute(spec *openapi3.T, v *validator) (echo.HandlerFunc, echo.MiddlewareFunc, error) {
	item := spec.Paths.Find(verifyPath)
	if item == nil || item.Get == nil || !strings.EqualFold(item.Get.OperationID, verifyOperation) {
		return nil, nil, errors.New("server: the spec has no " + verifyOperation + " at GET " + verifyPath)
	}
	params, err := verifyHeaders(item.Get)
	if err != nil {
		return nil, nil, err
	}
	// The validator sees the operation without its parameters, which are
	// checked below instead; authenticate knows it by this copy.
	op := *item.Get
	op.Parameters = nil
	validated := *item
	validated.Get = &op
	s.byMethod[&op] = s.verifyScopes
	handler := func(c echo.Context) error {
		h := c.Request().Header
		var (
			values [slots]*string
			bad    []gen.FieldError
		)
		for i := range params {
			values[params[i].slot], bad = params[i].bind(h, bad)
		}
		if bad != nil {
			return validationProblem(dedupe(bad))
		}
		in := gen.VerifyAPIKeyParams{XForwardedMethod: values[slotForwardedMethod], XOriginalMethod: values[slotOriginalMethod],
			XForwardedURI: values[slotForwardedURI], XOriginalURI: values[slotOriginalURI]}
		resp, err := s.VerifyAPIKey(c.Request().Context(), gen.VerifyAPIKeyRequestObject{Params: in})
		if err != nil {
			return err
		}
		return resp.VisitVerifyAPIKeyResponse(c.Response())
	}
	return handler, v.middleware(http.MethodGet, verifyPath, &validated), nil
}

// headerParam is one of the verify operation's header parameters, as the
// spec defines it.
type headerParam struct {
	name     string // as the spec writes it, which a 422 names
	key      string // canonical
	ref      *openapi3.SchemaRef
	min, max int
	matches  func(string) bool // the pattern, on ASCII values
	slot     int               // of gen.VerifyAPIKeyParams
}

// The fields of gen.VerifyAPIKeyParams, by the header each is bound from.
const (
	slotForwardedMethod = iota
	slotOriginalMethod
	slotForwardedURI
	slotOriginalURI
	slots
)

// verifyHeaders reads the verify operation's parameters. Each must be an
// optional string header whose schema has nothing but lengths and a
// pattern (what bind checks), and must be one the handler reads: a spec
// that changes them fails at start-up rather than going unchecked.
func verifyHeaders(op *openapi3.Operation) ([]headerParam, error) {
	fields := map[string]int{
		"X-Forwarded-Method": slotForwardedMethod,
		"X-Original-Method":  slotOriginalMethod,
		"X-Forwarded-Uri":    slotForwardedURI,
		"X-Original-URI":     slotOriginalURI,
	}
	var out []headerParam
	for _, ref := range op.Parameters {
		p := ref.Value
		slot, known := fields[p.Name]
		delete(fields, p.Name)
		if !known || p.In != openapi3.ParameterInHeader || p.Required || p.Schema == nil || p.Schema.Value == nil {
			return nil, fmt.Errorf("server: %s: parameter %s is not an optional header the handler reads", verifyOperation, p.Name)
		}
		sc := p.Schema.Value
		plain := *sc
		plain.Type, plain.MinLength, plain.MaxLength, plain.Pattern = nil, 0, nil, ""
		plain.Description, plain.Example, plain.Extensions = "", nil, nil
		if !sc.Type.Is(openapi3.TypeString) || sc.MaxLength == nil || !plain.IsEmpty() {
			return nil, fmt.Errorf("server: %s: parameter %s's schema has more than a string's lengths and pattern", verifyOperation, p.Name)
		}
		re, err := regexp.Compile(sc.Pattern)
		if err != nil || strings.Contains(sc.Pattern, `\u`) {
			return nil, fmt.Errorf("server: %s: parameter %s's pattern is not a Go expression as written", verifyOperation, p.Name)
		}
		matches := re.MatchString
		if set, ok := asciiClass(sc.Pattern); ok {
			matches = set.all
		}
		out = append(out, headerParam{name: p.Name, key: http.CanonicalHeaderKey(p.Name), ref: p.Schema,
			min: int(sc.MinLength), max: int(*sc.MaxLength), matches: matches, slot: slot})
	}
	for name := range fields {
		return nil, fmt.Errorf("server: %s: the spec has no parameter %s", verifyOperation, name)
	}
	return out, nil
}

// bind returns the parameter's value in h (nil if it was not sent), or
// appends why it cannot be bound. An ASCII value within the lengths that
// matches the pattern is valid; anything else is judged by the schema
// itself, whose errors the validator's words describe.
func (p *headerParam) bind(h http.Header, bad []gen.FieldError) (*string, []gen.FieldError) {
	values := h[p.key]
	switch {
	case len(values) == 0:
		return nil, bad
	case len(values) > 1:
		return nil, append(bad, gen.FieldError{Field: p.name, Message: "must be sent once"})
	}
	v := values[0]
	if !(isASCII(v) && p.min <= len(v) && len(v) <= p.max && p.matches(v)) {
		if err := p.ref.Value.VisitJSON(v, openapi3.MultiErrors()); err != nil {
			return nil, append(bad, fieldErrors(p.name, p.ref, err)...)
		}
	}
	return &values[0], bad
}

// byteSet is a set of ASCII characters.
type byteSet [utf8.RuneSelf]bool

// all reports whether s is non-empty and each of its bytes is in the set.
func (set *byteSet) all(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf || !set[s[i]] {
			return false
		}
	}
	return s != ""
}

// asciiClass returns the ASCII characters of a pattern of the form
// ^[class]+$, which is what a header's value usually looks like: checking
// a value against them is a loop over its bytes, where Go's regexp takes a
// microsecond for a short path. ok is false for any other form.
func asciiClass(pattern string) (set *byteSet, ok bool) {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil || re.Op != syntax.OpConcat || len(re.Sub) != 3 ||
		re.Sub[0].Op != syntax.OpBeginText || re.Sub[2].Op != syntax.OpEndText ||
		re.Sub[1].Op != syntax.OpPlus || re.Sub[1].Sub[0].Op != syntax.OpCharClass {
		return nil, false
	}
	set = &byteSet{}
	ranges := re.Sub[1].Sub[0].Rune
	for i := 0; i+1 < len(ranges); i += 2 {
		for c := ranges[i]; c <= ranges[i+1] && c < utf8.RuneSelf; c++ {
			set[c] = true
		}
	}
	return set, true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

var errPathNotAllowed = newProblem(http.StatusForbidden, "path-not-allowed", "Path not allowed",
	"API keys authorise /v1/me and the paths under /v1/me/ only; this path is outside them, or could be read as outside them.")

// forwardedRequest returns the forwarded method and request target, from
// either name of each header, or the fields that are missing or disagree.
// The validator has checked each header's form, and the generated binder
// that none was sent twice.
func forwardedRequest(p gen.VerifyAPIKeyParams) (method, target string, bad []gen.FieldError) {
	method, bad = eitherHeader(p.XForwardedMethod, p.XOriginalMethod, "X-Forwarded-Method", "X-Original-Method", bad)
	target, bad = eitherHeader(p.XForwardedURI, p.XOriginalURI, "X-Forwarded-Uri", "X-Original-URI", bad)
	return method, target, bad
}

// eitherHeader returns the value of the header named a or of the one
// named b. Both missing is an error; so is both sent with different
// values, which is what a client's own header passed through by a gateway
// that sets the other name looks like.
func eitherHeader(a, b *string, aName, bName string, bad []gen.FieldError) (string, []gen.FieldError) {
	switch {
	case a == nil && b == nil:
		return "", append(bad, gen.FieldError{Field: aName, Message: "is required (or " + bName + ")"})
	case a != nil && b != nil && *a != *b:
		return "", append(bad, gen.FieldError{Field: bName, Message: "differs from " + aName})
	case a != nil:
		return *a, bad
	}
	return *b, bad
}

// allowedPath reports whether target, a request target as the gateway
// received it (nginx's $request_uri), is /v1/me or a path under /v1/me/
// however an upstream reads it. It is strict rather than clever: anything
// an upstream could read as outside /v1/me is refused, even when the usual
// reading keeps it inside.
//
//   - The query is dropped; the path must be origin-form (start with "/")
//     and valid UTF-8, without backslashes (a separator to some servers),
//     '#', spaces or control characters.
//   - The first two segments must be "v1" and "me", so that neither an
//     empty segment ("//v1/me", which merging slashes would accept) nor a
//     dot segment may come before them.
//   - Percent-encoding is decoded once, per segment. An encoded '/', '\',
//     '.', '%' (double encoding), ';', '?' or '#', or a control character,
//     is refused: an upstream that decodes before splitting, or decodes
//     twice, would see another path. So is a segment that decodes to
//     invalid UTF-8 (overlong encodings of '.' and '/').
//   - After /v1/me, "." stays and ".." climbs one segment; climbing above
//     /v1/me is refused whether empty segments count (RFC 3986) or are
//     merged away (nginx, Go's path.Clean): "/v1/me//../x" is /v1/me/x to
//     one and /v1/x to the other.
//   - A segment made only of dots and spaces other than "." and ".." (some
//     servers trim trailing dots and spaces), and a "." or ".." with
//     parameters ("..;", which Tomcat resolves) are refused.
func allowedPath(target string) bool {
	path, _, _ := strings.Cut(target, "?")
	if !strings.HasPrefix(path, "/") || !utf8.ValidString(path) {
		return false
	}
	rest := path[1:]
	// depthRFC counts empty segments, depthMerged does not: the segments
	// below /v1/me under each reading.
	n, depthRFC, depthMerged := 0, 0, 0
	for {
		seg, more, found := strings.Cut(rest, "/")
		var buf [64]byte
		name, ok := decodeSegment(seg, buf[:0])
		if !ok {
			return false
		}
		switch {
		case n == 0:
			if name != "v1" {
				return false
			}
		case n == 1:
			if name != "me" {
				return false
			}
		case name == "":
			depthRFC++
		case name == ".":
		case name == "..":
			depthRFC--
			depthMerged--
			if depthRFC < 0 || depthMerged < 0 {
				return false
			}
		default:
			depthRFC++
			depthMerged++
		}
		n++
		if !found {
			return n >= 2
		}
		rest = more
	}
}

// decodeSegment percent-decodes one raw path segment into buf (or a
// larger buffer), and reports whether the segment is unambiguous (see
// allowedPath). The result is a string only when it needs no copy: the
// callers compare it.
func decodeSegment(seg string, buf []byte) (string, bool) {
	if strings.IndexByte(seg, '%') < 0 {
		for i := 0; i < len(seg); i++ {
			if c := seg[i]; c < 0x21 || c == 0x7f || c == '\\' || c == '#' {
				return "", false
			}
		}
		return seg, plainSegment(seg)
	}
	for i := 0; i < len(seg); i++ {
		c := seg[i]
		switch {
		case c == '%':
			if i+2 >= len(seg) || !isHex(seg[i+1]) || !isHex(seg[i+2]) {
				return "", false
			}
			d := unhex(seg[i+1])<<4 | unhex(seg[i+2])
			if d < 0x20 || d == 0x7f || strings.IndexByte(`/\.%;?#`, d) >= 0 {
				return "", false
			}
			buf = append(buf, d)
			i += 2
		case c < 0x21 || c == 0x7f || c == '\\' || c == '#':
			return "", false
		default:
			buf = append(buf, c)
		}
	}
	if !utf8.Valid(buf) {
		return "", false
	}
	// Dots were not encoded (an encoded '.' is refused), so the decoded
	// segment holds the same dots as the raw one.
	return string(buf), plainSegment(string(buf))
}

// plainSegment reports whether a decoded segment is not a disguised dot
// segment: "." and ".." are plain (allowedPath resolves them), other runs
// of dots and spaces are not, nor is a dot segment with parameters.
func plainSegment(seg string) bool {
	if seg == "." || seg == ".." {
		return true
	}
	if strings.HasPrefix(seg, ".;") || strings.HasPrefix(seg, "..;") {
		return false
	}
	return seg == "" || strings.Trim(seg, ". ") != ""
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// verifiedHeaders is GET /v1/auth/verify's 200 answer for one API key: the
// values of its X-Authapi-* headers, made once per cache fill (as GET
// /v1/me's body is), so that a cached answer costs no encoding. net/http
// never changes a header's values in place, so they can be shared.
type verifiedHeaders struct {
	userID, username, keyID, scopes []string
}

// The answer's headers, in their canonical form.
const (
	headerUserID   = "X-Authapi-User-Id"
	headerUsername = "X-Authapi-Username"
	headerKeyID    = "X-Authapi-Key-Id"
	headerScopes   = "X-Authapi-Scopes"
)

func newVerifiedHeaders(o *store.KeyOwner) *verifiedHeaders {
	scopes := slices.Clone([]string(o.Scopes))
	slices.Sort(scopes)
	return &verifiedHeaders{
		userID:   []string{o.User.ID.String()},
		username: []string{o.User.Username},
		keyID:    []string{o.KeyID.String()},
		scopes:   []string{strings.Join(scopes, " ")},
	}
}

func (v *verifiedHeaders) VisitVerifyAPIKeyResponse(w http.ResponseWriter) error {
	h := w.Header()
	h[headerUserID], h[headerUsername], h[headerKeyID], h[headerScopes] = v.userID, v.username, v.keyID, v.scopes
	w.WriteHeader(http.StatusOK)
	return nil
}
