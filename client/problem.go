package client

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The stable problem types authapi returns; switch on Problem.Type.
const (
	TypeMalformedJSON        = "urn:authapi:problem:malformed-json"
	TypeValidationFailed     = "urn:authapi:problem:validation-failed"
	TypeUnsupportedMediaType = "urn:authapi:problem:unsupported-media-type"
	TypeBodyTooLarge         = "urn:authapi:problem:body-too-large"
	TypeUnauthenticated      = "urn:authapi:problem:unauthenticated"
	TypeInvalidCredentials   = "urn:authapi:problem:invalid-credentials"
	TypeWrongPassword        = "urn:authapi:problem:wrong-password" // ChangePassword's current password
	TypeInvalidToken         = "urn:authapi:problem:invalid-token"
	TypeInvalidAPIKey        = "urn:authapi:problem:invalid-api-key"
	TypeAPIKeyExpired        = "urn:authapi:problem:api-key-expired"
	TypeInsufficientScope    = "urn:authapi:problem:insufficient-scope"
	TypePathNotAllowed       = "urn:authapi:problem:path-not-allowed"
	TypeNotFound             = "urn:authapi:problem:not-found"
	TypeAlreadyRegistered    = "urn:authapi:problem:already-registered"
	TypeAPIKeyLimit          = "urn:authapi:problem:api-key-limit"
	TypeTooManyAttempts      = "urn:authapi:problem:too-many-attempts"
	TypeUnavailable          = "urn:authapi:problem:unavailable"
	TypeBusy                 = "urn:authapi:problem:busy"
	TypeInternal             = "urn:authapi:problem:internal"

	// TypeReauthenticationRequired: the token is valid, but its login is
	// too old for the operation (DeleteAccount): log in again and retry.
	TypeReauthenticationRequired = "urn:authapi:problem:reauthentication-required"
)

// Problem is a refused request: the server's RFC 9457 problem document,
// plus what its headers say. Every non-2xx answer is one, including those
// that did not come as problem+json (from a proxy, say), which get
// the status and its text.
type Problem struct {
	Status    int
	Type      string // a Type... constant, or "about:blank" for a non-problem answer
	Title     string
	Detail    string
	Instance  string
	RequestID string
	// Errors lists every invalid field, for validation failures (422) and
	// taken fields (409).
	Errors []FieldError
	// RetryAfter is when to try again, from Retry-After (429, 503); 0 if
	// the server did not say.
	RetryAfter time.Duration
}

func (p *Problem) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "authapi: %d %s", p.Status, p.Title)
	if p.Detail != "" {
		b.WriteString(": " + p.Detail)
	}
	for i, f := range p.Errors {
		sep := ", "
		if i == 0 {
			sep = " ("
		}
		b.WriteString(sep + f.Field + " " + f.Message)
	}
	if len(p.Errors) > 0 {
		b.WriteString(")")
	}
	return b.String()
}

// Field returns the message for one invalid field, and whether the problem
// names it.
func (p *Problem) Field(name string) (string, bool) {
	for _, f := range p.Errors {
		if f.Field == name {
			return f.Message, true
		}
	}
	return "", false
}

// responseError makes the *Problem a non-success response is.
func responseError(resp *http.Response, body []byte) error {
	p := &Problem{Status: resp.StatusCode, Type: "about:blank", Title: http.StatusText(resp.StatusCode)}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
		p.RetryAfter = time.Duration(s) * time.Second
	}
	if resp.StatusCode < 400 {
		// A success the spec does not describe (a 200 without a JSON body,
		// a redirect): still an error, never a nil result.
		p.Detail = fmt.Sprintf("unexpected %d response (Content-Type %q)", resp.StatusCode, resp.Header.Get("Content-Type"))
		return p
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/problem+json" {
		return p
	}
	var doc struct {
		Type      string       `json:"type"`
		Title     string       `json:"title"`
		Detail    string       `json:"detail"`
		Instance  string       `json:"instance"`
		RequestID string       `json:"request_id"`
		Errors    []FieldError `json:"errors"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		p.Detail = "the problem document is not JSON: " + err.Error()
		return p
	}
	if doc.Type != "" {
		p.Type = doc.Type
	}
	if doc.Title != "" {
		p.Title = doc.Title
	}
	p.Detail, p.Instance, p.RequestID, p.Errors = doc.Detail, doc.Instance, doc.RequestID, doc.Errors
	return p
}
