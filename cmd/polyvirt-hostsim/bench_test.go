package main

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"polyvirt/internal/api/engineapi"
)

// TestCPUSpent: processes that ended are not counted, new ones (and new
// ones with a reused id) count from zero; the figure is never negative.
func TestCPUSpent(t *testing.T) {
	before := map[int]float64{1: 10, 2: 5, 3: 7}
	after := map[int]float64{1: 12.5, 3: 1, 4: 0.5}
	if got, want := cpuSpent(before, after), 2.5+1+0.5; got != want {
		t.Errorf("cpuSpent = %v, want %v", got, want)
	}
	if got := cpuSpent(before, map[int]float64{}); got != 0 {
		t.Errorf("all ended: %v, want 0", got)
	}
}

// TestParseStat: the fields after the command name, whatever it holds
// (spaces, parentheses); a line without one is refused.
func TestParseStat(t *testing.T) {
	f, err := parseStat("4242 (polyvirt (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 7 3 0 0 20 19 9 0 12345\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(f) != 20 || f[0] != "S" || f[11] != "7" || f[12] != "3" || f[16] != "19" || f[19] != "12345" {
		t.Errorf("fields %q", f)
	}
	if _, err := parseStat("4242 polyvirt S 1"); err == nil || !strings.Contains(err.Error(), "command name") {
		t.Errorf("a line without ')': %v", err)
	}
}

// FuzzParseStat: any line gives fields or an error, never a panic; the
// fields hold no blank.
func FuzzParseStat(f *testing.F) {
	f.Add("1 (init) S 0 1 1 0 -1 4194560 5 0 0 0 1 2 0 0 20 0 1 0 3\n")
	f.Add(")")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		fs, err := parseStat(s)
		if err != nil {
			return
		}
		for _, x := range fs {
			if x == "" || strings.IndexFunc(x, unicode.IsSpace) >= 0 {
				t.Fatalf("field %q from %q", x, s)
			}
		}
	})
}

// TestParseSchedstat: the three counts; anything else is refused naming
// the field.
func TestParseSchedstat(t *testing.T) {
	st, err := parseSchedstat("123456789 987654321 42\n")
	if err != nil || st != (schedstat{runNs: 123456789, waitNs: 987654321, slices: 42}) {
		t.Errorf("%+v, %v", st, err)
	}
	for in, want := range map[string]string{
		"1 2":       "2 fields",
		"1 -2 3":    `wait time "-2"`,
		"x 2 3":     `run time "x"`,
		"1 2 3 4":   "4 fields",
		"1 2 3.5\n": `timeslices "3.5"`,
	} {
		if _, err := parseSchedstat(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseSchedstat(%q): %v, want %q", in, err, want)
		}
	}
}

// FuzzParseSchedstat: any text gives the counts it holds or an error,
// never a panic.
func FuzzParseSchedstat(f *testing.F) {
	f.Add("123 456 7\n")
	f.Add("")
	f.Add("1 2 18446744073709551616")
	f.Fuzz(func(t *testing.T, s string) {
		st, err := parseSchedstat(s)
		if err != nil {
			return
		}
		for i, x := range strings.Fields(s) {
			if n, err := strconv.ParseUint(x, 10, 64); err != nil || n != [3]uint64{st.runNs, st.waitNs, st.slices}[i] {
				t.Fatalf("%q read as %+v", s, st)
			}
		}
	})
}

// TestHostBriefReadsTheEnginesHost: the fields the bench reads of a listed
// host are the engine's own (names as engineapi.Host encodes them).
func TestHostBriefReadsTheEnginesHost(t *testing.T) {
	seen := time.Date(2026, 12, 6, 20, 0, 1, 123456789, time.UTC)
	b, err := json.Marshal(engineapi.HostPage{Hosts: []engineapi.Host{{ID: "i", Name: "sim-00042", Status: "Up", LastSeen: seen,
		Stats: json.RawMessage(`{"host":{"cpus":4},"name":"not this"}`)}}})
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		Hosts []hostBrief `json:"hosts"`
	}
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	if len(p.Hosts) != 1 || p.Hosts[0] != (hostBrief{Name: "sim-00042", Status: "Up", LastSeen: seen}) {
		t.Errorf("read %+v from %s", p.Hosts, b)
	}
}
