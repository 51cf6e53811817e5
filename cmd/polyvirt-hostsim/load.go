package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// maxInFlight bounds the calls of a fixed-rate load waiting for their
// answers: past it a due call waits for a slot (and the wait counts in
// its latency). Below the engine's 128 connections per client (each call
// waiting takes a connection of the client's).
const maxInFlight = 96

// maxRate bounds a fixed-rate load (calls per second).
const maxRate = 100000

// load is an API load: Clients calling in a loop with a Pause between
// calls, or calls started at a fixed Rate (per second, open loop: the
// answers' time does not slow it down), or both.
type load struct {
	Clients int           `json:"clients"`
	Pause   time.Duration `json:"pauseNs"`
	Rate    float64       `json:"ratePerS,omitempty"`
}

// String names the load in file names: 4x20ms, r175.
func (l load) String() string {
	if l.Rate > 0 {
		return "r" + strconv.FormatFloat(l.Rate, 'f', -1, 64)
	}
	return fmt.Sprintf("%dx%s", l.Clients, l.Pause)
}

// Describe says what the load is, for people.
func (l load) Describe() string {
	if l.Rate > 0 {
		return strconv.FormatFloat(l.Rate, 'f', -1, 64) + " calls/s started at a fixed rate"
	}
	return fmt.Sprintf("%d clients pausing %s", l.Clients, l.Pause)
}

// parseLoads reads --api-loads: a comma-separated list of CLIENTS:PAUSE
// (4:20ms) and RATE/s (175/s).
func parseLoads(s string) ([]load, error) {
	var out []load
	for i, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if r, ok := strings.CutSuffix(part, "/s"); ok {
			rate, err := strconv.ParseFloat(r, 64)
			if err != nil || !(rate > 0 && rate <= maxRate) {
				return nil, fmt.Errorf("load %d %q: want RATE/s with a rate from above 0 to %d calls a second, such as 175/s", i+1, part, maxRate)
			}
			out = append(out, load{Rate: rate})
			continue
		}
		c, p, ok := strings.Cut(part, ":")
		if !ok {
			return nil, fmt.Errorf("load %d %q: want CLIENTS:PAUSE (such as 4:20ms) or RATE/s (such as 175/s)", i+1, part)
		}
		n, err := strconv.Atoi(c)
		if err != nil || n < 0 || n > 10000 {
			return nil, fmt.Errorf("load %d %q: clients %q: want a number from 0 to 10000", i+1, part, c)
		}
		d, err := time.ParseDuration(p)
		if err != nil || d < 0 {
			return nil, fmt.Errorf("load %d %q: pause %q: want a duration of 0 or more, such as 20ms", i+1, part, p)
		}
		out = append(out, load{Clients: n, Pause: d})
	}
	return out, nil
}
