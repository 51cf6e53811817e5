package libvirtconn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
)

func TestUUIDText(t *testing.T) {
	u, err := ParseUUID("6F1C1A9E-3D2B-4C55-9A0E-2B7D1C9E4F10")
	if err != nil {
		t.Fatal(err)
	}
	if got := FormatUUID(u); got != "6f1c1a9e-3d2b-4c55-9a0e-2b7d1c9e4f10" {
		t.Errorf("FormatUUID = %s", got)
	}
	if v, err := ParseUUID("6f1c1a9e3d2b4c559a0e2b7d1c9e4f10"); err != nil || v != u {
		t.Errorf("undashed UUID: %v %v", v, err)
	}
	for _, bad := range []string{"", "1234", "zz1c1a9e-3d2b-4c55-9a0e-2b7d1c9e4f10", "6f1c1a9e-3d2b-4c55-9a0e-2b7d1c9e4f1011"} {
		if _, err := ParseUUID(bad); err == nil {
			t.Errorf("ParseUUID(%q) accepted", bad)
		}
	}
}

func TestDomainStateNames(t *testing.T) {
	cases := map[DomainState]string{StateRunning: "running", StateShutoff: "shut off", StatePaused: "paused", DomainState(42): "state 42", DomainState(-1): "state -1"}
	for s, want := range cases {
		if got := s.String(); got != want {
			t.Errorf("%d: %q, want %q", s, got, want)
		}
	}
	if StateRunning != DomainState(golibvirt.DomainRunning) || StateShutoff != DomainState(golibvirt.DomainShutoff) {
		t.Error("states drifted from libvirt's numbers")
	}
	if UndefineNVRAM != 4 || UndefineAll&UndefineTPM == 0 {
		t.Error("undefine flags drifted from libvirt's numbers")
	}
}

func TestNotFoundWrapsErrNoDomain(t *testing.T) {
	err := notFound("x", golibvirt.Error{Code: uint32(golibvirt.ErrNoDomain), Message: "Domain not found"})
	if !errors.Is(err, ErrNoDomain) {
		t.Errorf("not wrapped: %v", err)
	}
	other := fmt.Errorf("boom")
	if notFound("x", other) != other || notFound("x", nil) != nil {
		t.Error("other errors must pass unchanged")
	}
}

func TestSocketPath(t *testing.T) {
	cases := []struct {
		uri, want string
		ok        bool
	}{
		{"qemu:///system", "/var/run/libvirt/libvirt-sock", true},
		{"qemu+unix:///system?socket=/tmp/s", "/tmp/s", true},
		{"qemu+ssh://host/system", "", false},
		{"qemu:///session", "", false},
	}
	for _, c := range cases {
		got, err := socketPath(c.uri)
		if got != c.want || (err == nil) != c.ok {
			t.Errorf("socketPath(%q) = %q, %v", c.uri, got, err)
		}
	}
}

func TestXDR(t *testing.T) {
	var x xdrBuf
	x.optString("abcde")
	x.uint32(7)
	want := []byte{0, 0, 0, 1, 0, 0, 0, 5, 'a', 'b', 'c', 'd', 'e', 0, 0, 0, 0, 0, 0, 7}
	if !bytes.Equal(x.Bytes(), want) {
		t.Errorf("got % x", x.Bytes())
	}
	if s, err := decodeOptString(want); s != "abcde" || err != nil {
		t.Errorf("decodeOptString = %q, %v", s, err)
	}
	if _, err := decodeOptString([]byte{0, 0, 0, 1, 0, 0, 0, 9, 'a'}); err == nil {
		t.Error("short string accepted")
	}
	if l, err := decodeUint32List([]byte{0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2}); err != nil || len(l) != 2 || l[1] != 2 {
		t.Errorf("list %v %v", l, err)
	}
	var e xdrBuf
	e.uint32(42)
	e.uint32(10)
	e.optString("Domain not found")
	if err := decodeRemoteError(e.Bytes()); !errors.Is(err, ErrNoDomain) {
		t.Errorf("no-domain error: %v", err)
	}
}

func TestParseQueryStatus(t *testing.T) {
	cases := []struct {
		reply, want, err string
	}{
		{`{"return":{"status":"running","singlestep":false,"running":true},"id":"libvirt-42"}`, "running", ""},
		{`{"return":{"status":"paused","running":false}}`, "paused", ""},
		{`{"error":{"class":"CommandNotFound","desc":"The command foo has not been found"}}`, "", "CommandNotFound"},
		{`{"return":{}}`, "", "no status"},
		{`not json`, "", "not JSON"},
		{``, "", "not JSON"},
	}
	for _, c := range cases {
		got, err := parseQueryStatus(c.reply)
		if got != c.want || (c.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("parseQueryStatus(%q) = %q, %v; want %q, error with %q", c.reply, got, err, c.want, c.err)
		}
	}
}

func FuzzParseQueryStatus(f *testing.F) {
	f.Add(`{"return":{"status":"running","running":true}}`)
	f.Add(`{"error":{"class":"GenericError","desc":"x"}}`)
	f.Add(`{"return":null}`)
	f.Fuzz(func(t *testing.T, reply string) {
		s, err := parseQueryStatus(reply)
		if err == nil && s == "" {
			t.Errorf("no error and no status for %q", reply)
		}
	})
}

func TestTimeoutErrorNamesTheCall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	block := make(chan struct{})
	defer close(block)
	_, err := call(ctx, &rpcConn{}, "DomainShutdown", func() (int, error) { <-block; return 0, nil })
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "DomainShutdown") {
		t.Errorf("err = %v", err)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if _, err := call(ctx2, &rpcConn{}, "DomainCreate", func() (int, error) { <-block; return 0, nil }); errors.Is(err, ErrTimeout) || !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled call: %v", err)
	}
}
