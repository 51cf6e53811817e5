// Package migpolicy holds polyvirt's migration policies and what they mean
// while a VM moves: each policy is a convergence schedule (as VDSM's) — the
// allowed final pause set when the copy starts, then raised step by step
// when the copy needs pass after pass over the memory without finishing,
// and a last step that post-copies, pauses the guest, or gives up — plus the
// flags the migration needs (auto-converge, post-copy allowed).
//
// The engine picks the policy (the cluster's, or the VM's own, or the one a
// request names), refuses what the VM cannot use (Check) and sends the
// schedule with its order; the source agent steps through it (Stepper).
// Both are pure: no libvirt, no network.
package migpolicy

import (
	"fmt"
	"slices"
	"strings"

	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
)

// The policies.
const (
	// MinimalDowntime migrates live with auto-converge (QEMU slows the
	// guest's vCPUs when the copy stalls) and raises the allowed pause
	// from 100 ms to 500 ms as the copy stalls; a copy that still does not
	// converge is given up (the VM keeps running on its source).
	MinimalDowntime = "minimal-downtime"
	// PostCopy raises the allowed pause as MinimalDowntime does, then
	// switches to post-copy: the VM runs on the destination at once and
	// fetches the pages it still lacks over the network. It always
	// finishes, but the VM is lost if the network fails meanwhile; it
	// cannot move huge pages, file-backed or shared memory.
	PostCopy = "post-copy"
	// SuspendWorkload raises the allowed pause further (up to 5 s) and,
	// when the copy still stalls, pauses the guest so that the copy
	// finishes; it runs again on the destination.
	SuspendWorkload = "suspend-workload"
	// None: the VMs are not migrated; a migration is refused.
	None = "none"
)

// Default is the policy of a cluster that names none.
const Default = MinimalDowntime

// Names are the policies, the default first.
func Names() []string { return []string{MinimalDowntime, PostCopy, SuspendWorkload, None} }

// Policy is a policy's migration: its schedule and flags.
type Policy struct {
	Name string
	// Migrates is false for None.
	Migrates bool
	// AutoConverge and PostCopy are the migration's flags.
	AutoConverge bool
	PostCopy     bool
	Schedule     agentapi.ConvergenceSchedule
}

// raise is the common ladder of the allowed pause: the first step when
// the copy starts, then one step per stalled pass (the oVirt engine's
// predefined policies' values).
func raise(steps ...[2]int) []agentapi.StallingStep {
	out := make([]agentapi.StallingStep, 0, len(steps))
	for _, s := range steps {
		out = append(out, agentapi.StallingStep{Limit: s[0],
			ConvergenceAction: agentapi.ConvergenceAction{Action: agentapi.ConvergeSetDowntime, DowntimeMs: s[1]}})
	}
	return out
}

func last(action string) agentapi.StallingStep {
	return agentapi.StallingStep{Limit: -1, ConvergenceAction: agentapi.ConvergenceAction{Action: action}}
}

// For returns a policy by name ("" is Default); an unknown name is a
// MIGRATION_POLICY_UNKNOWN error that lists the known ones.
func For(name string) (Policy, error) {
	if name == "" {
		name = Default
	}
	init := []agentapi.ConvergenceAction{{Action: agentapi.ConvergeSetDowntime, DowntimeMs: 100}}
	ladder := [][2]int{{1, 150}, {2, 200}, {3, 300}, {4, 400}, {6, 500}}
	switch name {
	case MinimalDowntime:
		return Policy{Name: name, Migrates: true, AutoConverge: true, Schedule: agentapi.ConvergenceSchedule{
			Init: init, Stalling: append(raise(ladder...), last(agentapi.ConvergeAbort))}}, nil
	case PostCopy:
		return Policy{Name: name, Migrates: true, PostCopy: true, Schedule: agentapi.ConvergenceSchedule{
			Init: init, Stalling: append(raise(ladder...), last(agentapi.ConvergePostCopy), last(agentapi.ConvergeAbort))}}, nil
	case SuspendWorkload:
		return Policy{Name: name, Migrates: true, AutoConverge: true, Schedule: agentapi.ConvergenceSchedule{
			Init: init, Stalling: append(raise(append(ladder, [2]int{8, 1000}, [2]int{10, 5000})...), last(agentapi.ConvergeSuspend))}}, nil
	case None:
		return Policy{Name: name}, nil
	}
	return Policy{}, refuse(api.CodeMigrationPolicyUnknown,
		"there is no migration policy %q (known: %s)", name, strings.Join(Names(), ", "))
}

