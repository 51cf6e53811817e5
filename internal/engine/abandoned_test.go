package engine

import (
	"context"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"polyvirt/internal/store"
)

// TestAbandonedRequestIsNoServerError: a request whose client left before
// its answer (its context cancelled, so its reads of the database fail with
// it) is no server error: no warning in the log, and the request metrics
// count it as 499, not 500.
func TestAbandonedRequestIsNoServerError(t *testing.T) {
	te := startEngine(t, testMonitor)
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequestWithContext(gone, "GET", "/api/v1/events?limit=5", nil)
	req.Header.Set("Authorization", "Bearer "+te.token)
	rec := httptest.NewRecorder()
	te.e.Handler().ServeHTTP(rec, req)
	if rec.Code < 500 {
		t.Fatalf("the abandoned request was answered %d: it did not fail with its context, the test proves nothing", rec.Code)
	}
	if strings.Contains(te.log.String(), `msg="API error"`) {
		t.Errorf("an abandoned request logged as an API error:\n%s", te.log.String())
	}
	u, err := te.admin.CreateUser(ctx, "prom", string(store.RoleMetrics))
	if err != nil {
		t.Fatal(err)
	}
	_, mfs := te.scrape(t, u.Token)
	route := func(code string) map[string]string {
		return map[string]string{"method": "GET", "route": "/api/v1/events", "code": code}
	}
	if got := value(mfs, "polyvirt_api_requests_total", route("499")); got != 1 {
		t.Errorf("requests counted 499: %v, want 1", got)
	}
	if got := value(mfs, "polyvirt_api_requests_total", route(strconv.Itoa(rec.Code))); got > 0 {
		t.Errorf("requests counted %d: %v, want none", rec.Code, got)
	}
}
