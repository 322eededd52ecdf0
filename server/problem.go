package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"authapi/account"
	"authapi/gen"
	"authapi/password"
	"authapi/store"
)

// Problem is an error that renders as an RFC 9457 problem document. Every
// non-2xx response is one; handleError is the only place that writes them.
type Problem struct {
	Status int
	Kind   string // the last segment of the type URI
	Title  string
	Detail string
	Errors []gen.FieldError
	Header http.Header // extra response headers: WWW-Authenticate, Retry-After
	cause  error       // logged, never sent
}

func (p *Problem) Error() string {
	if p.cause != nil {
		return fmt.Sprintf("%d %s: %s: %v", p.Status, p.Kind, p.Detail, p.cause)
	}
	return fmt.Sprintf("%d %s: %s", p.Status, p.Kind, p.Detail)
}

func (p *Problem) Unwrap() error { return p.cause }

// StatusClientClosedRequest is nginx's status for a request whose client
// hung up before the answer: logged and counted as such, never sent.
const StatusClientClosedRequest = 499

// problemTypePrefix makes the stable type URIs clients switch on.
const problemTypePrefix = "urn:authapi:problem:"

func newProblem(status int, kind, title, detail string) *Problem {
	return &Problem{Status: status, Kind: kind, Title: title, Detail: detail}
}

func (p *Problem) with(header, value string) *Problem {
	if p.Header == nil {
		p.Header = make(http.Header)
	}
	p.Header.Set(header, value)
	return p
}

func retryAfter(p *Problem, d time.Duration) *Problem {
	return p.with("Retry-After", strconv.Itoa(int(math.Max(1, math.Ceil(d.Seconds())))))
}

func validationProblem(errs []gen.FieldError) *Problem {
	fields := make(map[string]bool, len(errs))
	for _, e := range errs {
		fields[e.Field] = true
	}
	detail := "1 field is invalid."
	if len(fields) != 1 {
		detail = fmt.Sprintf("%d fields are invalid.", len(fields))
	}
	p := newProblem(http.StatusUnprocessableEntity, "validation-failed", "Validation failed", detail)
	p.Errors = errs
	return p
}

var (
	errMalformedJSON = newProblem(http.StatusBadRequest, "malformed-json", "Malformed JSON",
		"The request body is not well-formed JSON.")
	errMissingBody = newProblem(http.StatusBadRequest, "malformed-json", "Malformed JSON",
		"The request body is empty; send a JSON object.")
	errUnsupportedMediaType = newProblem(http.StatusUnsupportedMediaType, "unsupported-media-type", "Unsupported media type",
		"Send the request body as application/json (UTF-8).")
	errInvalidCredentials = newProblem(http.StatusUnauthorized, "invalid-credentials", "Invalid credentials",
		"The username or password is incorrect.")
	errWrongPassword = newProblem(http.StatusForbidden, "wrong-password", "Wrong password",
		"The current password is wrong.")
	errKeyNotFound = newProblem(http.StatusNotFound, "not-found", "Not found",
		"No API key with this ID belongs to you.")
	errBusy = retryAfter(newProblem(http.StatusServiceUnavailable, "busy", "Service busy",
		"Too many password checks are in progress; try again shortly."), time.Second)
	errUnavailable = retryAfter(newProblem(http.StatusServiceUnavailable, "unavailable", "Service unavailable",
		"The database is unreachable; try again shortly."), time.Second)
	errInternal = newProblem(http.StatusInternalServerError, "internal", "Internal error",
		"Something went wrong on our side.")
	errClientClosed = newProblem(StatusClientClosedRequest, "client-closed-request", "Client closed request",
		"The client closed the connection before the answer was ready.")
)

// The kinds of 429, one per limit, so that a client can tell which it met;
// each carries Retry-After.
const (
	limitAddress  = "rate-limited"         // AUTH_RATE_LIMIT_PER_ADDRESS
	limitAttempts = "too-many-attempts"    // logins and registrations
	limitFailures = "too-many-failures"    // failed credential checks
	limitKeys     = "too-many-key-changes" // AUTH_KEY_WRITES_PER_USER
)

