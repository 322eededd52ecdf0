package server

import (
	"errors"
	"fmt"
	"maps"
	"mime"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

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
				// The handler binds the very value validated (body.go).
				KeepValidatedValue: true,
				// Handlers apply defaults themselves; the body stays as sent.
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
			if p := v.classify(req, hasBody, result, repeatedQuery(req, route.Operation)); p != nil {
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
func (v *validator) classify(req *http.Request, hasBody bool, result error, fields []gen.FieldError) error {
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
	)
	for _, err := range all {
		var (
			mbe     *http.MaxBytesError
			prob    *Problem
			secErr  *openapi3filter.SecurityRequirementsError
			reqErr  *openapi3filter.RequestError
			bodyErr bodyErrors
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
		case errors.As(err, &bodyErr):
			fields = append(fields, bodyErr...)
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

// repeatedQuery refuses a query parameter of op given more than once:
// kin-openapi would check one of the values and the handler might read
// another.
func repeatedQuery(req *http.Request, op *openapi3.Operation) []gen.FieldError {
	if req.URL.RawQuery == "" {
		return nil
	}
	var out []gen.FieldError
	q := req.URL.Query()
	for _, p := range op.Parameters {
		if p.Value != nil && p.Value.In == openapi3.ParameterInQuery && len(q[p.Value.Name]) > 1 {
			out = append(out, gen.FieldError{Field: p.Value.Name, Message: "is given more than once"})
		}
	}
	return out
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
		return fmt.Sprintf("must be at least %d %s", s.MinLength, plural(s.MinLength, "character"))
	case "maxLength":
		if s.MaxLength != nil {
			return fmt.Sprintf("must be at most %d %s", *s.MaxLength, plural(*s.MaxLength, "character"))
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
	case "minProperties":
		// An object that must set something: name what it may set.
		names := slices.Sorted(maps.Keys(s.Properties))
		if s.MinProps == 1 && len(names) > 0 {
			return "must set " + strings.Join(names, " or ")
		}
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
	case "int32", "int64":
		return "must be a whole number"
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
