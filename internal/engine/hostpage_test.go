package engine

import (
	"fmt"
	"net/url"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"polyvirt/internal/api"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/client"
)

// TestHostListPages: GET /hosts answers pages ordered by name, filtered
// before they are cut, with the continue token of the next; every page of
// a list read while hosts are added holds no host twice and skips none of
// those that were there; limits and tokens out of bounds are refused with
// their codes. For the brief list (from memory) and with details (from the
// database).
func TestHostListPages(t *testing.T) {
	te := startEngine(t, testMonitor)
	for _, c := range []string{"power", "x86"} {
		if _, err := te.admin.CreateCluster(ctx, engineapi.ClusterRequest{Name: c}); err != nil {
			t.Fatal(err)
		}
	}
	add := func(name, cluster string, port int) {
		t.Helper()
		if _, err := te.admin.AddHost(ctx, engineapi.HostRequest{Name: name, Address: fmt.Sprintf("127.0.0.1:%d", port), Cluster: cluster}); err != nil {
			t.Fatal(err)
		}
	}
	var want, wantPower []string
	for i := range 23 {
		name, cluster := fmt.Sprintf("h%02d", i*2), "x86"
		if i%3 == 0 {
			cluster = "power"
			wantPower = append(wantPower, name)
		}
		add(name, cluster, 1000+i)
		want = append(want, name)
	}
	names := func(hs []engineapi.Host) []string {
		out := []string{}
		for _, h := range hs {
			out = append(out, h.Name)
		}
		return out
	}
	// pages reads every page of a filter, limit hosts at a time; between
	// the first pages, during names hosts are added.
	port := 2000
	pages := func(f client.HostFilter, limit int, during func(page int)) ([]string, int) {
		t.Helper()
		var got []string
		cont := ""
		for n := 0; ; n++ {
			p, err := te.admin.HostPage(ctx, f, limit, cont)
			if err != nil {
				t.Fatalf("page %d of %+v: %v", n, f, err)
			}
			if len(p.Hosts) > limit || (p.Continue != "" && len(p.Hosts) != limit) {
				t.Errorf("page %d of %+v: %d hosts (limit %d), continue %q", n, f, len(p.Hosts), limit, p.Continue)
			}
			got = append(got, names(p.Hosts)...)
			if p.Continue == "" {
				return got, n + 1
			}
			if n > 100 {
				t.Fatalf("%+v: more than 100 pages", f)
			}
			if during != nil {
				during(n)
			}
			cont = p.Continue
		}
	}
	for _, details := range []bool{false, true} {
		t.Run(fmt.Sprintf("details=%t", details), func(t *testing.T) {
			got, n := pages(client.HostFilter{Details: details}, 5, nil)
			if diff := cmp.Diff(want, got); diff != "" || n != (len(want)+4)/5 {
				t.Errorf("every page, 5 a page (%d pages; -want +got):\n%s", n, diff)
			}
			// The filters apply before the pages are cut: full pages of
			// the cluster's hosts.
			got, n = pages(client.HostFilter{Cluster: "power", Statuses: []string{"Installing"}, Details: details}, 3, nil)
			if diff := cmp.Diff(wantPower, got); diff != "" || n != (len(wantPower)+2)/3 {
				t.Errorf("power's hosts, 3 a page (%d pages; -want +got):\n%s", n, diff)
			}
			// Hosts added while the pages are read: those after the
			// position show, those before do not; none of the others is
			// listed twice or skipped.
			var before, after []string
			got, _ = pages(client.HostFilter{Details: details}, 4, func(page int) {
				if page > 1 {
					return
				}
				a, b := fmt.Sprintf("h%02d-%t-late", 40+page, details), fmt.Sprintf("a%d-%t-early", page, details)
				port += 2
				add(a, "x86", port)
				add(b, "power", port+1)
				after, before = append(after, a), append(before, b)
			})
			for _, h := range before {
				if slices.Contains(got, h) {
					t.Errorf("%s, added before the position, is listed: %v", h, got)
				}
			}
			seen := map[string]int{}
			for _, h := range got {
				seen[h]++
			}
			for _, h := range append(slices.Clone(want), after...) {
				if seen[h] != 1 {
					t.Errorf("%s is listed %d times: %v", h, seen[h], got)
				}
			}
			if !slices.IsSorted(got) {
				t.Errorf("not in name order: %v", got)
			}
			want = append(want, before...)
			want = append(want, after...)
			slices.Sort(want)
			wantPower = append(wantPower, before...)
			slices.Sort(wantPower)
		})
	}
	// Without a limit: the default page size, and every host fits.
	p, err := te.admin.HostPage(ctx, client.HostFilter{}, 0, "")
	if err != nil || len(p.Hosts) != len(want) || p.Continue != "" {
		t.Errorf("default page: %d hosts, continue %q, %v; want %d and none", len(p.Hosts), p.Continue, err, len(want))
	}
	// Refusals.
	first, err := te.admin.HostPage(ctx, client.HostFilter{Cluster: "x86"}, 2, "")
	if err != nil || first.Continue == "" {
		t.Fatalf("first page of x86: %+v %v", first, err)
	}
	tampered := []byte(first.Continue)
	tampered[2] ^= 0x01
	tests := []struct {
		name  string
		query url.Values
		want  apiErr
	}{
		{"limit 0", url.Values{"limit": {"0"}}, apiErr{400, api.CodeInvalidArgument, "limit"}},
		{"limit above the largest page", url.Values{"limit": {"1001"}}, apiErr{400, api.CodeInvalidArgument, "limit"}},
		{"limit not a number", url.Values{"limit": {"all"}}, apiErr{400, api.CodeInvalidArgument, "limit"}},
		{"a token that is not one", url.Values{"continue": {"not-a-token!"}}, apiErr{400, api.CodeContinueInvalid, "continue"}},
		{"a tampered token", url.Values{"cluster": {"x86"}, "continue": {string(tampered)}}, apiErr{400, api.CodeContinueInvalid, "continue"}},
		{"another cluster's token", url.Values{"cluster": {"power"}, "continue": {first.Continue}}, apiErr{400, api.CodeContinueInvalid, "continue"}},
		{"the same query with details", url.Values{"cluster": {"x86"}, "details": {"true"}, "continue": {first.Continue}}, apiErr{400, api.CodeContinueInvalid, "continue"}},
		{"details not a boolean", url.Values{"details": {"yes please"}}, apiErr{400, api.CodeInvalidArgument, "details"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, eb, _ := te.raw(t, "GET", "/api/v1/hosts?"+tc.query.Encode(), te.token, nil)
			if got := (apiErr{st, eb.Error.Code, eb.Error.Field}); got != tc.want {
				t.Errorf("GET /hosts?%s: %+v (%s); want %+v", tc.query.Encode(), got, eb.Error.Message, tc.want)
			}
		})
	}
	// The token of the x86 query goes on.
	next, err := te.admin.HostPage(ctx, client.HostFilter{Cluster: "x86"}, 2, first.Continue)
	if err != nil || len(next.Hosts) != 2 || next.Hosts[0].Name <= first.Hosts[1].Name {
		t.Errorf("second page of x86: %+v %v", names(next.Hosts), err)
	}
}
