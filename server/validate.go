package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/labstack/echo/v4"
	echomiddleware "github.com/oapi-codegen/echo-middleware"

	"authapi/gen"
)

// validator checks requests against the spec before the strict handlers
// see them: credentials (through the AuthenticationFunc), parameters and
// bodies, all errors at once, with kin-openapi. It turns whatever fails into
// one problem.
//
// Each route's middleware knows its operation in the spec (specRouter
// registers it), so the request is not routed a second time: Echo's match
// and path parameters make kin-openapi's route.
type validator struct {
	spec      *openapi3.T
	options   *echomiddleware.Options
	bodyLimit int64
}

// matched is the routers.Router of one request: the route Echo matched,
// with its path parameters, so that the validator does not route again.
type matched struct {
	route  *routers.Route
	params map[string]string
}

func (m matched) FindRoute(*http.Request) (*routers.Route, map[string]string, error) {
	return m.route, m.params, nil
}

func newValidator(spec *openapi3.T, auth openapi3filter.AuthenticationFunc, bodyLimit int64) (*validator, error) {
	registerJSONDecoder()
	return &validator{
		spec:      spec,
		bodyLimit: bodyLimit,
		options: &echomiddleware.Options{
			Options: openapi3filter.Options{
				MultiError:         true,
				AuthenticationFunc: auth,
				// Defaults would be written back into the body from the
				// validated value, which decodeJSON alters for counting.
				SkipSettingDefaults:     true,
				SchemaValidationOptions: []openapi3.SchemaValidationOption{openapi3.WithStringFormatValidators(formats)},
			},
			// Keep kin-openapi's MultiError whole; classify (which can see
			// the request) makes the problem.
			MultiErrorHandler: func(me openapi3.MultiError) *echo.HTTPError {
				return &echo.HTTPError{Code: http.StatusUnprocessableEntity, Internal: me}
			},
			SilenceServersWarning: true,
		},
	}, nil
}

