package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// slowCall is the API latency the target names (its p99 at 175
// calls/s): a call longer than this is counted as slow, and told apart
// when it overlapped one of the engine's garbage collections.
const slowCall = 50 * time.Millisecond

// gcCycle is one of the engine's garbage collections, in wall time: from
// its start to the end of its last phase.
type gcCycle struct{ start, end time.Time }

// parseGCTrace reads the lines GODEBUG=gctrace=1 makes a Go program print
// ("gc 12 @3.456s 4%: 0.1+250+0.2 ms clock, ...": the collection's number,
// when it started since the program started, the share of CPU spent
// collecting so far, then the wall time of its three phases) from an
// engine's log, started being when the engine started. Other lines are
// skipped; a gctrace line that does not read is an error naming its line
// and field.
func parseGCTrace(r io.Reader, started time.Time) ([]gcCycle, error) {
	var cs []gcCycle
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "gc ") || !strings.Contains(line, " ms clock") {
			continue
		}
		c, err := parseGCLine(line, started)
		if err != nil {
			return nil, fmt.Errorf("gctrace line %d: %w", n, err)
		}
		cs = append(cs, c)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("gctrace: %w", err)
	}
	return cs, nil
}

// parseGCLine reads one gctrace line.
func parseGCLine(line string, started time.Time) (gcCycle, error) {
	f := strings.Fields(line)
	// gc N @S.SSSs P%: A+B+C ms clock, ...
	if len(f) < 7 || f[5] != "ms" || f[6] != "clock," {
		return gcCycle{}, errors.New("not \"gc N @Ts P%: A+B+C ms clock, ...\"")
	}
	if _, err := strconv.ParseUint(f[1], 10, 64); err != nil {
		return gcCycle{}, fmt.Errorf("number %q: not a count", f[1])
	}
	at, ok := strings.CutPrefix(f[2], "@")
	if at, ok = strings.CutSuffix(at, "s"); !ok {
		return gcCycle{}, fmt.Errorf("start %q: want @SECONDSs", f[2])
	}
	secs, err := strconv.ParseFloat(at, 64)
	if err != nil || !(secs >= 0 && secs <= 1e9) {
		return gcCycle{}, fmt.Errorf("start %q: want seconds since the program started", f[2])
	}
	phases := strings.Split(f[4], "+")
	if len(phases) != 3 {
		return gcCycle{}, fmt.Errorf("clock %q: want three phases, A+B+C", f[4])
	}
	var ms float64
	for _, p := range phases {
		v, err := strconv.ParseFloat(p, 64)
		if err != nil || !(v >= 0 && v <= 1e9) {
			return gcCycle{}, fmt.Errorf("clock %q: phase %q is not a duration in ms", f[4], p)
		}
		ms += v
	}
	start := started.Add(time.Duration(secs * float64(time.Second)))
	return gcCycle{start: start, end: start.Add(time.Duration(ms * float64(time.Millisecond)))}, nil
}

// processStart is when a process started, from its /proc stat (in clock
// ticks since boot) and the time since boot (/proc/uptime, read now).
func processStart(pid int) (time.Time, error) {
	now := time.Now()
	up, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return time.Time{}, err
	}
	f := strings.Fields(string(up))
	if len(f) == 0 {
		return time.Time{}, errors.New("/proc/uptime: empty")
	}
	uptime, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("/proc/uptime: %w", err)
	}
	// From state, field 3, to starttime, field 22.
	fs, err := procStat(pid)
	if err != nil {
		return time.Time{}, err
	}
	if len(fs) < 20 {
		return time.Time{}, errors.New("stat: too few fields")
	}
	ticks, err := strconv.ParseUint(fs[19], 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("stat: starttime %q: %w", fs[19], err)
	}
	boot := now.Add(-time.Duration(uptime * float64(time.Second)))
	return boot.Add(time.Duration(ticks) * time.Second / clockTicks), nil
}

// callSpan is one API call of a window: when it was due, how long it
// took, and which call it was.
type callSpan struct {
	start time.Time
	took  time.Duration
	name  string
}

// gcOverlap counts the slow calls (over slowCall) and those of them that
// overlapped a garbage collection, and the collections that overlapped
// the window [from, to] with the time they took of it.
func gcOverlap(calls []callSpan, cycles []gcCycle, from, to time.Time) (slow, slowInGC, inWindow int, gcTime time.Duration) {
	for _, c := range cycles {
		s, e := later(c.start, from), earlier(c.end, to)
		if e.After(s) {
			inWindow++
			gcTime += e.Sub(s)
		}
	}
	for _, call := range calls {
		if call.took <= slowCall {
			continue
		}
		slow++
		end := call.start.Add(call.took)
		for _, c := range cycles {
			if call.start.Before(c.end) && end.After(c.start) {
				slowInGC++
				break
			}
		}
	}
	return slow, slowInGC, inWindow, gcTime
}

// later and earlier of two times.
func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
