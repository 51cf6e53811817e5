package httpx

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"polyvirt/internal/api"
)

type body struct {
	Name string `json:"name"`
	N    int    `json:"n"`
}

func TestDecodeJSON(t *testing.T) {
	cases := []struct {
		name     string
		in       string
		optional bool
		limit    int64
		status   int
		code     string
		field    string
		want     body
	}{
		{name: "good", in: `{"name": "a", "n": 2}`, want: body{Name: "a", N: 2}},
		{name: "empty optional", in: " ", optional: true},
		{name: "empty", in: "", status: 400, code: api.CodeBadRequest},
		{name: "key twice", in: `{"name": "a", "name": "b"}`, status: 400, code: api.CodeDuplicateKey, field: "name"},
		{name: "key twice in another case", in: `{"name": "a", "Name": "b"}`, status: 400, code: api.CodeDuplicateKey},
		{name: "bidi override", in: `{"name": "a\u202e"}`, status: 400, code: api.CodeFormatChars, field: "name"},
		{name: "unknown field", in: `{"nom": "a"}`, status: 400, code: api.CodeInvalidArgument, field: "nom"},
		{name: "wrong type", in: `{"n": "two"}`, status: 400, code: api.CodeInvalidArgument, field: "n"},
		{name: "not JSON", in: `{"n": `, status: 400, code: api.CodeBadRequest},
		{name: "two objects", in: `{} {}`, status: 400, code: api.CodeBadRequest},
		{name: "too large", in: `{"name": "` + strings.Repeat("x", 100) + `"}`, limit: 50, status: 413, code: api.CodeBodyTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/", strings.NewReader(c.in))
			LimitBody(httptest.NewRecorder(), r, c.limit)
			var got body
			err := DecodeJSON(r, &got, c.optional)
			if c.code == "" {
				if err != nil {
					t.Fatalf("error %v", err)
				}
				if diff := cmp.Diff(c.want, got); diff != "" {
					t.Errorf("decoded (-want +got):\n%s", diff)
				}
				return
			}
			e := ErrorOf(err)
			if api.StatusOf(e) != c.status || e.Code != c.code || (c.field != "" && e.Field != c.field) {
				t.Errorf("%d %s at %q (%v); want %d %s at %q", api.StatusOf(e), e.Code, e.Field, e, c.status, c.code, c.field)
			}
		})
	}
}

func TestErrorAnswers(t *testing.T) {
	translate := func(err error) *api.Error {
		if err.Error() == "gone" {
			return &api.Error{Code: api.CodeNotFound, Message: "gone"}
		}
		return nil
	}
	cases := []struct {
		name   string
		err    error
		status int
		code   string
	}{
		{"coded, no status", api.FieldError(api.CodeVMStatusIllegal, "", "running"), 409, api.CodeVMStatusIllegal},
		{"coded with a status", api.NewError(408, api.CodeBadRequest, "late"), 408, api.CodeBadRequest},
		{"a rule's verdict", api.FieldError(api.CodeDiskBus, "disks[0].bus", "no"), 422, api.CodeDiskBus},
		{"an agent's 503 passed on", &api.Error{Status: 503, Code: api.CodeLibvirtUnavailable, Remote: true}, 502, api.CodeLibvirtUnavailable},
		{"an agent's 409 passed on", &api.Error{Status: 409, Code: api.CodeVMRunning, Remote: true}, 409, api.CodeVMRunning},
		{"translated", errString("gone"), 404, api.CodeNotFound},
		{"anything else", errString("bug"), 500, api.CodeInternal},
		{"violations", api.Errors{api.FieldError(api.CodeDiskBus, "a", "x"), api.FieldError(api.CodeNICModel, "b", "y")}, 422, api.CodeVMDefinitionInvalid},
		{"one violation", api.Errors{api.FieldError(api.CodeFormatChars, "metadata.owner", "x")}, 422, api.CodeFormatChars},
		{"unreadable definition", api.Errors{api.FieldError(api.CodeDiskBus, "a", "x"), api.FieldError(api.CodeDefinitionSyntax, "", "y")}, 400, api.CodeVMDefinitionInvalid},
		{"definition too large", api.Errors{api.FieldError(api.CodeDefinitionTooLarge, "", "x")}, 413, api.CodeDefinitionTooLarge},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			WriteError(w, ErrorOf(c.err, translate))
			if w.Code != c.status || !strings.Contains(w.Body.String(), `"code":"`+c.code+`"`) {
				t.Errorf("answer %d %s; want %d %s", w.Code, w.Body.String(), c.status, c.code)
			}
			if w.Code == http.StatusServiceUnavailable && w.Header().Get("Retry-After") == "" {
				t.Error("a 503 without Retry-After")
			}
		})
	}
}

