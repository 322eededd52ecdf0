package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/labstack/echo/v4"
	"github.com/oapi-codegen/runtime"

	"authapi/gen"
)

// A request body is decoded once, by decodeJSON. kin-openapi validates the
// value it returns and, with KeepValidatedValue, leaves that value on the
// request; validatedBinder hands exactly that value to the strict handler.
// Nothing decodes the raw body a second time, so no twin member can slip a
// value past the validator.

var registerOnce sync.Once

// registerJSONDecoder makes decodeJSON kin-openapi's JSON body decoder (a
// process-wide registry).
func registerJSONDecoder() {
	registerOnce.Do(func() { openapi3filter.RegisterBodyDecoder("application/json", decodeJSON) })
}

// bodyErrors are what decodeJSON refuses in a well-formed body, by field.
type bodyErrors []gen.FieldError

func (e bodyErrors) Error() string { return fmt.Sprintf("%d invalid fields in the body", len(e)) }

// Messages of bodyErrors.
const (
	msgUnstorable  = "contains text that cannot be stored (NUL or invalid UTF-8)"
	msgTwin        = "is given more than once (member names are compared without regard to case)"
	msgNotInteger  = "must be a whole number written without a fraction or exponent"
	maxFieldLength = 200 // FieldError.field's maxLength in the spec
)

// decodeJSON reads a JSON body strictly: one value and nothing after it;
// no duplicate member, invalid UTF-8, unpaired surrogate escape, or
// member whose name differs from another's or a property's only in case or
// by Unicode simple folding; no integer property written with a fraction
// or exponent (refused by name). Date-times are upper-cased, and numbers
// kept as json.Number, as kin-openapi expects. docs/design.md says why.
func decodeJSON(body io.Reader, _ http.Header, schema *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
	data, err := io.ReadAll(body)
	if err != nil {
		return nil, err
	}
	dec := jsontext.NewDecoder(bytes.NewReader(data))
	v, err := readValue(dec)
	if err == nil {
		if _, err = dec.ReadToken(); err == io.EOF {
			err = nil
		} else if err == nil {
			err = errors.New("trailing data after the JSON value")
		}
	}
	if err != nil {
		return nil, syntaxError(data, err)
	}
	var s *openapi3.Schema
	if schema != nil {
		s = schema.Value
	}
	var bad bodyErrors
	v = checkValue(v, s, "", &bad)
	if len(bad) > 0 {
		return nil, bad
	}
	return v, nil
}

// readValue reads the next JSON value from dec as the generic Go value
// (map[string]any, []any, string, json.Number, bool or nil).
func readValue(dec *jsontext.Decoder) (any, error) {
	tok, err := dec.ReadToken()
	if err != nil {
		return nil, err
	}
	switch tok.Kind() {
	case '{':
		obj := make(map[string]any)
		for dec.PeekKind() != '}' {
			name, err := dec.ReadToken()
			if err != nil {
				return nil, err
			}
			if obj[name.String()], err = readValue(dec); err != nil {
				return nil, err
			}
		}
		_, err := dec.ReadToken()
		return obj, err
	case '[':
		arr := []any{}
		for dec.PeekKind() != ']' {
			v, err := readValue(dec)
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
		}
		_, err := dec.ReadToken()
		return arr, err
	case '"':
		return tok.String(), nil
	case '0':
		return json.Number(tok.String()), nil
	case 't', 'f':
		return tok.Bool(), nil
	case 'n':
		return nil, nil
	}
	return nil, fmt.Errorf("unexpected JSON token %v", tok.Kind())
}

// syntaxError sorts a decoding failure: text PostgreSQL cannot store, or a
// name given twice, is a field's problem (422); anything else is malformed
// JSON (400). jsontext reports where it stopped: at the offending byte of
// invalid UTF-8, or at the escape of an unpaired surrogate.
func syntaxError(data []byte, err error) error {
	var se *jsontext.SyntacticError
	if !errors.As(err, &se) {
		return &openapi3filter.ParseError{Kind: openapi3filter.KindInvalidFormat, Cause: err}
	}
	field := pointerField(se.JSONPointer)
	if errors.Is(se.Err, jsontext.ErrDuplicateName) {
		return bodyErrors{{Field: field, Message: msgTwin}}
	}
	at := data[min(int(se.ByteOffset), len(data)):]
	if errors.Is(se.Err, errInvalidUTF8) || surrogateEscape(at) {
		return bodyErrors{{Field: field, Message: msgUnstorable}}
	}
	return &openapi3filter.ParseError{Kind: openapi3filter.KindInvalidFormat, Cause: err}
}

// errInvalidUTF8 is jsontext's error for invalid UTF-8 within a string,
// which its package does not export (a stray byte outside any string, such
// as a byte order mark, is malformed JSON instead).
var errInvalidUTF8 = func() error {
	_, err := jsontext.NewDecoder(strings.NewReader("\"\xff\"")).ReadToken()
	var se *jsontext.SyntacticError
	if !errors.As(err, &se) {
		panic("server: jsontext accepted invalid UTF-8")
	}
	return se.Err
}()

