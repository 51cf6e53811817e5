package service

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"polyvirt/internal/api"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/store"
)

// TestContinueToken: a token reads back as the position it was made for,
// for its own query only; anything else is CONTINUE_TOKEN_INVALID naming
// the continue field.
func TestContinueToken(t *testing.T) {
	q := queryFingerprint(store.HostFilter{ClusterID: "c1", Statuses: []store.HostStatus{store.HostUp, store.HostNonOperational}}, false)
	for _, name := range []string{"p8", "a-very-long-host-name-" + strings.Repeat("x", 230), "ü-host"} {
		got, err := parseContinue(encodeContinue(name, q), q)
		if err != nil || got != name {
			t.Errorf("round trip of %q: %q, %v", name, got, err)
		}
	}
	// The statuses' order and repetition make the same query.
	same := queryFingerprint(store.HostFilter{ClusterID: "c1", Statuses: []store.HostStatus{store.HostNonOperational, store.HostUp, store.HostUp}}, false)
	if same != q {
		t.Errorf("the same statuses in another order: fingerprint %s, want %s", same, q)
	}
	raw := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	valid := encodeContinue("p8", q)
	flipped := []byte(valid)
	flipped[len(flipped)/2] ^= 0x20
	tests := []struct {
		name, token, query string
	}{
		{"not base64url", "p8!", q},
		{"standard base64 padding", base64.StdEncoding.EncodeToString([]byte(`{"v":1,"a":"p8","q":"` + q + `"}`)), q},
		{"not JSON", raw("p8"), q},
		{"a JSON array", raw(`["p8"]`), q},
		{"an unknown field", raw(`{"v":1,"a":"p8","q":"` + q + `","x":1}`), q},
		{"trailing data", raw(`{"v":1,"a":"p8","q":"` + q + `"}{}`), q},
		{"another version", raw(`{"v":2,"a":"p8","q":"` + q + `"}`), q},
		{"no position", raw(`{"v":1,"a":"","q":"` + q + `"}`), q},
		{"another query's", valid, queryFingerprint(store.HostFilter{ClusterID: "c2"}, false)},
		{"the same query with details", valid, queryFingerprint(store.HostFilter{ClusterID: "c1", Statuses: []store.HostStatus{store.HostUp, store.HostNonOperational}}, true)},
		{"a character changed", string(flipped), q},
		{"too long", raw(strings.Repeat("x", 2000)), q},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseContinue(tc.token, tc.query)
			var ae *api.Error
			if !errors.As(err, &ae) || ae.Code != api.CodeContinueInvalid || ae.Field != "continue" {
				t.Fatalf("parse: %v; want %s on the continue field", err, api.CodeContinueInvalid)
			}
			if !strings.Contains(ae.Message, "continue token") {
				t.Errorf("message %q does not say what is wrong", ae.Message)
			}
		})
	}
}

// TestHostQueryLimit: the page size's bounds.
func TestHostQueryLimit(t *testing.T) {
	tests := []struct {
		limit string
		want  int
		ok    bool
	}{
		{"", engineapi.DefaultHostPageSize, true},
		{"1", 1, true},
		{"1000", engineapi.MaxHostPageSize, true},
		{"0", 0, false},
		{"-1", 0, false},
		{"1001", 0, false},
		{"ten", 0, false},
		{"1e3", 0, false},
	}
	for _, tc := range tests {
		q, err := HostQueryFrom(func(n string) string {
			if n == "limit" {
				return tc.limit
			}
			return ""
		})
		var ae *api.Error
		switch {
		case tc.ok && (err != nil || q.Limit != tc.want):
			t.Errorf("limit %q: %d, %v; want %d", tc.limit, q.Limit, err, tc.want)
		case !tc.ok && (!errors.As(err, &ae) || ae.Code != api.CodeInvalidArgument || ae.Field != "limit"):
			t.Errorf("limit %q: %v; want %s on limit", tc.limit, err, api.CodeInvalidArgument)
		}
	}
}

// TestEncodePage: a page's answer (pageStart, the hosts, pageEnd) is the
// JSON of a HostPage.
func TestEncodePage(t *testing.T) {
	hosts := []engineapi.Host{{Name: "a", Status: "Up"}, {Name: "b<c>", Status: "Installing"}}
	var enc [][]byte
	for i := range hosts {
		b, err := json.Marshal(&hosts[i])
		if err != nil {
			t.Fatal(err)
		}
		enc = append(enc, b)
	}
	encodePage := func(enc [][]byte, next string) []byte {
		out := pageStart()
		for i, b := range enc {
			if i > 0 {
				out = append(out, ',')
			}
			out = append(out, b...)
		}
		return pageEnd(out, next)
	}
	for _, next := range []string{"", encodeContinue("b<c>", "q")} {
		var got engineapi.HostPage
		if err := json.Unmarshal(encodePage(enc, next), &got); err != nil {
			t.Fatalf("page with next %q: %v", next, err)
		}
		if len(got.Hosts) != 2 || got.Hosts[1].Name != "b<c>" || got.Continue != next {
			t.Errorf("page: %+v; want the two hosts and continue %q", got, next)
		}
	}
	var empty engineapi.HostPage
	if err := json.Unmarshal(encodePage(nil, ""), &empty); err != nil || empty.Hosts == nil || len(empty.Hosts) != 0 {
		t.Errorf("empty page: %+v %v; want an empty list", empty, err)
	}
}

// FuzzParseContinue: any token is a position of its query or a coded
// error, never a panic; a position read back encodes to a token that
// reads the same.
func FuzzParseContinue(f *testing.F) {
	q := queryFingerprint(store.HostFilter{}, false)
	f.Add(encodeContinue("p8", q))
	f.Add(encodeContinue("x", "other"))
	f.Add("")
	f.Add("eyJ2IjoxfQ")
	f.Add(base64.RawURLEncoding.EncodeToString([]byte(`{"v":1,"a":"\u0000","q":"` + q + `"}`)))
	f.Fuzz(func(t *testing.T, tok string) {
		after, err := parseContinue(tok, q)
		if err != nil {
			var ae *api.Error
			if !errors.As(err, &ae) || ae.Code != api.CodeContinueInvalid || ae.Field != "continue" {
				t.Fatalf("%q: %v; want a coded error", tok, err)
			}
			return
		}
		if after == "" {
			t.Fatalf("%q: no position and no error", tok)
		}
		if again, err := parseContinue(encodeContinue(after, q), q); err != nil || again != after {
			t.Fatalf("%q: position %q reads back as %q, %v", tok, after, again, err)
		}
	})
}
