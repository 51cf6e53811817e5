package service

import (
	"fmt"

	"polyvirt/internal/api"
	"polyvirt/internal/store"
)

// The host status machine (oVirt's, reduced to what polyvirt does):
//
//	Installing ──first answer + admission──▶ Up | NonOperational(reason)
//	Up | NonOperational | Connecting | NonResponsive ──agent answers, libvirt down──▶ NonOperational(LIBVIRT_UNAVAILABLE)
//	NonOperational(LIBVIRT_UNAVAILABLE) ──libvirt back + admission──▶ Up | NonOperational(reason)
//	Up | NonOperational | Connecting ──N failed polls──▶ NonResponsive
//	NonResponsive ──answer + admission──▶ Up | NonOperational(reason)
//	Up ⇄ NonOperational     when the report or the cluster changes (admission again)
//	any but Maintenance ──maintenance──▶ Maintenance ──activate──▶ Connecting ──▶ Up | NonOperational
//	Maintenance | NonResponsive | NonOperational | Installing ──remove──▶ (gone)
//
// The functions below are pure: the monitor and the API apply them.

// pollOutcome is the result of one monitoring round of a host.
type pollOutcome struct {
	// OK tells that the agent answered (capabilities and statistics).
	OK bool
	// Failures counts the consecutive failed rounds, this one included
	// (0 when OK).
	Failures int
	// Err says why the round failed.
	Err string
	// Admission is set when admission ran (OK rounds only).
	Admission *admission
	// LibvirtDown, in an OK round, is why the agent cannot reach libvirt
	// ("" when it can).
	LibvirtDown string
}

// statusChange is what a round does to a host's status.
type statusChange struct {
	Changed bool
	Status  store.HostStatus
	Code    string
	Message string
	// Event is the audit message ("" for none) and Severity its severity.
	Event    string
	Severity store.Severity
	// EventCode is the event's code.
	EventCode string
}

// needsAdmissionHost is needsAdmission for a host, which also runs again
// for a host NonOperational because its agent could not reach libvirt.
func needsAdmissionHost(h store.Host, capsChanged, clusterChanged bool) bool {
	return needsAdmission(h.Status, capsChanged, clusterChanged) ||
		(h.Status == store.HostNonOperational && h.StatusCode == api.CodeLibvirtUnavailable)
}

// needsAdmission tells whether an answered round must (re)run admission:
// always after the agent was not (or not yet) known to answer, and when
// the capabilities report or the cluster changed for an Up or
// NonOperational host. A host in Maintenance waits for activate.
func needsAdmission(s store.HostStatus, capsChanged, clusterChanged bool) bool {
	switch s {
	case store.HostInstalling, store.HostConnecting, store.HostNonResponsive:
		return true
	case store.HostUp, store.HostNonOperational:
		return capsChanged || clusterChanged
	}
	return false
}

// nextStatus is the host's status after a monitoring round. threshold is
// the number of consecutive failed rounds that make a host NonResponsive.
func nextStatus(h store.Host, o pollOutcome, threshold int) statusChange {
	keep := statusChange{Status: h.Status, Code: h.StatusCode, Message: h.StatusMessage}
	switch h.Status {
	case store.HostMaintenance, store.HostPreparingForMaintenance:
		return keep
	}
	if o.OK && o.LibvirtDown != "" {
		// The agent answers but cannot run anything: not scheduled to, its
		// VMs not restarted elsewhere (they most likely run on; QEMU
		// outlives libvirtd), back Up by itself when libvirt is.
		if h.StatusCode == api.CodeLibvirtUnavailable && (h.Status == store.HostNonOperational || h.Status == store.HostInstalling) {
			return keep
		}
		msg := fmt.Sprintf("Host %s cannot reach libvirt: %s", h.Name, o.LibvirtDown)
		to := store.HostNonOperational
		if h.Status == store.HostInstalling {
			to = store.HostInstalling
		}
		return statusChange{Changed: true, Status: to, Code: api.CodeLibvirtUnavailable, Message: msg,
			Event:     fmt.Sprintf("Host %s moved to Non-Operational state: its agent cannot reach libvirt.", h.Name),
			EventCode: api.CodeLibvirtUnavailable, Severity: store.SeverityError}
	}
	if o.OK {
		a := o.Admission
		if a == nil {
			return keep
		}
		if a.OK {
			if h.Status == store.HostUp && h.StatusCode == "" {
				return keep
			}
			return statusChange{Changed: true, Status: store.HostUp,
				Event: fmt.Sprintf("Status of host %s was set to Up.", h.Name), Severity: store.SeverityInfo}
		}
		if h.Status == store.HostNonOperational && h.StatusCode == a.Code && h.StatusMessage == a.Message {
			return keep
		}
		return statusChange{Changed: true, Status: store.HostNonOperational, Code: a.Code, Message: a.Message,
			Event: a.Message, EventCode: a.Code, Severity: store.SeverityError}
	}
	if o.Failures < threshold {
		return keep
	}
	reason := fmt.Sprintf("the agent at %s does not answer: %s", h.Address, o.Err)
	switch h.Status {
	case store.HostInstalling:
		// Enrolled but never answered: still installing, say why.
		if h.StatusCode == api.CodeAgentUnreachable {
			return keep
		}
		return statusChange{Changed: true, Status: store.HostInstalling, Code: api.CodeAgentUnreachable, Message: reason,
			Event:    fmt.Sprintf("Host %s is enrolled but its agent at %s does not answer yet.", h.Name, h.Address),
			Severity: store.SeverityWarning, EventCode: api.CodeAgentUnreachable}
	case store.HostUp, store.HostNonOperational, store.HostConnecting:
		return statusChange{Changed: true, Status: store.HostNonResponsive, Code: api.CodeAgentUnreachable, Message: reason,
			Event: fmt.Sprintf("Host %s moved to Non-Responsive state.", h.Name), EventCode: api.CodeAgentUnreachable,
			Severity: store.SeverityError}
	}
	return keep
}

