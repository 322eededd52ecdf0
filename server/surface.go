package server

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

// DefaultHeaderLimit bounds the request line and headers, in bytes. JWTs
// and API keys are well under 1 KiB; 8 KiB is what most proxies allow.
const DefaultHeaderLimit = 8 << 10

// headerBytes is the size of the request line and headers roughly as they
// came over the wire.
func headerBytes(r *http.Request) int {
	n := len(r.Method) + 1 + len(r.RequestURI) + 1 + len(r.Proto) + 2
	n += len("Host: ") + len(r.Host) + 2
	for name, values := range r.Header {
		for _, v := range values {
			n += len(name) + 2 + len(v) + 2
		}
	}
	return n
}

// limitHeaders refuses requests whose headers exceed the limit with a 431
// problem. net/http's own MaxHeaderBytes, set above this limit, stays the
// hard stop for headers too large to read at all, which it answers in
// plain text before any handler runs.
func (s *Server) limitHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if headerBytes(c.Request()) > s.cfg.HeaderLimit {
			return errHeadersTooLarge(s.cfg.HeaderLimit)
		}
		return next(c)
	}
}

// corsHeaders are what a browser client sends and needs to read: the
// credentials, the request ID and the problem documents' companions.
var (
	corsAllowHeaders  = []string{echo.HeaderAuthorization, echo.HeaderContentType, apiKeyHeader, echo.HeaderXRequestID}
	corsExposeHeaders = []string{echo.HeaderRetryAfter, echo.HeaderWWWAuthenticate, echo.HeaderXRequestID, echo.HeaderAllow}
)

// cors lets browsers on the given origins call the API. The credentials
// travel in headers, never in cookies, so credentialed CORS (and with it
// the "*" plus credentials trap) is never enabled. With no origins it is
// nil: no CORS headers at all, and browsers keep the same-origin policy.
func cors(origins []string) (echo.MiddlewareFunc, error) {
	if len(origins) == 0 {
		return nil, nil
	}
	cfg := middleware.CORSConfig{
		AllowMethods:  []string{http.MethodGet, http.MethodPost, http.MethodDelete},
		AllowHeaders:  corsAllowHeaders,
		ExposeHeaders: corsExposeHeaders,
		MaxAge:        600,
	}
	if len(origins) == 1 && origins[0] == "*" {
		cfg.AllowOrigins = []string{"*"}
		return middleware.CORSWithConfig(cfg), nil
	}
	allowed := make(map[string]bool, len(origins))
	for _, o := range origins {
		norm, err := NormalizeOrigin(o)
		if err != nil {
			return nil, err
		}
		allowed[norm] = true
	}
	// Exact matches only: Echo's own list would read "*" inside an origin
	// as a wildcard and match subdomains.
	cfg.AllowOriginFunc = func(origin string) (bool, error) { return allowed[strings.ToLower(origin)], nil }
	return middleware.CORSWithConfig(cfg), nil
}

// NormalizeOrigin checks that o is an origin as browsers send it
// (scheme://host[:port], no path) and returns it in lower case. "*" is
// returned as it is.
func NormalizeOrigin(o string) (string, error) {
	if o == "*" {
		return o, nil
	}
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || strings.Contains(u.Host, "*") {
		return "", fmt.Errorf("CORS origin %q is not of the form https://host[:port]", o)
	}
	return strings.ToLower(u.Scheme + "://" + u.Host), nil
}