var limitTitles = map[string]string{
	limitAddress:  "Too many requests",
	limitAttempts: "Too many attempts",
	limitFailures: "Too many failed authentications",
	limitKeys:     "Too many key changes",
}

// A refusal is a 429 of one limit: its kind (the problem type) and what it
// tells the client. Every 429's wording is here.
type refusal struct{ kind, detail string }

var (
	refuseRequests       = refusal{limitAddress, "Too many requests from your address; slow down."}
	refuseConcurrent     = refusal{limitAddress, "Too many requests at once from your address; wait for answers before sending more."}
	refuseLogins         = refusal{limitAttempts, "Too many logins from your address; try again later."}
	refuseAtOnce         = refusal{limitAttempts, "Too many attempts at once from your address; try again shortly."}
	refuseRegistrations  = refusal{limitAttempts, "Too many registrations from your address; try again later."}
	refuseUserFailures   = refusal{limitAttempts, "Too many failed logins for this username from your address; try again later."}
	refuseAddrFailures   = refusal{limitAttempts, "Too many failed logins from your address; try again later."}
	refusePasswordChecks = refusal{limitAttempts, "Too many failed password checks for your account from your address; try again later."}
	refuseAuthFailures   = refusal{limitFailures, "Too many failed authentications from your address; try again later."}
	refuseKeyChanges     = refusal{limitKeys, "Too many API key changes for your account; try again later."}
)

// after is the 429: a retry can succeed after wait.
func (r refusal) after(wait time.Duration) *Problem {
	return retryAfter(newProblem(http.StatusTooManyRequests, r.kind, limitTitles[r.kind], r.detail), wait)
}

// loginRefusal words a refusal of the login throttle, for the client and
// for the log.
func loginRefusal(r store.Refusal) (refusal, string) {
	switch {
	case r.Contended:
		return refuseAtOnce, "another login from this address holds its throttle"
	case r.ByAddress:
		return refuseAddrFailures, "too many failures from this address"
	}
	return refuseUserFailures, "too many failures for this username and address"
}

func bodyTooLarge(limit int64) *Problem {
	return newProblem(http.StatusRequestEntityTooLarge, "body-too-large", "Request body too large",
		fmt.Sprintf("The request body is larger than %d bytes.", limit))
}

func errHeadersTooLarge(limit int) *Problem {
	return newProblem(http.StatusRequestHeaderFieldsTooLarge, "headers-too-large", "Request headers too large",
		fmt.Sprintf("The request line and headers are larger than %d bytes.", limit))
}

// problemFor maps any error to the problem that describes it to a client:
// this is the one table from errors to statuses.
func (s *Server) problemFor(err error) *Problem {
	var (
		p        *Problem
		conflict *store.ConflictError
		rule     *account.Error
		httpErr  *echo.HTTPError
		tooLarge *http.MaxBytesError
	)
	switch {
	case errors.As(err, &p):
		return p
	case errors.As(err, &conflict):
		return conflictProblem(conflict)
	case errors.Is(err, store.ErrKeyLimit):
		return newProblem(http.StatusConflict, "api-key-limit", "Too many API keys",
			fmt.Sprintf("You have %d active API keys, the most allowed; revoke one first.", s.cfg.MaxActiveKeys))
	case errors.Is(err, store.ErrUnavailable):
		return errUnavailable
	case errors.Is(err, password.ErrBusy):
		return errBusy
	case errors.As(err, &rule):
		return validationProblem([]gen.FieldError{{Field: orBody(rule.Field), Message: rule.Message}})
	case errors.Is(err, password.ErrLength):
		return validationProblem([]gen.FieldError{{Field: "password", Message: fmt.Sprintf("must be %d to %d characters", password.MinLength, password.MaxLength)}})
	case errors.Is(err, store.ErrInvalidText):
		return validationProblem([]gen.FieldError{{Field: "body", Message: "contains text that cannot be stored (NUL or invalid UTF-8)"}})
	case errors.As(err, &tooLarge):
		return bodyTooLarge(tooLarge.Limit)
	case errors.As(err, &httpErr):
		return s.echoProblem(httpErr)
	}
	return errInternal
}