// refuse is a rule's refusal: a code and a sentence, the HTTP status left
// to the server that answers with it.
func refuse(code, format string, args ...any) *api.Error {
	return &api.Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Valid tells whether name is a policy ("" is: the default).
func Valid(name string) bool { return name == "" || slices.Contains(Names(), name) }

// Check refuses a migration the policy does not allow for the VM (a
// MIGRATION_DISABLED_BY_POLICY or MIGRATION_POSTCOPY_NOT_POSSIBLE error),
// naming where the policy comes from (source: "the cluster power's").
func Check(p Policy, source string, plan agentapi.MigrationPlan) error {
	if !p.Migrates {
		return refuse(api.CodeMigrationPolicyNone,
			"VM %s is not migrated: %s migration policy is none (choose another with --policy, or change the policy)", plan.Name, source)
	}
	if p.PostCopy {
		var why []string
		if plan.HugePages {
			why = append(why, "its memory is on huge pages")
		}
		if plan.FileBacked {
			why = append(why, "its memory is backed by a file")
		}
		if plan.SharedMemory {
			why = append(why, "its memory is shared")
		}
		if len(why) > 0 {
			return refuse(api.CodeMigrationPostCopyImpossible,
				"VM %s cannot migrate with the post-copy policy: %s, which post-copy cannot move (use minimal-downtime or suspend-workload)",
				plan.Name, strings.Join(why, " and "))
		}
	}
	return nil
}

// Stepper follows a migration's passes through a schedule: the source
// asks it at the start (Init) and at every progress reading (Observe) what
// to do now. A step runs once the copy has needed more than its Limit
// passes since the first reading; the steps run in order, each once (a
// Limit of -1 runs at the reading after the step before it).
type Stepper struct {
	s       agentapi.ConvergenceSchedule
	first   int
	last    int
	started bool
	// postCopy and suspended are the one-way steps taken.
	postCopy, suspended bool
}

// NewStepper starts following a schedule (copied).
func NewStepper(s agentapi.ConvergenceSchedule) *Stepper {
	return &Stepper{s: agentapi.ConvergenceSchedule{Init: slices.Clone(s.Init), Stalling: slices.Clone(s.Stalling)}}
}

// Init is what runs when the copy starts.
func (st *Stepper) Init() []agentapi.ConvergenceAction { return slices.Clone(st.s.Init) }

// Observe takes the pass libvirt reports (its memory iteration) and
// returns the actions due, at most one per new pass. Once the migration is
// in post-copy or the guest is paused, nothing more is due.
func (st *Stepper) Observe(pass int) []agentapi.ConvergenceAction {
	if !st.started {
		st.started, st.first, st.last = true, pass, pass
		return nil
	}
	if pass <= st.last || st.postCopy || st.suspended || len(st.s.Stalling) == 0 {
		return nil
	}
	st.last = pass
	head := st.s.Stalling[0]
	if head.Limit >= pass-st.first {
		return nil
	}
	st.s.Stalling = st.s.Stalling[1:]
	switch head.Action {
	case agentapi.ConvergePostCopy:
		st.postCopy = true
	case agentapi.ConvergeSuspend:
		st.suspended = true
	}
	return []agentapi.ConvergenceAction{head.ConvergenceAction}
}

// PostCopyFailed tells the stepper that a post-copy switch did not happen:
// the steps after it stay due.
func (st *Stepper) PostCopyFailed() { st.postCopy = false }

// Describe says what an action does, for the migration's steps list.
func Describe(a agentapi.ConvergenceAction, pass int) string {
	switch a.Action {
	case agentapi.ConvergeSetDowntime:
		if pass == 0 {
			return fmt.Sprintf("allowed downtime %d ms", a.DowntimeMs)
		}
		return fmt.Sprintf("allowed downtime %d ms at pass %d", a.DowntimeMs, pass)
	case agentapi.ConvergePostCopy:
		return fmt.Sprintf("switched to post-copy at pass %d", pass)
	case agentapi.ConvergeSuspend:
		return fmt.Sprintf("paused the guest to finish at pass %d", pass)
	case agentapi.ConvergeAbort:
		return fmt.Sprintf("gave up at pass %d: the copy does not converge", pass)
	}
	return fmt.Sprintf("%s at pass %d", a.Action, pass)
}
