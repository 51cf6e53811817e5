package service

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"

	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/store"
)

func TestNeedsAdmission(t *testing.T) {
	tests := []struct {
		status                      store.HostStatus
		capsChanged, clusterChanged bool
		want                        bool
	}{
		{store.HostInstalling, false, false, true},
		{store.HostConnecting, false, false, true},
		{store.HostNonResponsive, false, false, true},
		{store.HostUp, false, false, false},
		{store.HostUp, true, false, true},
		{store.HostUp, false, true, true},
		{store.HostNonOperational, false, false, false},
		{store.HostNonOperational, true, false, true},
		{store.HostMaintenance, true, true, false},
		{store.HostPreparingForMaintenance, true, true, false},
	}
	for _, tc := range tests {
		if got := needsAdmission(tc.status, tc.capsChanged, tc.clusterChanged); got != tc.want {
			t.Errorf("needsAdmission(%s, caps %v, cluster %v) = %v, want %v", tc.status, tc.capsChanged, tc.clusterChanged, got, tc.want)
		}
	}
	// A host NonOperational for want of libvirt is admitted again as soon
	// as its agent reaches libvirt, without any change.
	if !needsAdmissionHost(store.Host{Status: store.HostNonOperational, StatusCode: api.CodeLibvirtUnavailable}, false, false) {
		t.Error("a host without libvirt is never admitted again")
	}
	if needsAdmissionHost(store.Host{Status: store.HostNonOperational, StatusCode: "CPU_TYPE_INCOMPATIBLE_WITH_CLUSTER"}, false, false) {
		t.Error("a host NonOperational for its CPU is admitted again without a change")
	}
}

func TestLibvirtDownFromStats(t *testing.T) {
	cases := map[string]string{
		`{"host": {}, "vms": [], "libvirt": {"connected": true}}`:         "",
		`{"host": {}, "vms": []}`:                                         "",
		`not json`:                                                        "",
		`{"libvirt": {"connected": false}}`:                               "not connected",
		"{\"libvirt\": {\"connected\" :\n\tfalse}}":                       "not connected",
		`{"vms": [{"connected": false}], "libvirt": {"connected": true}}`: "",
		`{"libvirt":{"connected":true},"Libvirt":{"connected":false}}`:    "not connected",
		`{"libvirt":{"connected":true,"Connected":false}}`:                "not connected",
		`{"libvirt":{"connected":true}}`:                                  "",
		`{"libvirt": {"connected": false, "error": "dial unix: no such file", "since": "2026-01-02T03:04:05Z"}}`: "dial unix: no such file (since 2026-01-02T03:04:05Z)",
	}
	for in, want := range cases {
		if got := libvirtDown([]byte(in)); got != want {
			t.Errorf("libvirtDown(%s) = %q, want %q", in, got, want)
		}
	}
}

// FuzzLibvirtDown: the quick look at a statistics document says what
// decoding it whole says.
func FuzzLibvirtDown(f *testing.F) {
	f.Add(`{"host": {}, "libvirt": {"connected": true}}`)
	f.Add(`{"libvirt": {"connected": false, "error": "x"}}`)
	f.Add(`{"libvirt": {"connected" : false}, "connected": true}`)
	f.Add(`{"host":{"cpus":4},"libvirt":{"connected":true,"uri":"qemu:///system"}}`)
	f.Add(`{"libvirt":{"connected":true},"LIBVIRT":{}}`)
	f.Fuzz(func(t *testing.T, doc string) {
		if got, want := libvirtDown([]byte(doc)), decodeLibvirtDown([]byte(doc)); got != want {
			t.Errorf("libvirtDown(%s) = %q, decoded whole %q", doc, got, want)
		}
	})
}