// hostAction names an action on a host.
type hostAction string

// The actions whose legality depends on the status.
const (
	actMaintenance hostAction = "maintenance"
	actActivate    hostAction = "activate"
	actRemove      hostAction = "remove"
	actMove        hostAction = "change the cluster or address of"
	actJoinToken   hostAction = "issue a join token for"
)

// actionRule says in which statuses an action is allowed, in which it does
// nothing (already done), and what to do instead otherwise.
var actionRules = map[hostAction]struct {
	allowed, noop []store.HostStatus
	hint          string
}{
	actMaintenance: {
		allowed: []store.HostStatus{store.HostUp, store.HostNonOperational, store.HostNonResponsive, store.HostConnecting,
			store.HostInstalling, store.HostInstallFailed, store.HostDown, store.HostRebooting},
		noop: []store.HostStatus{store.HostMaintenance, store.HostPreparingForMaintenance},
	},
	actActivate: {
		allowed: []store.HostStatus{store.HostMaintenance, store.HostPreparingForMaintenance, store.HostNonOperational, store.HostNonResponsive,
			store.HostInstallFailed, store.HostDown},
		noop: []store.HostStatus{store.HostUp, store.HostConnecting},
		hint: "an Installing host becomes Up by itself once its agent has joined and answers",
	},
	actRemove: {
		allowed: []store.HostStatus{store.HostMaintenance, store.HostNonResponsive, store.HostNonOperational,
			store.HostInstalling, store.HostInstallFailed, store.HostDown},
		hint: "switch it to Maintenance first (polyvirt host maintenance)",
	},
	actMove: {
		allowed: []store.HostStatus{store.HostMaintenance, store.HostInstalling, store.HostInstallFailed},
		hint:    "switch it to Maintenance first (polyvirt host maintenance)",
	},
	actJoinToken: {
		allowed: []store.HostStatus{store.HostMaintenance, store.HostInstalling, store.HostInstallFailed,
			store.HostNonResponsive, store.HostNonOperational, store.HostDown},
		hint: "a host that is Up keeps its certificate; switch it to Maintenance to enroll its agent again",
	},
}

// checkAction tells whether an action is allowed in status s: noop when it
// is already done, an error (409, ACTION_TYPE_FAILED_VDS_STATUS_ILLEGAL)
// when it is not allowed.
func checkAction(a hostAction, name string, s store.HostStatus) (noop bool, err *api.Error) {
	r := actionRules[a]
	for _, x := range r.noop {
		if x == s {
			return true, nil
		}
	}
	for _, x := range r.allowed {
		if x == s {
			return false, nil
		}
	}
	msg := fmt.Sprintf("Cannot %s host %s while it is %s", a, name, s)
	if r.hint != "" {
		msg += ": " + r.hint
	}
	return false, &api.Error{Code: api.CodeHostStatusIllegal, Message: msg + "."}
}
