package server

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"strings"
	"sync"

	"github.com/labstack/echo/v4"
	swaggerfiles "github.com/swaggo/files/v2"
)

// The docs portal at /docs: Swagger UI from the swaggo/files module (its
// distribution, embedded in the binary at the version go.mod pins), driven
// by docsui/, which adds the auth bar. Everything the page loads comes from
// this server, so it works offline, and the Content-Security-Policy says
// so to the browser.

//go:embed docsui
var docsUI embed.FS

// docsCSP allows only this origin: scripts and styles from /docs, requests
// to the API, and the data: URIs Swagger UI's stylesheet draws icons with.
const docsCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// docsFile is one file the portal serves.
type docsFile struct {
	fsys        fs.FS
	name        string
	contentType string
}

// docsFiles maps a path under /docs/ to its file. Only what the page uses
// is served, not the whole distribution (source maps, sample pages).
var docsFiles = map[string]docsFile{
	"":                            {docsUI, "docsui/index.html", "text/html; charset=utf-8"},
	"portal.js":                   {docsUI, "docsui/portal.js", "text/javascript; charset=utf-8"},
	"portal.css":                  {docsUI, "docsui/portal.css", "text/css; charset=utf-8"},
	"assets/swagger-ui-bundle.js": {swaggerfiles.FS, "swagger-ui-bundle.js", "text/javascript; charset=utf-8"},
	"assets/swagger-ui.css":       {swaggerfiles.FS, "swagger-ui.css", "text/css; charset=utf-8"},
	"assets/favicon-32x32.png":    {swaggerfiles.FS, "favicon-32x32.png", "image/png"},
}

// docsContent is a served file, read once, with its entity tag.
type docsContent struct {
	body []byte
	etag string
}

var (
	docsOnce  sync.Once
	docsCache map[string]docsContent
	docsErr   error
)

func loadDocs() (map[string]docsContent, error) {
	docsOnce.Do(func() {
		docsCache = make(map[string]docsContent, len(docsFiles))
		for p, f := range docsFiles {
			b, err := fs.ReadFile(f.fsys, f.name)
			if err != nil {
				docsErr = err
				return
			}
			sum := sha256.Sum256(b)
			docsCache[p] = docsContent{body: b, etag: `"` + hex.EncodeToString(sum[:16]) + `"`}
		}
	})
	return docsCache, docsErr
}

// docs serves the portal's files (GET /docs, /docs/*).
func (s *Server) docs(c echo.Context) error {
	p := strings.TrimPrefix(c.Request().URL.Path, "/docs")
	if p == "/" {
		return c.Redirect(http.StatusMovedPermanently, "/docs")
	}
	p = strings.TrimPrefix(p, "/")
	f, ok := docsFiles[p]
	if !ok {
		return echo.ErrNotFound
	}
	files, err := loadDocs()
	if err != nil {
		return err
	}
	content := files[p]
	h := c.Response().Header()
	h.Set("Content-Security-Policy", docsCSP)
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	// The files change only with the binary: revalidate, and let the ETag
	// answer 304 instead of sending Swagger UI's 1.4 MB again.
	h.Set(echo.HeaderCacheControl, "no-cache")
	h.Set("ETag", content.etag)
	if match := c.Request().Header.Get("If-None-Match"); match != "" && strings.Contains(match, content.etag) {
		return c.NoContent(http.StatusNotModified)
	}
	return c.Blob(http.StatusOK, f.contentType, content.body)
}