func TestPushedCapsETag(t *testing.T) {
	cases := map[string]string{
		`{"host":{},"vms":[],"libvirt":{"connected":true},"capsETag":"0a1b2c"}`: "0a1b2c",
		`{"host":{},"vms":[],"libvirt":{"connected":true}}`:                     "",
		`{"capsETag" : "0a1b2c"}`:                                               "0a1b2c",
		`{"capsETag":"0a\"1b"}`:                                                 `0a"1b`,
		`{"capsETag":"0a","CAPSETAG":"1b"}`:                                     "1b",
		`{"vms":[{"capsETag":"x"}],"capsETag":"0a"}`:                            "0a",
		`{"vms":[{"capsETag":"x"}]}`:                                            "",
		`{"vms":[{"name":"\"capsETag\":\"x"}]}`:                                 "",
		`{"caps\u0045Tag":"0a"}`:                                                "0a",
		`{"capſETag":"0a"}`:                                                     "0a",
		`{"capsETag":1}`:                                                        "",
	}
	for in, want := range cases {
		if got := pushedCapsETag([]byte(in)); got != want {
			t.Errorf("pushedCapsETag(%s) = %q, want %q", in, got, want)
		}
	}
	// What the agent writes is read without decoding.
	doc, err := json.Marshal(agentapi.Stats{Host: agentapi.HostStats{CPUs: 4}, VMs: []agentapi.VMStats{{Name: "web1"}},
		Libvirt: &agentapi.LibvirtStatus{Connected: true}, CapsETag: "0a1b"})
	if err != nil {
		t.Fatal(err)
	}
	if tag, ok := scanCapsETag(doc); !ok || string(tag) != "0a1b" {
		t.Errorf("an agent's document %s: %q, %v", doc, tag, ok)
	}
	// A host's pushes that say the tag they said before make no string
	// (ten thousand hosts push every few seconds); another tag is read.
	prev := "0a1b"
	if n := testing.AllocsPerRun(100, func() {
		if got := pushedCapsETagSince(doc, prev); got != prev {
			t.Fatalf("pushedCapsETagSince = %q, want %q", got, prev)
		}
	}); n != 0 {
		t.Errorf("a push with the same tag: %.0f allocations, want none", n)
	}
	if got := pushedCapsETagSince(doc, "ffff"); got != "0a1b" {
		t.Errorf("a push with a new tag: %q", got)
	}
	for _, tc := range []struct {
		etag, tag string
		want      bool
	}{{`"0a1b"`, "0a1b", true}, {`"0a1b"`, "0a1", false}, {`0a1b`, "0a1b", false}, {`"0a1b`, "0a1", false}, {`""`, "", true}, {`"`, "", false}, {``, "", false}} {
		if got := isQuoted(tc.etag, tc.tag); got != tc.want {
			t.Errorf("isQuoted(%q, %q) = %v", tc.etag, tc.tag, got)
		}
	}
}

// FuzzPushedCapsETag: the quick look at a statistics document (the event
// stream passes JSON only) says what decoding it whole says.
func FuzzPushedCapsETag(f *testing.F) {
	f.Add(`{"host":{},"libvirt":{"connected":true},"capsETag":"0a1b"}`)
	f.Add(`{"capsETag":"0a","capsetag":"1b"}`)
	f.Add(`{"vms":[{"capsETag":"x"}],"capsETag":"0a"}`)
	f.Add(`{"capsETag":"0a\\"}`)
	f.Add(`{"capsETag":null}`)
	f.Fuzz(func(t *testing.T, doc string) {
		if !json.Valid([]byte(doc)) {
			pushedCapsETag([]byte(doc)) // no panic
			return
		}
		if got, want := pushedCapsETag([]byte(doc)), decodeCapsETag([]byte(doc)); got != want {
			t.Errorf("pushedCapsETag(%s) = %q, decoded whole %q", doc, got, want)
		}
	})
}

