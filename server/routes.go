package server

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/labstack/echo/v4"

	"authapi"
	"authapi/gen"
)

// The health checks' paths, which the rate limit exempts.
const (
	pathHealthz = "/healthz"
	pathReadyz  = "/readyz"
)

// addRoutes registers every route on e: the spec's operations, through the
// generated code, each behind the validator; then, by hand, these:
//
//	GET /v1/auth/verify   the spec's verifyApiKey, its headers bound here (verify.go)
//	GET /healthz          liveness: the process answers
//	GET /readyz           readiness: the database answers
//	GET /openapi.yaml     the spec as written
//	GET /openapi.json     the spec as JSON
//	GET /docs, /docs/*    the docs portal (docs.go)
//	GET /metrics          Prometheus metrics, unless Config.MetricsElsewhere
func (s *Server) addRoutes(e *echo.Echo, spec *openapi3.T, v *validator) error {
	routes := &specRouter{e: e, spec: spec, v: v}
	gen.RegisterHandlers(routes, gen.NewStrictHandler(s, nil))
	if routes.err != nil {
		return routes.err
	}
	verify, validated, err := s.verifyRoute(spec, v)
	if err != nil {
		return err
	}
	e.GET(verifyPath, verify, validated) // in place of the generated route

	e.GET(pathHealthz, s.healthz)
	e.GET(pathReadyz, s.readyz)
	e.GET("/openapi.yaml", s.specYAML)
	e.GET("/openapi.json", s.specJSON)
	e.GET("/docs", s.docs)
	e.GET("/docs/*", s.docs)
	if !s.cfg.MetricsElsewhere {
		e.GET("/metrics", s.metrics.handler())
	}
	return nil
}

func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	if err := s.cfg.Store.Ping(ctx); err != nil {
		return errUnavailable
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Server) specYAML(c echo.Context) error {
	return c.Blob(http.StatusOK, "application/yaml", authapi.OpenAPI)
}

func (s *Server) specJSON(c echo.Context) error {
	b, err := openAPIJSON()
	if err != nil {
		return err
	}
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, b)
}

// specRouter is the gen.EchoRouter the generated code registers its routes
// on. It finds each route's operation in the spec and puts the validator in
// front of it, so no generated route can go unvalidated: a route the spec
// does not describe is a start-up error.
type specRouter struct {
	e    *echo.Echo
	spec *openapi3.T
	v    *validator
	err  error
}

var _ gen.EchoRouter = (*specRouter)(nil)

// echoParam matches Echo's ":name" path parameters.
var echoParam = regexp.MustCompile(`:([A-Za-z0-9_]+)`)

func (r *specRouter) add(method, path string, h echo.HandlerFunc, m []echo.MiddlewareFunc) *echo.Route {
	specPath := echoParam.ReplaceAllString(path, "{$1}")
	item := r.spec.Paths.Find(specPath)
	if item == nil || item.GetOperation(method) == nil {
		if r.err == nil {
			r.err = fmt.Errorf("server: %s %s has no operation in the spec", method, path)
		}
		return nil
	}
	return r.e.Add(method, path, h, append([]echo.MiddlewareFunc{r.v.middleware(method, specPath, item)}, m...)...)
}

func (r *specRouter) CONNECT(p string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.add(http.MethodConnect, p, h, m)
}
func (r *specRouter) DELETE(p string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.add(http.MethodDelete, p, h, m)
}
func (r *specRouter) GET(p string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.add(http.MethodGet, p, h, m)
}
func (r *specRouter) HEAD(p string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.add(http.MethodHead, p, h, m)
}
func (r *specRouter) OPTIONS(p string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.add(http.MethodOptions, p, h, m)
}
func (r *specRouter) PATCH(p string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.add(http.MethodPatch, p, h, m)
}
func (r *specRouter) POST(p string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.add(http.MethodPost, p, h, m)
}
func (r *specRouter) PUT(p string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.add(http.MethodPut, p, h, m)
}
func (r *specRouter) TRACE(p string, h echo.HandlerFunc, m ...echo.MiddlewareFunc) *echo.Route {
	return r.add(http.MethodTrace, p, h, m)
}
