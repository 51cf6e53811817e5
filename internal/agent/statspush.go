package agent

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
)

// The engine's monitoring reads a host's statistics from its event stream
// rather than polling GET /v1/stats: it asks GET /v1/events?stats=2s and
// the agent writes an agentapi.EventStats event (the document GET
// /v1/stats answers) every 2 s on the stream it keeps open anyway. One
// connection and one stream per host then carry the monitoring: no
// request per round, no answer to parse but the statistics themselves
// (the event's data is the document itself, not wrapped in an Event).

// statsPushInterval reads ?stats=INTERVAL: 0 when it is not asked for.
func statsPushInterval(r *http.Request) (time.Duration, error) {
	v := r.URL.Query().Get("stats")
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < agentapi.MinStatsPush || d > agentapi.MaxStatsPush {
		return 0, api.NewError(http.StatusBadRequest, api.CodeBadRequest, "stats=%q: want an interval from %s to %s (such as 2s)",
			v, agentapi.MinStatsPush, agentapi.MaxStatsPush)
	}
	return d, nil
}

// sendStats writes the statistics as an event of the stream (nothing
// before the first sample), with the capabilities' ETag when the report is
// current (capsETagNow).
func (a *Agent) sendStats(w io.Writer) {
	s, err := a.statsNow()
	if err != nil {
		return
	}
	s.CapsETag = a.capsETagNow()
	doc, err := json.Marshal(s)
	if err != nil {
		return
	}
	fmt.Fprintf(w, "event: %s\ndata: %s\n\n", agentapi.EventStats, doc)
}
