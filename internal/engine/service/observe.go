package service

import (
	"time"

	"polyvirt/internal/api"
)

// Observer is told what the services do, for the engine's metrics
// (package metrics implements it; the services do not link Prometheus).
// Every method is called on the services' paths: it must be cheap, safe
// for concurrent use, and its labels bounded (no host, VM or user names).
type Observer interface {
	// AgentPoll is one request of the monitoring to an agent: kind is
	// "stats" or "capabilities"; err is nil when it was answered.
	AgentPoll(kind string, took time.Duration, err error)
	// StatsPushed is one host's statistics pushed by its agent on its
	// event stream (no request).
	StatsPushed()
	// StatsAge is how old a host's previous statistics were when new ones
	// arrived (the monitoring keeping up with its interval).
	StatsAge(age time.Duration)
	// Scheduled is one scheduling decision: outcome is one of the
	// Schedule* outcomes, took its time (the cluster's facts gathered and
	// the choice made).
	Scheduled(outcome string, took time.Duration)
	// Migration is one live migration's outcome (the Migration*
	// outcomes).
	Migration(outcome string)
	// Firmware is one firmware operation asked of a host: step is upload,
	// validate, flash, commit, reject or cancel, outcome one of the
	// Firmware* outcomes.
	Firmware(step, outcome string)
}

// The outcomes of a scheduling decision.
const (
	// SchedulePlaced: a host was chosen.
	SchedulePlaced = "placed"
	// ScheduleNoHost: no host fits (SCHEDULING_ALL_HOSTS_FILTERED_OUT).
	ScheduleNoHost = "no-host"
	// ScheduleError: the decision could not be made (the database, a
	// stored definition that cannot be read).
	ScheduleError = "error"
)

// The outcomes of a live migration, for Observer.Migration (through
// Services.NoteMigration or engine.noteMigration).
const (
	MigrationSucceeded = "succeeded"
	MigrationFailed    = "failed"
	MigrationCancelled = "cancelled"
)

// The outcomes of a firmware operation.
const (
	// FirmwareDone: the agent did it (or, for a long step, took it on).
	FirmwareDone = "done"
	// FirmwareRefused: the engine or the agent refused it (a rule: the
	// host not in Maintenance, VMs running, no image).
	FirmwareRefused = "refused"
	// FirmwareFailed: the agent was not reached, or failed.
	FirmwareFailed = "failed"
)

// nopObserver observes nothing (no metrics configured).
type nopObserver struct{}

func (nopObserver) AgentPoll(string, time.Duration, error) {}
func (nopObserver) StatsPushed()                           {}
func (nopObserver) StatsAge(time.Duration)                 {}
func (nopObserver) Scheduled(string, time.Duration)        {}
func (nopObserver) Migration(string)                       {}
func (nopObserver) Firmware(string, string)                {}

// NoteMigration records a live migration's outcome (MigrationSucceeded,
// MigrationFailed, MigrationCancelled) in the metrics.
func (s *Services) NoteMigration(outcome string) { s.e.obs.Migration(outcome) }

// noteMigration is NoteMigration for the services' own code.
func (e *engine) noteMigration(outcome string) { e.obs.Migration(outcome) }

// firmwareOutcome is the outcome of a firmware operation that ended with
// err.
func firmwareOutcome(err error) string {
	switch {
	case err == nil:
		return FirmwareDone
	case api.StatusOf(asAPIError(err)) >= 500:
		return FirmwareFailed
	}
	return FirmwareRefused
}