// surrogateEscape reports whether b starts with a \u escape of a UTF-16
// surrogate, which jsontext refuses when it is not half of a pair.
func surrogateEscape(b []byte) bool {
	if len(b) < 6 || b[0] != '\\' || b[1] != 'u' {
		return false
	}
	r, err := strconv.ParseUint(string(b[2:6]), 16, 16)
	return err == nil && 0xD800 <= r && r <= 0xDFFF
}

// pointerField names a JSON pointer's place as errors[].field does.
func pointerField(p jsontext.Pointer) string {
	var parts []string
	for tok := range p.Tokens() {
		parts = append(parts, tok)
	}
	return fieldName(strings.Join(parts, "."))
}

// fieldName is path as a field name: "body" for the whole body, at most
// maxFieldLength characters (a member name is the client's to choose).
func fieldName(path string) string {
	if path == "" {
		return "body"
	}
	if utf8.RuneCountInString(path) > maxFieldLength {
		path = string([]rune(path)[:maxFieldLength-1]) + "…"
	}
	return path
}

// checkValue applies decodeJSON's rules to v, described by s (nil where the
// spec says nothing, as for unknown members), at path, and returns v with
// its date-times normalised.
func checkValue(v any, s *openapi3.Schema, path string, bad *bodyErrors) any {
	join := func(k string) string {
		if path == "" {
			return k
		}
		return path + "." + k
	}
	switch x := v.(type) {
	case map[string]any:
		checkNames(x, s, join, bad)
		for k, e := range x {
			x[k] = checkValue(e, property(s, k), join(k), bad)
		}
	case []any:
		var items *openapi3.Schema
		if s != nil && s.Items != nil {
			items = s.Items.Value
		}
		for i, e := range x {
			x[i] = checkValue(e, items, join(fmt.Sprint(i)), bad)
		}
	case string:
		if strings.IndexByte(x, 0) >= 0 {
			*bad = append(*bad, gen.FieldError{Field: fieldName(path), Message: msgUnstorable})
		}
		if s != nil && s.Format == "date-time" {
			return strings.ToUpper(x)
		}
	case json.Number:
		if s != nil && s.Type.Is(openapi3.TypeInteger) && strings.ContainsAny(string(x), ".eE") {
			*bad = append(*bad, gen.FieldError{Field: fieldName(path), Message: msgNotInteger})
		}
	}
	return v
}

func property(s *openapi3.Schema, name string) *openapi3.Schema {
	if s == nil || s.Properties[name] == nil {
		return nil
	}
	return s.Properties[name].Value
}

// checkNames refuses members of obj whose names fold together, or fold to
// a property of s without being it; each problem is reported once, under
// the property's name when there is one.
func checkNames(obj map[string]any, s *openapi3.Schema, join func(string) string, bad *bodyErrors) {
	var props map[string]string // folded -> property
	if s != nil {
		props = make(map[string]string, len(s.Properties))
		for p := range s.Properties {
			props[foldName(p)] = p
		}
	}
	names := make([]string, 0, len(obj))
	for k := range obj {
		names = append(names, k)
	}
	slices.Sort(names) // the first of a group names it, the same each time
	reported := make(map[string]bool)
	seen := make(map[string]string, len(names)) // folded -> first name
	for _, k := range names {
		f := foldName(k)
		first, twin := seen[f]
		if !twin {
			seen[f] = k
			first = k
		}
		prop, known := props[f]
		if !twin && (!known || prop == k) {
			continue
		}
		field := first
		if known {
			field = prop
		}
		if !reported[f] {
			reported[f] = true
			*bad = append(*bad, gen.FieldError{Field: fieldName(join(field)), Message: msgTwin})
		}
	}
}

// foldName maps s to one representative of the names strings.EqualFold
// takes for it (Unicode simple folding): each rune becomes the smallest of
// its folding orbit, so that "K", "k" and the Kelvin sign agree.
func foldName(s string) string {
	return strings.Map(func(r rune) rune {
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		return least
	}, s)
}

// validatedBinder is the Echo Binder of the generated strict handlers: it
// binds the value the validator decoded and checked (exact member names),
// and nothing else. A body that reached a handler unvalidated is a bug.
type validatedBinder struct{}

func (validatedBinder) Bind(i any, c echo.Context) error {
	req := c.Request()
	vb, ok := req.Body.(interface{ ValidatedValue() any })
	if !ok {
		if req.ContentLength == 0 { // an optional body left out
			return io.EOF
		}
		return errors.New("server: a request body reached its handler unvalidated")
	}
	if err := runtime.BindJSONValue(vb.ValidatedValue(), i); err != nil {
		return fmt.Errorf("server: bind the validated body: %w", err)
	}
	return nil
}
