// Package webui serves polyvirt's web administration UI: the files that
// scripts/build-ui.sh puts in dist/ (plain ES modules from web/ and the
// npm packages they use, no bundler), embedded in the binary. A binary
// built without them serves a page that says how to build the UI.
//
// Every answer carries the security headers (SecurityHeaders): a
// Content-Security-Policy without inline scripts and with frame-ancestors
// 'none', X-Content-Type-Options nosniff; files are sent gzip-compressed to
// browsers that take it, with an ETag.
package webui

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
)

//go:embed all:dist
var dist embed.FS

// Prefix is where the UI's files are served; the UI's page is "/".
const Prefix = "/ui/"

// The Content-Security-Policy of the UI's pages: scripts from the engine
// only (no inline script, no eval), no frames around it, connections
// (fetch, event streams, websockets) to the engine only.
const (
	pagePolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; " +
		"connect-src 'self'; font-src 'self'; manifest-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
	// consolePolicy is the console page's: xterm.js sets its colours and
	// sizes in <style> elements it writes, so that page allows inline
	// styles (never inline scripts).
	consolePolicy = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; " +
		"connect-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
	// apiPolicy is every other answer's (JSON, images): nothing runs.
	apiPolicy = "default-src 'none'; frame-ancestors 'none'; sandbox"
)

// SecurityHeaders sets the headers every answer of the engine carries;
// the UI's pages replace the Content-Security-Policy with theirs.
func SecurityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Strict-Transport-Security", "max-age=31536000")
		hd.Set("Cross-Origin-Opener-Policy", "same-origin")
		hd.Set("Cross-Origin-Resource-Policy", "same-origin")
		hd.Set("Content-Security-Policy", apiPolicy)
		h.ServeHTTP(w, r)
	})
}

// UI serves the UI's page and files.
type UI struct {
	files fs.FS
	built bool
	mu    sync.Mutex
	cache map[string]*asset
}

// asset is one file, ready to send.
type asset struct {
	body, gz []byte
	ctype    string
	etag     string
}

// New returns the UI of the embedded files.
func New() *UI {
	sub, _ := fs.Sub(dist, "dist")
	return NewFS(sub)
}

// NewFS returns the UI of the files of fsys (index.html at its root).
func NewFS(fsys fs.FS) *UI {
	_, err := fs.Stat(fsys, "index.html")
	return &UI{files: fsys, built: err == nil, cache: map[string]*asset{}}
}

// Built tells whether the UI's files are there.
func (u *UI) Built() bool { return u.built }

// Patterns are the http.ServeMux patterns of the UI: its page, its files
// and the site's icon.
var Patterns = []string{"GET /{$}", "GET " + Prefix, "GET /favicon.ico"}

// ServeHTTP serves a request of one of Patterns.
func (u *UI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch p := r.URL.Path; {
	case p == "/":
		u.servePage(w, r, "index.html", pagePolicy)
	case p == Prefix+"console.html":
		u.servePage(w, r, "console.html", consolePolicy)
	case p == "/favicon.ico":
		u.serve(w, r, "favicon.svg", pagePolicy)
	case strings.HasPrefix(p, Prefix):
		u.serveFile(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (u *UI) servePage(w http.ResponseWriter, r *http.Request, name, policy string) {
	if !u.built {
		w.Header().Set("Content-Security-Policy", pagePolicy)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(notBuiltPage))
		return
	}
	u.serve(w, r, name, policy)
}

func (u *UI) serveFile(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, Prefix)
	if name == "" || strings.HasSuffix(name, "/") || name != path.Clean(name) || strings.HasPrefix(name, ".") {
		http.NotFound(w, r)
		return
	}
	u.serve(w, r, name, pagePolicy)
}

func (u *UI) serve(w http.ResponseWriter, r *http.Request, name, policy string) {
	a, err := u.asset(name)
	if err != nil {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte("no such file: " + name + "\n"))
		return
	}
	h := w.Header()
	h.Set("Content-Security-Policy", policy)
	h.Set("Content-Type", a.ctype)
	h.Set("ETag", a.etag)
	// Revalidated on every load: the file names do not change with
	// their content.
	h.Set("Cache-Control", "no-cache")
	h.Add("Vary", "Accept-Encoding")
	if match := r.Header.Get("If-None-Match"); match != "" && match == a.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := a.body
	if a.gz != nil && acceptsGzip(r) {
		h.Set("Content-Encoding", "gzip")
		body = a.gz
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// asset reads (once) a file and its gzip form.
func (u *UI) asset(name string) (*asset, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if a, ok := u.cache[name]; ok {
		return a, nil
	}
	b, err := fs.ReadFile(u.files, name)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	a := &asset{body: b, ctype: contentType(name), etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
	if compressible(a.ctype) && len(b) > 512 {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		_, _ = zw.Write(b)
		_ = zw.Close()
		if buf.Len() < len(b) {
			a.gz = buf.Bytes()
		}
	}
	u.cache[name] = a
	return a, nil
}

func contentType(name string) string {
	switch path.Ext(name) {
	case ".js", ".mjs":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".html":
		return "text/html; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".json", ".map":
		return "application/json"
	}
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}

func compressible(ctype string) bool {
	return strings.HasPrefix(ctype, "text/") || ctype == "image/svg+xml" || ctype == "application/json"
}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(enc), "gzip") && strings.ReplaceAll(q, " ", "") != "q=0" {
			return true
		}
	}
	return false
}

// notBuiltPage is served when the binary was built without the UI.
const notBuiltPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>polyvirt: the web UI is not built</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><main>
<h1>The web UI is not built into this polyvirt</h1>
<p>This engine works (its API is under <a href="/api/v1/openapi.json">/api/v1</a>), but its binary
was built without the web UI's files. Build them, then polyvirt again:</p>
<pre>./scripts/build-ui.sh        # needs node and npm (Debian's nodejs and npm)
CGO_ENABLED=0 go build -o bin/polyvirt ./cmd/polyvirt</pre>
<p><code>./scripts/up.sh</code> and <code>./scripts/test.sh</code> do both.</p>
</main></body></html>
`
