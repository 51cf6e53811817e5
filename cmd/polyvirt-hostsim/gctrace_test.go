package main

import (
	"os"
	"strings"
	"testing"
	"time"
)

// TestParseGCTrace: the collections of an engine's log as gctrace prints
// them (lines of a 10,000-host run, with the engine's own log lines
// between), in wall time from the engine's start; a gctrace line that
// does not read is refused with its line and field.
func TestParseGCTrace(t *testing.T) {
	started := time.Date(2026, 12, 5, 23, 0, 0, 0, time.UTC)
	log := `time=2026-12-05T23:31:06.350Z level=WARN msg="something else"
gc 140 @201.310s 13%: 0.31+595+0.28 ms clock, 0.63+623/320/0+0.57 ms cpu, 559->565->424 MB, 618 MB goal, 60 MB stacks, 0 MB globals, 2 P
  gc 141 @207.123s 13%: 0.76+432+0.40 ms clock, 1.5+444/230/0+0.81 ms cpu, 563->566->424 MB, 621 MB goal, 60 MB stacks, 0 MB globals, 2 P
gc 142 @212.584s 13%: 3.9+561+0.53 ms clock, 7.9+582/290/0+1.0 ms cpu, 561->565->423 MB, 618 MB goal, 61 MB stacks, 0 MB globals, 2 P (forced)
`
	cs, err := parseGCTrace(strings.NewReader(log), started)
	if err != nil {
		t.Fatal(err)
	}
	want := []gcCycle{
		{started.Add(201310 * time.Millisecond), started.Add(201310*time.Millisecond + 595590*time.Microsecond)},
		{started.Add(207123 * time.Millisecond), started.Add(207123*time.Millisecond + 433160*time.Microsecond)},
		{started.Add(212584 * time.Millisecond), started.Add(212584*time.Millisecond + 565430*time.Microsecond)},
	}
	if len(cs) != len(want) {
		t.Fatalf("%d collections, want %d", len(cs), len(want))
	}
	for i := range want {
		if d := cs[i].start.Sub(want[i].start).Abs(); d > time.Microsecond {
			t.Errorf("collection %d starts %v, want %v", i, cs[i].start, want[i].start)
		}
		if d := cs[i].end.Sub(want[i].end).Abs(); d > time.Microsecond {
			t.Errorf("collection %d ends %v, want %v", i, cs[i].end, want[i].end)
		}
	}
	for line, field := range map[string]string{
		"gc x @1.0s 1%: 1+2+3 ms clock, ...":   "number",
		"gc 1 @1.0 1%: 1+2+3 ms clock, ...":    "start",
		"gc 1 @-4s 1%: 1+2+3 ms clock, ...":    "start",
		"gc 1 @1.0s 1%: 1+2 ms clock, ...":     "clock",
		"gc 1 @1.0s 1%: 1+x+3 ms clock, ...":   "phase",
		"gc 1 @1.0s 1%: 1+NaN+3 ms clock, ...": "phase",
		"gc 1 @NaNs 1%: 1+2+3 ms clock, ...":   "start",
		"gc 1 @1.0s: 1+2+3 ms clock, ...":      "gc N @Ts",
	} {
		_, err := parseGCTrace(strings.NewReader("hello\n"+line+"\n"), started)
		if err == nil || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), field) {
			t.Errorf("%q: %v (want line 2 and %q named)", line, err, field)
		}
	}
}

// FuzzParseGCTrace: any log reads without a panic; what reads is
// collections that end no earlier than they start.
func FuzzParseGCTrace(f *testing.F) {
	f.Add("gc 140 @201.310s 13%: 0.31+595+0.28 ms clock, 0.63+623/320/0+0.57 ms cpu, 559->565->424 MB, 618 MB goal, 60 MB stacks, 0 MB globals, 2 P\n")
	f.Add("gc 1 @0.0s 0%: 0+0+0 ms clock,\n")
	f.Add("gc  @ ms clock\n")
	f.Add("level=INFO msg=x\n")
	started := time.Unix(1_800_000_000, 0)
	f.Fuzz(func(t *testing.T, log string) {
		cs, err := parseGCTrace(strings.NewReader(log), started)
		if err != nil {
			if cs != nil {
				t.Fatalf("collections with an error: %v", cs)
			}
			return
		}
		for _, c := range cs {
			if c.end.Before(c.start) || c.start.Before(started) {
				t.Fatalf("collection %v–%v of an engine started at %v", c.start, c.end, started)
			}
		}
	})
}

// TestGCOverlap: slow calls are counted, and apart those that overlapped
// a collection; the collections are counted with the time they took of
// the window.
func TestGCOverlap(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	cycles := []gcCycle{
		{at(-300), at(200)},    // half before the window
		{at(5000), at(5600)},   // inside
		{at(19800), at(20500)}, // half after
		{at(30000), at(30500)}, // after
	}
	calls := []callSpan{
		{at(100), 10 * time.Millisecond, "GET /clusters"},   // fast, in a collection
		{at(1000), 80 * time.Millisecond, "GET /clusters"},  // slow, none
		{at(4900), 200 * time.Millisecond, "GET /clusters"}, // slow, ends in one
		{at(5500), 60 * time.Millisecond, "GET /clusters"},  // slow, starts in one
		{at(5601), 51 * time.Millisecond, "GET /clusters"},  // slow, just after
		{at(9000), 50 * time.Millisecond, "GET /clusters"},  // not over 50 ms
	}
	slow, inGC, n, gc := gcOverlap(calls, cycles, at(0), at(20000))
	if slow != 4 || inGC != 2 || n != 3 || gc != 1000*time.Millisecond {
		t.Errorf("slow %d, in GC %d, collections %d taking %s; want 4, 2, 3, 1s", slow, inGC, n, gc)
	}
}

// TestProcessStart: this test's own process started before now, and not
// long before.
func TestProcessStart(t *testing.T) {
	s, err := processStart(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if now := time.Now(); s.After(now) || now.Sub(s) > time.Hour {
		t.Errorf("this process started at %v (now %v)", s, now)
	}
	if _, err := processStart(1 << 30); err == nil {
		t.Error("a process that does not exist has a start")
	}
}