// formats are the string formats the spec uses that kin-openapi does not
// check by default.
var formats = map[string]openapi3.StringFormatValidator{
	// Any hyphenated UUID, whatever its version: the seed's example IDs are
	// not RFC 9562 versions, yet a client may well send one, and an unknown
	// well-formed ID is a 404, not a 422.
	"uuid": openapi3.NewRegexpFormatValidator(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`),
	// What Go's time package can read, which the handler must: kin-openapi's
	// own check lets through what no clock has (a leap second, 23:59:60).
	"date-time": openapi3.NewCallbackValidator(func(s string) error {
		_, err := time.Parse(time.RFC3339Nano, s)
		return err
	}),
	// The spec's pattern checks the shape; RFC 5321 also bounds the local part.
	"email": openapi3.NewCallbackValidator(func(s string) error {
		local, _, ok := strings.Cut(s, "@")
		if !ok || len(local) > 64 || !emailShape.MatchString(s) {
			return errors.New("not an email address")
		}
		return nil
	}),
}

var emailShape = regexp.MustCompile(`^[^@\s]+@[^@\s]+\.[^@\s]+$`)

// middleware returns the validation middleware for the operation of the
// spec's path item at path.
func (v *validator) middleware(method, path string, item *openapi3.PathItem) echo.MiddlewareFunc {
	route := &routers.Route{Spec: v.spec, Path: path, PathItem: item, Method: method, Operation: item.GetOperation(method)}
	takesBody := route.Operation.RequestBody != nil
	bodyRequired := takesBody && route.Operation.RequestBody.Value != nil && route.Operation.RequestBody.Value.Required
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			req := c.Request()
			var params map[string]string
			if names := c.ParamNames(); len(names) > 0 {
				params = make(map[string]string, len(names))
				for i, value := range c.ParamValues()[:len(names)] {
					// A spec path parameter is one non-empty segment; Echo
					// also matches an empty one, and lets a trailing one
					// run over slashes. Neither is this route.
					if value == "" || strings.Contains(value, "/") {
						return echo.ErrNotFound
					}
					params[names[i]] = value
				}
			}
			if takesBody {
				if req.ContentLength > v.bodyLimit {
					return bodyTooLarge(v.bodyLimit)
				}
				req.Body = http.MaxBytesReader(c.Response(), req.Body, v.bodyLimit)
			}
			// Through oapi-codegen's Echo validator, with the route Echo
			// already matched rather than a second router.
			var result error
			if herr := echomiddleware.ValidateRequestFromContext(c, matched{route, params}, v.options); herr != nil {
				result = herr
				if herr.Internal != nil { // the MultiError, kept whole by MultiErrorHandler
					result = herr.Internal
				}
			}
			// kin-openapi has read the body and set ContentLength to its
			// size: an optional body that was left out needs no content type.
			hasBody := bodyRequired || takesBody && req.ContentLength > 0
			if p := v.classify(req, hasBody, result); p != nil {
				return p
			}
			if hasBody {
				// Media types are case-insensitive, Echo's binder is not.
				req.Header.Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
			}
			return next(c)
		}
	}
}

// classify turns the validator's result into at most one problem, in order
// of precedence: an oversized body, then credentials, then the content
// type, then malformed JSON, then every invalid field. Errors that are not
// the client's (the database failing during authentication) pass through.
func (v *validator) classify(req *http.Request, hasBody bool, result error) error {
	var all []error
	if result != nil {
		me, ok := result.(openapi3.MultiError)
		if !ok { // MultiError is on: kin-openapi returns nothing else
			return fmt.Errorf("server: validator: %w", result)
		}
		all = flatten(me)
	}
	var (
		authErr   error
		tooLarge  bool
		malformed *Problem
		fields    []gen.FieldError
	)
	for _, err := range all {
		var (
			mbe     *http.MaxBytesError
			prob    *Problem
			secErr  *openapi3filter.SecurityRequirementsError
			reqErr  *openapi3filter.RequestError
			textErr *invalidTextError
			litErr  *literalError
			parse   *openapi3filter.ParseError
			schema  *openapi3.SchemaError
		)
		switch {
		case errors.As(err, &mbe):
			tooLarge = true
		case errors.As(err, &prob): // from authenticate
			authErr = prob
		case errors.As(err, &secErr):
			if authErr == nil && len(secErr.Errors) > 0 {
				authErr = secErr.Errors[0] // not a credential problem: the database, say
			}
		case errors.As(err, &litErr):
			for _, f := range litErr.fields {
				fields = append(fields, gen.FieldError{Field: f, Message: "must be a whole number written without a fraction or exponent"})
			}
		case errors.As(err, &textErr):
			for _, f := range textErr.fields {
				fields = append(fields, gen.FieldError{Field: f, Message: "contains text that cannot be stored (NUL or invalid UTF-8)"})
			}
		case errors.As(err, &reqErr) && reqErr.Parameter != nil:
			fields = append(fields, fieldErrors(reqErr.Parameter.Name, reqErr.Parameter.Schema, reqErr.Err)...)
		case errors.As(err, &reqErr) && errors.Is(reqErr.Err, openapi3filter.ErrInvalidRequired):
			malformed = errMissingBody
		case errors.As(err, &parse), errors.As(err, &reqErr) && reqErr.Err == nil:
			malformed = errMalformedJSON // undecodable, or (Err == nil) a content type with no schema
		case errors.As(err, &reqErr):
			fields = append(fields, fieldErrors("", nil, reqErr.Err)...)
		case errors.As(err, &schema):
			fields = append(fields, fieldErrors("", nil, schema)...)
		default:
			return fmt.Errorf("server: validator: %w", err)
		}
	}
	switch {
	case tooLarge:
		return bodyTooLarge(v.bodyLimit)
	case authErr != nil:
		return authErr
	case hasBody && !isJSON(req.Header.Get(echo.HeaderContentType)):
		return errUnsupportedMediaType
	case malformed != nil:
		return malformed
	case len(fields) > 0:
		return validationProblem(dedupe(fields))
	}
	return nil
}

// isJSON reports whether a Content-Type is application/json in UTF-8.
func isJSON(contentType string) bool {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "application/json" {
		return false
	}
	cs, ok := params["charset"]
	return !ok || strings.EqualFold(cs, "utf-8")
}

// flatten lists the errors in nested MultiErrors. It looks only at the
// MultiErrors themselves, not into the errors they hold: a RequestError
// wrapping schema errors stays whole, since it says where they were.
func flatten(me openapi3.MultiError) []error {
	var out []error
	for _, err := range me {
		if inner, ok := err.(openapi3.MultiError); ok {
			out = append(out, flatten(inner)...)
		} else {
			out = append(out, err)
		}
	}
	return out
}

// fieldErrors describes schema errors under name (a parameter's name, or ""
// for the body, whose errors carry their own paths). Messages come from the
// schema, never from the submitted value.
func fieldErrors(name string, paramSchema *openapi3.SchemaRef, err error) []gen.FieldError {
	var out []gen.FieldError
	if me, ok := err.(openapi3.MultiError); ok {
		for _, e := range flatten(me) {
			out = append(out, fieldErrors(name, paramSchema, e)...)
		}
		return out
	}
	var se *openapi3.SchemaError
	if !errors.As(err, &se) {
		msg := "is invalid"
		if paramSchema != nil && paramSchema.Value != nil && paramSchema.Value.Format != "" {
			msg = formatMessage(paramSchema.Value.Format)
		}
		return []gen.FieldError{{Field: orBody(name), Message: msg}}
	}
	field := name
	if path := se.JSONPointer(); len(path) > 0 {
		field = strings.Join(path, ".")
	}
	return []gen.FieldError{{Field: orBody(field), Message: schemaMessage(se)}}
}

func orBody(field string) string {
	if field == "" {
		return "body"
	}
	return field
}

// schemaMessage words one schema violation for a person.
func schemaMessage(se *openapi3.SchemaError) string {
	s := se.Schema
	if s == nil {
		return "is invalid"
	}
	switch se.SchemaField {
	case "required":
		return "is required"
	case "type":
		if s.Type != nil && len(*s.Type) > 0 {
			t := (*s.Type)[0]
			article := map[bool]string{true: "an ", false: "a "}[strings.ContainsAny(t[:1], "aeiou")]
			return "must be " + article + t
		}
	case "nullable":
		return "must not be null"
	case "minLength":
		return fmt.Sprintf("must be at least %d characters", s.MinLength)
	case "maxLength":
		if s.MaxLength != nil {
			return fmt.Sprintf("must be at most %d characters", *s.MaxLength)
		}
	case "pattern":
		if msg, ok := s.Extensions["x-pattern-message"].(string); ok {
			return msg
		}
		return "has an invalid format"
	case "format":
		return formatMessage(s.Format)
	case "enum":
		vals := make([]string, len(s.Enum))
		for i, v := range s.Enum {
			vals[i] = fmt.Sprint(v)
		}
		return "must be one of: " + strings.Join(vals, ", ")
	case "minItems":
		return fmt.Sprintf("must list at least %d %s", s.MinItems, plural(s.MinItems, "item"))
	case "maxItems":
		if s.MaxItems != nil {
			return fmt.Sprintf("must list at most %d %s", *s.MaxItems, plural(*s.MaxItems, "item"))
		}
	case "uniqueItems":
		return "must not list an item twice"
	case "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum":
		return "is out of range"
	}
	return "is invalid"
}

func plural(n uint64, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

func formatMessage(format string) string {
	switch format {
	case "email":
		return "must be a valid email address"
	case "uuid":
		return "must be a valid UUID"
	case "date-time":
		return "must be an RFC 3339 date-time"
	}
	return "must be a valid " + format
}

// dedupe drops repeated messages for one field (a malformed email breaks
// both the pattern and the format) and orders the list by field.
func dedupe(errs []gen.FieldError) []gen.FieldError {
	seen := make(map[gen.FieldError]bool, len(errs))
	out := errs[:0]
	for _, e := range errs {
		if !seen[e] {
			seen[e] = true
			out = append(out, e)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Field < out[j].Field })
	return out
}

// invalidTextError lists the fields whose text PostgreSQL cannot store.
type invalidTextError struct{ fields []string }

func (e *invalidTextError) Error() string {
	return "invalid text in " + strings.Join(e.fields, ", ")
}

// literalError lists integer fields written with a fraction or an
// exponent (1e3, 1000.0): JSON Schema counts them as integers, but the
// handler's decoder cannot, so they are refused here, by name, rather than
// failing there as if the JSON were malformed.
type literalError struct{ fields []string }

func (e *literalError) Error() string {
	return "non-integer literal in " + strings.Join(e.fields, ", ")
}

// fractionalIntegers appends the path of every integer-typed value in v
// written with a fraction or an exponent.
func fractionalIntegers(v any, schema *openapi3.Schema, path string, bad *[]string) {
	if schema == nil {
		return
	}
	join := func(k string) string {
		if path == "" {
			return k
		}
		return path + "." + k
	}
	switch x := v.(type) {
	case json.Number:
		if schema.Type.Is(openapi3.TypeInteger) && strings.ContainsAny(string(x), ".eE") {
			*bad = append(*bad, orBody(path))
		}
	case map[string]any:
		for k, e := range x {
			if prop := schema.Properties[k]; prop != nil {
				fractionalIntegers(e, prop.Value, join(k), bad)
			}
		}
	case []any:
		if schema.Items != nil {
			for i, e := range x {
				fractionalIntegers(e, schema.Items.Value, join(strconv.Itoa(i)), bad)
			}
		}
	}
}

var registerOnce sync.Once

// registerJSONDecoder replaces kin-openapi's JSON body decoder (a process-
// wide registry) with decodeJSON.
func registerJSONDecoder() {
	registerOnce.Do(func() { openapi3filter.RegisterBodyDecoder("application/json", decodeJSON) })
}

// decodeJSON is kin-openapi's JSON decoder with two changes the contract
// needs:
//
//   - Text PostgreSQL cannot store (invalid UTF-8, an escaped NUL, a lone
//     surrogate) is an error naming the fields, not silently replaced with
//     U+FFFD as encoding/json would.
//   - kin-openapi counts minLength and maxLength in UTF-16 code units, as
//     JavaScript does; the contract counts code points. The value handed to
//     the validator has each character outside the Basic Multilingual Plane
//     replaced by U+FFFD, which is one code unit and, like the original,
//     neither white space nor a letter or digit, so lengths count code
//     points and the spec's patterns judge alike. Only the validator sees
//     this copy: the handler decodes the original body.
func decodeJSON(body io.Reader, _ http.Header, schema *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
	data, err := io.ReadAll(body)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, &openapi3filter.ParseError{Kind: openapi3filter.KindInvalidFormat, Cause: err}
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &openapi3filter.ParseError{Kind: openapi3filter.KindInvalidFormat, Reason: "trailing data after the JSON value"}
	}
	var bad []string
	invalidText(data, &bad)
	if len(bad) > 0 {
		return nil, &invalidTextError{fields: bad}
	}
	if schema != nil {
		fractionalIntegers(v, schema.Value, "", &bad)
		if len(bad) > 0 {
			return nil, &literalError{fields: bad}
		}
	}
	return countableCopy(v), nil
}

// invalidText appends the path of every string value in raw that is not
// storable text. raw is known to be well-formed JSON. It is one pass over
// the bytes: descending with json.Unmarshal at every level would re-read
// the rest of the body per level, and a 20 KB body of nested arrays would
// cost seconds of CPU.
func invalidText(raw []byte, bad *[]string) {
	type level struct {
		array bool
		key   string // the current member's name, in an object
		index int    // the current element, in an array
	}
	var (
		stack     []level
		expectKey bool
	)
	path := func() string {
		parts := make([]string, len(stack))
		for i, l := range stack {
			if l.array {
				parts[i] = strconv.Itoa(l.index)
			} else {
				parts[i] = l.key
			}
		}
		return strings.Join(parts, ".")
	}
	for i := 0; i < len(raw); i++ {
		switch raw[i] {
		case '{':
			stack, expectKey = append(stack, level{}), true
		case '[':
			stack, expectKey = append(stack, level{array: true}), false
		case '}', ']':
			stack = stack[:len(stack)-1]
		case ',':
			if top := &stack[len(stack)-1]; top.array {
				top.index++
			} else {
				expectKey = true
			}
		case '"':
			end := i + 1
			for raw[end] != '"' {
				if raw[end] == '\\' {
					end++
				}
				end++
			}
			literal := raw[i+1 : end]
			if expectKey {
				var k string
				json.Unmarshal(raw[i:end+1], &k)
				stack[len(stack)-1].key, expectKey = k, false
			} else if !storable(literal) {
				*bad = append(*bad, orBody(path()))
			}
			i = end
		}
	}
}

// storable reports whether the body of a JSON string literal (between the
// quotes, escapes intact) is valid UTF-8 without NUL or lone surrogates.
func storable(s []byte) bool {
	if !utf8.Valid(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			continue
		}
		i++ // the escaped character
		if s[i] != 'u' {
			continue
		}
		r := hex4(s[i+1 : i+5])
		i += 4
		switch {
		case r == 0:
			return false
		case 0xD800 <= r && r < 0xDC00: // high surrogate: a low one must follow
			if i+6 >= len(s) || s[i+1] != '\\' || s[i+2] != 'u' {
				return false
			}
			if lo := hex4(s[i+3 : i+7]); lo < 0xDC00 || lo > 0xDFFF {
				return false
			}
			i += 6
		case 0xDC00 <= r && r <= 0xDFFF:
			return false
		}
	}
	return true
}

func hex4(b []byte) rune {
	n, _ := strconv.ParseUint(string(b), 16, 32)
	return rune(n)
}

// countableCopy replaces characters outside the BMP by U+FFFD in every
// string of v (see decodeJSON), copying only what changes.
func countableCopy(v any) any {
	switch x := v.(type) {
	case string:
		for _, r := range x {
			if r > 0xFFFF {
				return strings.Map(func(r rune) rune {
					if r > 0xFFFF {
						return utf8.RuneError
					}
					return r
				}, x)
			}
		}
		return x
	case map[string]any:
		for k, e := range x {
			x[k] = countableCopy(e)
		}
	case []any:
		for i, e := range x {
			x[i] = countableCopy(e)
		}
	}
	return v
}
