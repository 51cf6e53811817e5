package migpolicy

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
)

// run feeds a stepper the passes and returns what it did at each reading,
// as text ("" when nothing).
func run(t *testing.T, p Policy, passes []int) []string {
	t.Helper()
	st := NewStepper(p.Schedule)
	var out []string
	for _, a := range st.Init() {
		out = append(out, "init "+Describe(a, 0))
	}
	for _, pass := range passes {
		var did []string
		for _, a := range st.Observe(pass) {
			did = append(did, Describe(a, pass))
		}
		out = append(out, strings.Join(did, "; "))
	}
	return out
}

func TestSchedules(t *testing.T) {
	passes := []int{3, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	cases := []struct {
		policy string
		flags  [2]bool // auto-converge, post-copy
		want   []string
	}{
		{MinimalDowntime, [2]bool{true, false}, []string{
			"init allowed downtime 100 ms", "", "",
			"", // pass 4: 1 pass since the first reading, not more than limit 1
			"allowed downtime 150 ms at pass 5",
			"allowed downtime 200 ms at pass 6",
			"allowed downtime 300 ms at pass 7",
			"allowed downtime 400 ms at pass 8",
			"", // pass 9: 6 passes, limit 6 not exceeded yet
			"allowed downtime 500 ms at pass 10",
			"gave up at pass 11: the copy does not converge",
			"", "", "", "", ""}},
		{PostCopy, [2]bool{false, true}, []string{
			"init allowed downtime 100 ms", "", "", "",
			"allowed downtime 150 ms at pass 5", "allowed downtime 200 ms at pass 6", "allowed downtime 300 ms at pass 7",
			"allowed downtime 400 ms at pass 8", "", "allowed downtime 500 ms at pass 10",
			"switched to post-copy at pass 11",
			// Nothing more once in post-copy.
			"", "", "", "", ""}},
		{SuspendWorkload, [2]bool{true, false}, []string{
			"init allowed downtime 100 ms", "", "", "",
			"allowed downtime 150 ms at pass 5", "allowed downtime 200 ms at pass 6", "allowed downtime 300 ms at pass 7",
			"allowed downtime 400 ms at pass 8", "", "allowed downtime 500 ms at pass 10",
			"", "allowed downtime 1000 ms at pass 12",
			"", "allowed downtime 5000 ms at pass 14",
			"paused the guest to finish at pass 15",
			""}},
	}
	for _, c := range cases {
		t.Run(c.policy, func(t *testing.T) {
			p, err := For(c.policy)
			if err != nil {
				t.Fatal(err)
			}
			if !p.Migrates || p.AutoConverge != c.flags[0] || p.PostCopy != c.flags[1] {
				t.Errorf("flags: %+v", p)
			}
			if diff := cmp.Diff(c.want, run(t, p, passes)); diff != "" {
				t.Errorf("steps (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDefaultAndUnknown(t *testing.T) {
	p, err := For("")
	if err != nil || p.Name != MinimalDowntime {
		t.Errorf("the default: %+v %v", p, err)
	}
	_, err = For("fastest")
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeMigrationPolicyUnknown ||
		!strings.Contains(ae.Message, "minimal-downtime, post-copy, suspend-workload, none") {
		t.Errorf("an unknown policy: %v", err)
	}
	for _, n := range append(Names(), "") {
		if !Valid(n) {
			t.Errorf("%q not valid", n)
		}
	}
	if Valid("legacy") {
		t.Error("legacy is valid")
	}
}

func TestPostCopyFailedKeepsTheNextStep(t *testing.T) {
	p, _ := For(PostCopy)
	st := NewStepper(p.Schedule)
	st.Observe(1)
	var got []string
	for pass := 2; pass <= 12; pass++ {
		for _, a := range st.Observe(pass) {
			got = append(got, a.Action)
			if a.Action == agentapi.ConvergePostCopy {
				st.PostCopyFailed()
			}
		}
	}
	want := []string{"setDowntime", "setDowntime", "setDowntime", "setDowntime", "setDowntime", "postCopy", "abort"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestCheck(t *testing.T) {
	plan := agentapi.MigrationPlan{Name: "db1"}
	huge := plan
	huge.HugePages, huge.SharedMemory = true, true
	cases := []struct {
		name, policy string
		plan         agentapi.MigrationPlan
		code, text   string
	}{
		{"minimal downtime", MinimalDowntime, huge, "", ""},
		{"post-copy of plain memory", PostCopy, plan, "", ""},
		{"post-copy of huge pages", PostCopy, huge, api.CodeMigrationPostCopyImpossible,
			"VM db1 cannot migrate with the post-copy policy: its memory is on huge pages and its memory is shared"},
		{"none", None, plan, api.CodeMigrationPolicyNone, "VM db1 is not migrated: the cluster power's migration policy is none"},
	}
	for _, c := range cases {
		p, err := For(c.policy)
		if err != nil {
			t.Fatal(err)
		}
		err = Check(p, "the cluster power's", c.plan)
		if c.code == "" {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Code != c.code || !strings.Contains(ae.Message, c.text) {
			t.Errorf("%s: %v, want %s %q", c.name, err, c.code, c.text)
		}
	}
}