type errString string

func (e errString) Error() string { return string(e) }

func TestStatusesAreErrors(t *testing.T) {
	for code, s := range api.Statuses() {
		if s < 400 || s > 599 {
			t.Errorf("%s answers %d: not an error status", code, s)
		}
	}
}

func TestBearerToken(t *testing.T) {
	for h, ok := range map[string]bool{"Bearer abc": true, "bearer abc": true, "": false, "Basic abc": false, "Bearer ": false} {
		r := httptest.NewRequest("GET", "/", nil)
		if h != "" {
			r.Header.Set("Authorization", h)
		}
		tok, err := BearerToken(r)
		if (err == nil) != ok || (ok && tok != "abc") {
			t.Errorf("%q: %q %v", h, tok, err)
		}
		if err != nil && api.CodeOf(err) != api.CodeUnauthenticated {
			t.Errorf("%q: %v", h, err)
		}
	}
}

// TestAnswerAfterDeadline: a request whose own deadline passed is still
// answered with its error (a body that came too late is a 408, not an
// empty 200); a request whose client went away is not answered.
func TestAnswerAfterDeadline(t *testing.T) {
	late := func(w http.ResponseWriter, r *http.Request) error {
		<-r.Context().Done()
		return api.NewError(http.StatusRequestTimeout, api.CodeBadRequest, "request body not received in time")
	}
	gaveUp := func(w http.ResponseWriter, r *http.Request) error {
		<-r.Context().Done()
		return r.Context().Err()
	}
	canceled := func() (context.Context, context.CancelFunc) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		return ctx, cancel
	}
	cases := []struct {
		name    string
		handler Plain
		ctx     func() (context.Context, context.CancelFunc)
		status  int
		written bool
	}{
		{"own deadline passed", late, func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), time.Millisecond)
		}, http.StatusRequestTimeout, true},
		// net/http cancels the request's context on a read error (the
		// body's read deadline): the handler's 408 is still answered.
		{"body read timed out", late, canceled, http.StatusRequestTimeout, true},
		{"client gone", gaveUp, canceled, http.StatusOK, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := c.ctx()
			defer cancel()
			w := httptest.NewRecorder()
			r := httptest.NewRequest("POST", "/v1/vms", strings.NewReader("{")).WithContext(ctx)
			answered, err := Answer(w, r, c.handler)
			if err == nil {
				t.Fatal("the handler's error was lost")
			}
			if (answered != nil) != c.written || w.Code != c.status {
				t.Errorf("answered %v, status %d; want written %v, status %d", answered, w.Code, c.written, c.status)
			}
			if c.written && !strings.Contains(w.Body.String(), `"code":"BAD_REQUEST"`) {
				t.Errorf("body %q", w.Body.String())
			}
		})
	}
}

// TestSlowBodyIsAnswered408 runs a real server: a client that sends half
// its body and stalls gets a 408 once the read deadline passes (net/http
// cancels the request's context on the read error; the answer still goes).
func TestSlowBodyIsAnswered408(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		_, _ = Answer(w, r, func(w http.ResponseWriter, r *http.Request) error {
			var v map[string]any
			if err := DecodeJSON(r, &v, false); err != nil {
				return err
			}
			return WriteJSON(w, http.StatusOK, v)
		})
	}))
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "POST /v1/vms HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"name\": ")
	reply, _ := io.ReadAll(conn)
	if !bytes.HasPrefix(reply, []byte("HTTP/1.1 408")) || !bytes.Contains(reply, []byte(`"code":"BAD_REQUEST"`)) {
		t.Errorf("a stalled body got %q; want a 408 BAD_REQUEST", reply)
	}
}
