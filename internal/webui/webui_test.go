package webui

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
)

var big = strings.Repeat("export const polyvirt = 'a UI module';\n", 100)

func testFiles() fstest.MapFS {
	return fstest.MapFS{
		"index.html":      {Data: []byte(`<!doctype html><script type="module" src="/ui/js/app.js"></script>`)},
		"console.html":    {Data: []byte(`<!doctype html><title>console</title>`)},
		"js/app.js":       {Data: []byte(big)},
		"img/favicon.svg": {Data: []byte(`<svg xmlns="http://www.w3.org/2000/svg"/>`)},
		".hidden":         {Data: []byte("secret")},
	}
}

func get(u *UI, path string, hdr ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("GET", path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	u.ServeHTTP(w, r)
	return w
}

// TestServe: the pages with their Content-Security-Policy, the files with
// their types, what is not a file refused.
func TestServe(t *testing.T) {
	u := NewFS(testFiles())
	if !u.Built() {
		t.Fatal("a UI with index.html is not built")
	}
	tests := []struct {
		path   string
		status int
		ctype  string
		csp    string // a part of the Content-Security-Policy
	}{
		{"/", 200, "text/html; charset=utf-8", "script-src 'self'; style-src 'self';"},
		{"/ui/console.html", 200, "text/html; charset=utf-8", "style-src 'self' 'unsafe-inline'"},
		{"/ui/js/app.js", 200, "text/javascript; charset=utf-8", "frame-ancestors 'none'"},
		{"/ui/img/favicon.svg", 200, "image/svg+xml", "frame-ancestors 'none'"},
		{"/ui/nothing.js", 404, "text/plain; charset=utf-8", ""},
		{"/ui/", 404, "", ""},
		{"/ui/js/", 404, "", ""},
		{"/ui/js/../index.html", 404, "", ""},
		{"/ui/.hidden", 404, "", ""},
		{"/elsewhere", 404, "", ""},
	}
	for _, tc := range tests {
		w := get(u, tc.path)
		if w.Code != tc.status {
			t.Errorf("GET %s: %d; want %d", tc.path, w.Code, tc.status)
			continue
		}
		if tc.ctype != "" && w.Header().Get("Content-Type") != tc.ctype {
			t.Errorf("GET %s: Content-Type %q; want %q", tc.path, w.Header().Get("Content-Type"), tc.ctype)
		}
		csp := w.Header().Get("Content-Security-Policy")
		if tc.csp != "" && (!strings.Contains(csp, tc.csp) || strings.Contains(csp, "script-src 'self' 'unsafe")) {
			t.Errorf("GET %s: Content-Security-Policy %q; want %q in it and no unsafe script", tc.path, csp, tc.csp)
		}
	}
}

// TestCompressionAndRevalidation: gzip for browsers that take it, the same
// bytes once decompressed; an ETag answered 304.
func TestCompressionAndRevalidation(t *testing.T) {
	u := NewFS(testFiles())
	plain := get(u, "/ui/js/app.js")
	if plain.Header().Get("Content-Encoding") != "" || plain.Body.String() != big {
		t.Fatalf("without Accept-Encoding: encoding %q, %d bytes", plain.Header().Get("Content-Encoding"), plain.Body.Len())
	}
	for _, tc := range []struct {
		accept string
		gz     bool
	}{
		{"gzip, deflate, br", true},
		{"br;q=1.0, gzip;q=0.8", true},
		{"gzip;q=0", false},
		{"identity", false},
	} {
		w := get(u, "/ui/js/app.js", "Accept-Encoding", tc.accept)
		if got := w.Header().Get("Content-Encoding") == "gzip"; got != tc.gz {
			t.Errorf("Accept-Encoding %q: gzip %v; want %v", tc.accept, got, tc.gz)
			continue
		}
		if !tc.gz {
			continue
		}
		zr, err := gzip.NewReader(bytes.NewReader(w.Body.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(zr)
		if err != nil || string(b) != big || w.Body.Len() >= len(big)/4 {
			t.Errorf("Accept-Encoding %q: %d bytes compressed, decompressed equal %v (%v)", tc.accept, w.Body.Len(), string(b) == big, err)
		}
	}
	etag := plain.Header().Get("ETag")
	if etag == "" || plain.Header().Get("Cache-Control") != "no-cache" {
		t.Fatalf("ETag %q, Cache-Control %q", etag, plain.Header().Get("Cache-Control"))
	}
	if w := get(u, "/ui/js/app.js", "If-None-Match", etag); w.Code != http.StatusNotModified || w.Body.Len() != 0 {
		t.Errorf("revalidation: %d, %d bytes", w.Code, w.Body.Len())
	}
}

// TestNotBuilt: a binary built without the UI's files serves a page that
// says how to build them.
func TestNotBuilt(t *testing.T) {
	u := NewFS(fstest.MapFS{})
	if u.Built() {
		t.Fatal("an empty UI is built")
	}
	for _, p := range []string{"/", "/ui/console.html"} {
		w := get(u, p)
		if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "./scripts/build-ui.sh") ||
			!strings.Contains(w.Header().Get("Content-Security-Policy"), "frame-ancestors 'none'") {
			t.Errorf("GET %s without the UI: %d %q", p, w.Code, w.Body.String())
		}
	}
}

// TestSecurityHeaders: every answer carries them.
func TestSecurityHeaders(t *testing.T) {
	h := SecurityHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/api/v1/health", nil))
	for k, want := range map[string]string{
		"X-Content-Type-Options":  "nosniff",
		"X-Frame-Options":         "DENY",
		"Referrer-Policy":         "no-referrer",
		"Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; sandbox",
	} {
		if got := w.Header().Get(k); got != want {
			t.Errorf("%s: %q; want %q", k, got, want)
		}
	}
}

// FuzzServe: any path and Accept-Encoding is answered without a panic, and
// only files of the UI are served.
func FuzzServe(f *testing.F) {
	u := NewFS(testFiles())
	f.Add("/ui/js/app.js", "gzip")
	f.Add("/ui/../.hidden", "gzip;q=0, br")
	f.Add("/ui/.hidden", ";;,")
	f.Fuzz(func(t *testing.T, path, accept string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.URL.Path = path
		r.Header.Set("Accept-Encoding", accept)
		w := httptest.NewRecorder()
		u.ServeHTTP(w, r)
		if w.Code == 200 && strings.Contains(w.Body.String(), "secret") {
			t.Fatalf("GET %q served a hidden file", path)
		}
	})
}
