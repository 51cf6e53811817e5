package main

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestParseLoads: both kinds of load, and errors naming the load and what
// is wrong.
func TestParseLoads(t *testing.T) {
	got, err := parseLoads("0:0s, 4:20ms,175/s,2.5/s")
	if err != nil {
		t.Fatal(err)
	}
	want := []load{{}, {Clients: 4, Pause: 20 * time.Millisecond}, {Rate: 175}, {Rate: 2.5}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("loads (-want +got):\n%s", diff)
	}
	if got[2].String() != "r175" || got[1].String() != "4x20ms" || !strings.Contains(got[2].Describe(), "fixed rate") {
		t.Errorf("names: %q %q %q", got[1], got[2], got[2].Describe())
	}
	for _, tc := range []struct{ in, want string }{
		{"4", "want CLIENTS:PAUSE"},
		{"x:20ms", `clients "x"`},
		{"-1:20ms", `clients "-1"`},
		{"4:soon", `pause "soon"`},
		{"4:-1s", `pause "-1s"`},
		{"0/s", "RATE/s"},
		{"NaN/s", "RATE/s"},
		{"1e9/s", "RATE/s"},
		{"4:20ms,,", "load 2"},
	} {
		if _, err := parseLoads(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseLoads(%q): %v, want an error saying %q", tc.in, err, tc.want)
		}
	}
}

// FuzzParseLoads: any text is loads that make sense or an error, never a
// panic.
func FuzzParseLoads(f *testing.F) {
	for _, s := range []string{"0:0s,2:100ms,4:20ms", "175/s", "1:1ns,0.5/s", ":/s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		loads, err := parseLoads(s)
		if err != nil {
			return
		}
		for _, l := range loads {
			if l.Clients < 0 || l.Pause < 0 || l.Rate < 0 || l.Rate > maxRate || (l.Rate > 0 && l.Clients > 0) {
				t.Fatalf("parseLoads(%q) gave %+v", s, l)
			}
		}
	})
}