func conflictProblem(c *store.ConflictError) *Problem {
	p := newProblem(http.StatusConflict, "already-registered", "Already registered", "")
	names := map[string]string{"username": "username", "email": "email address"}
	var said []string
	for _, f := range c.Fields {
		p.Errors = append(p.Errors, gen.FieldError{Field: f, Message: "is already registered"})
		said = append(said, names[f])
	}
	p.Detail = "The " + strings.Join(said, " and the ") + " " + map[bool]string{true: "is", false: "are"}[len(said) == 1] + " already registered."
	return p
}

// echoProblem describes the errors Echo's router and binder return.
func (s *Server) echoProblem(e *echo.HTTPError) *Problem {
	switch e.Code {
	case http.StatusNotFound:
		return newProblem(http.StatusNotFound, "not-found", "Not found", "There is no endpoint at this path.")
	case http.StatusMethodNotAllowed:
		return newProblem(http.StatusMethodNotAllowed, "method-not-allowed", "Method not allowed",
			"This endpoint does not support this method; the Allow header lists those it does.")
	case http.StatusRequestEntityTooLarge:
		return bodyTooLarge(s.cfg.BodyLimit)
	case http.StatusBadRequest:
		return errMalformedJSON
	case http.StatusUnsupportedMediaType:
		return errUnsupportedMediaType
	}
	if e.Code >= 400 && e.Code < 500 {
		return newProblem(e.Code, "client-error", http.StatusText(e.Code), http.StatusText(e.Code)+".")
	}
	return errInternal
}

// handleError is Echo's HTTPErrorHandler: it writes every error response.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	var httpErr *echo.HTTPError
	if errors.As(err, &httpErr) && httpErr.Code == http.StatusMethodNotAllowed &&
		strings.Count(c.Request().URL.Path, "/") != strings.Count(c.Path(), "/") {
		// Echo lets a trailing path parameter swallow slashes, so that
		// /v1/auth/api-keys/x/y "matches" the revoke route and a GET there
		// would be 405. It is no route at all.
		c.Response().Header().Del("Allow")
		err = echo.ErrNotFound
	}
	p := s.problemFor(err)
	info := infoFrom(c.Request().Context())
	if c.Path() == verifyPath && p.Status >= 400 && p.Status < 500 {
		s.refusals.put(info, c.Request(), p, time.Now())
	}
	if p.Status == http.StatusTooManyRequests && s.cfg.ThrottleDelay > 0 && !info.replayed {
		hold(c.Request().Context(), s.cfg.ThrottleDelay)
	}
	if errors.Is(c.Request().Context().Err(), context.Canceled) {
		// The client hung up: whatever failed, it failed for that. Not a
		// server error (anyone could raise those by hanging up), and the
		// answer reaches nobody; nginx's 499 names it in the log and the
		// metrics.
		p = errClientClosed
	}
	if p.Status >= 500 {
		level := slog.LevelWarn
		if p.Status == http.StatusInternalServerError {
			level = slog.LevelError
		}
		s.cfg.Logger.Log(c.Request().Context(), level, "request failed", "request_id", info.id, "status", p.Status, "error", err)
	}
	h := c.Response().Header()
	for k, v := range p.Header {
		h[k] = v
	}
	h.Set(echo.HeaderContentType, "application/problem+json")
	// instance names this occurrence without echoing the request's path,
	// which may carry the very value a validation failure must not repeat.
	instance := "urn:authapi:request:" + info.id
	body := gen.Problem{
		Type:      problemTypePrefix + p.Kind,
		Title:     p.Title,
		Status:    int32(p.Status),
		Detail:    p.Detail,
		Instance:  &instance,
		RequestID: &info.id,
	}
	if len(p.Errors) > 0 {
		body.Errors = &p.Errors
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // the details quote headers such as <token>
	if err := enc.Encode(body); err != nil {
		buf.Reset()
		buf.WriteString(`{"type":"urn:authapi:problem:internal","title":"Internal error","status":500,"detail":"Something went wrong on our side."}`)
	}
	c.Response().WriteHeader(p.Status)
	if c.Request().Method != http.MethodHead {
		c.Response().Write(buf.Bytes())
	}
}

// hold waits for d, or until ctx ends (the client hung up).
func hold(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