func TestNextStatus(t *testing.T) {
	host := func(s store.HostStatus, code string) store.Host {
		return store.Host{Name: "h", Address: "10.0.0.1:7443", Status: s, StatusCode: code}
	}
	ok := &admission{OK: true}
	refused := &admission{Code: "CPU_TYPE_INCOMPATIBLE_WITH_CLUSTER", Message: "Host h moved to Non-Operational state as host does not meet the cluster's minimum CPU level. Missing CPU features: model_POWER9"}
	type want struct {
		Changed  bool
		Status   store.HostStatus
		Code     string
		Event    string
		Severity store.Severity
	}
	tests := []struct {
		name string
		host store.Host
		out  pollOutcome
		want want
	}{
		{"installing admitted", host(store.HostInstalling, ""), pollOutcome{OK: true, Admission: ok},
			want{true, store.HostUp, "", "Status of host h was set to Up.", store.SeverityInfo}},
		{"installing refused", host(store.HostInstalling, ""), pollOutcome{OK: true, Admission: refused},
			want{true, store.HostNonOperational, refused.Code, refused.Message, store.SeverityError}},
		{"up stays up", host(store.HostUp, ""), pollOutcome{OK: true, Admission: ok},
			want{false, store.HostUp, "", "", ""}},
		{"up without admission", host(store.HostUp, ""), pollOutcome{OK: true},
			want{false, store.HostUp, "", "", ""}},
		{"up refused after a change", host(store.HostUp, ""), pollOutcome{OK: true, Admission: refused},
			want{true, store.HostNonOperational, refused.Code, refused.Message, store.SeverityError}},
		{"non-operational the same way", store.Host{Name: "h", Status: store.HostNonOperational, StatusCode: refused.Code, StatusMessage: refused.Message},
			pollOutcome{OK: true, Admission: refused}, want{false, store.HostNonOperational, refused.Code, "", ""}},
		{"non-operational admitted", host(store.HostNonOperational, refused.Code), pollOutcome{OK: true, Admission: ok},
			want{true, store.HostUp, "", "Status of host h was set to Up.", store.SeverityInfo}},
		{"non-responsive back", host(store.HostNonResponsive, api.CodeAgentUnreachable), pollOutcome{OK: true, Admission: ok},
			want{true, store.HostUp, "", "Status of host h was set to Up.", store.SeverityInfo}},
		{"connecting admitted", host(store.HostConnecting, ""), pollOutcome{OK: true, Admission: ok},
			want{true, store.HostUp, "", "Status of host h was set to Up.", store.SeverityInfo}},
		{"one failure is not enough", host(store.HostUp, ""), pollOutcome{Failures: 1, Err: "refused"},
			want{false, store.HostUp, "", "", ""}},
		{"up unreachable", host(store.HostUp, ""), pollOutcome{Failures: 3, Err: "refused"},
			want{true, store.HostNonResponsive, api.CodeAgentUnreachable, "Host h moved to Non-Responsive state.", store.SeverityError}},
		{"non-operational unreachable", host(store.HostNonOperational, refused.Code), pollOutcome{Failures: 3, Err: "refused"},
			want{true, store.HostNonResponsive, api.CodeAgentUnreachable, "Host h moved to Non-Responsive state.", store.SeverityError}},
		{"non-responsive stays", host(store.HostNonResponsive, api.CodeAgentUnreachable), pollOutcome{Failures: 9, Err: "refused"},
			want{false, store.HostNonResponsive, api.CodeAgentUnreachable, "", ""}},
		{"installing agent not started", host(store.HostInstalling, ""), pollOutcome{Failures: 3, Err: "refused"},
			want{true, store.HostInstalling, api.CodeAgentUnreachable, "Host h is enrolled but its agent at 10.0.0.1:7443 does not answer yet.", store.SeverityWarning}},
		{"installing said once", host(store.HostInstalling, api.CodeAgentUnreachable), pollOutcome{Failures: 4, Err: "refused"},
			want{false, store.HostInstalling, api.CodeAgentUnreachable, "", ""}},
		{"maintenance ignores failures", host(store.HostMaintenance, ""), pollOutcome{Failures: 9, Err: "refused"},
			want{false, store.HostMaintenance, "", "", ""}},
		{"maintenance ignores admission", host(store.HostMaintenance, ""), pollOutcome{OK: true, Admission: refused},
			want{false, store.HostMaintenance, "", "", ""}},
		{"up without libvirt", host(store.HostUp, ""), pollOutcome{OK: true, LibvirtDown: "connection refused"},
			want{true, store.HostNonOperational, api.CodeLibvirtUnavailable, "Host h moved to Non-Operational state: its agent cannot reach libvirt.", store.SeverityError}},
		{"non-operational for its CPU loses libvirt", host(store.HostNonOperational, refused.Code), pollOutcome{OK: true, LibvirtDown: "gone"},
			want{true, store.HostNonOperational, api.CodeLibvirtUnavailable, "Host h moved to Non-Operational state: its agent cannot reach libvirt.", store.SeverityError}},
		{"without libvirt said once", host(store.HostNonOperational, api.CodeLibvirtUnavailable), pollOutcome{OK: true, LibvirtDown: "still gone"},
			want{false, store.HostNonOperational, api.CodeLibvirtUnavailable, "", ""}},
		{"non-responsive back without libvirt", host(store.HostNonResponsive, api.CodeAgentUnreachable), pollOutcome{OK: true, LibvirtDown: "gone"},
			want{true, store.HostNonOperational, api.CodeLibvirtUnavailable, "Host h moved to Non-Operational state: its agent cannot reach libvirt.", store.SeverityError}},
		{"libvirt back", host(store.HostNonOperational, api.CodeLibvirtUnavailable), pollOutcome{OK: true, Admission: ok},
			want{true, store.HostUp, "", "Status of host h was set to Up.", store.SeverityInfo}},
		{"maintenance ignores libvirt", host(store.HostMaintenance, ""), pollOutcome{OK: true, LibvirtDown: "gone"},
			want{false, store.HostMaintenance, "", "", ""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ch := nextStatus(tc.host, tc.out, 3)
			got := want{ch.Changed, ch.Status, ch.Code, ch.Event, ch.Severity}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("nextStatus (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCheckAction(t *testing.T) {
	type result struct {
		Noop bool
		Code string
	}
	allowed, noop, illegal := result{}, result{Noop: true}, result{Code: api.CodeHostStatusIllegal}
	tests := []struct {
		action hostAction
		status store.HostStatus
		want   result
	}{
		{actMaintenance, store.HostUp, allowed},
		{actMaintenance, store.HostNonResponsive, allowed},
		{actMaintenance, store.HostMaintenance, noop},
		{actActivate, store.HostMaintenance, allowed},
		{actActivate, store.HostNonOperational, allowed},
		{actActivate, store.HostUp, noop},
		{actActivate, store.HostInstalling, illegal},
		{actRemove, store.HostUp, illegal},
		{actRemove, store.HostConnecting, illegal},
		{actRemove, store.HostMaintenance, allowed},
		{actRemove, store.HostNonResponsive, allowed},
		{actRemove, store.HostNonOperational, allowed},
		{actRemove, store.HostInstalling, allowed},
		{actMove, store.HostUp, illegal},
		{actMove, store.HostNonOperational, illegal},
		{actMove, store.HostMaintenance, allowed},
		{actJoinToken, store.HostUp, illegal},
		{actJoinToken, store.HostMaintenance, allowed},
	}
	for _, tc := range tests {
		n, err := checkAction(tc.action, "h", tc.status)
		got := result{Noop: n}
		if err != nil {
			got.Code = err.Code
			if api.StatusOf(err) != http.StatusConflict {
				t.Errorf("%s while %s: status %d, want 409", tc.action, tc.status, api.StatusOf(err))
			}
		}
		if got != tc.want {
			t.Errorf("%s while %s = %+v, want %+v", tc.action, tc.status, got, tc.want)
		}
	}
}
