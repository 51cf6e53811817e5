package firmware

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// State is the state of a firmware update operation.
type State string

// The states. An operation goes
//
//	uploaded → validating → validated → flashing → rebooting →
//	awaiting-decision → committing → committed
//	                  → rejecting  → rejected
//
// and may end failed (with the reason) or cancelled. idle means no
// operation has been started.
const (
	StateIdle             State = "idle"
	StateUploaded         State = "uploaded"
	StateValidating       State = "validating"
	StateValidated        State = "validated"
	StateFlashing         State = "flashing"
	StateRebooting        State = "rebooting"
	StateAwaitingDecision State = "awaiting-decision"
	StateCommitting       State = "committing"
	StateCommitted        State = "committed"
	StateRejecting        State = "rejecting"
	StateRejected         State = "rejected"
	StateFailed           State = "failed"
	StateCancelled        State = "cancelled"
)

var knownStates = map[State]bool{
	StateIdle: true, StateUploaded: true, StateValidating: true, StateValidated: true,
	StateFlashing: true, StateRebooting: true, StateAwaitingDecision: true,
	StateCommitting: true, StateCommitted: true, StateRejecting: true, StateRejected: true,
	StateFailed: true, StateCancelled: true,
}

// Terminal tells whether the state ends an operation (a new upload may
// start another one).
func (s State) Terminal() bool {
	switch s {
	case StateIdle, StateCommitted, StateRejected, StateFailed, StateCancelled:
		return true
	}
	return false
}

// Operation is one firmware update of the host, as persisted.
type Operation struct {
	// ID names the operation ("fw-20261125T174600Z-1a2b3c4d").
	ID    string `json:"id"`
	State State  `json:"state"`
	// Since is when the operation entered State: a caller that waits for
	// a reboot times the rebooting state out from it.
	Since   time.Time `json:"since"`
	Started time.Time `json:"started"`
	// TypeModel and Serial identify the host the operation was started on.
	TypeModel string `json:"typeModel,omitempty"`
	Serial    string `json:"serial,omitempty"`
	// Image is the uploaded image; ImagePath is its file in the data
	// directory.
	Image     *ImageInfo `json:"image,omitempty"`
	ImagePath string     `json:"imagePath,omitempty"`
	// Before are the levels read when the image was validated.
	Before *SystemFirmware `json:"before,omitempty"`
	// Projection is update_flash's projected result.
	Projection *Projection `json:"projection,omitempty"`
	// BootIDAtFlash is the kernel boot id when the flash started; a
	// different one later means the host rebooted.
	BootIDAtFlash string `json:"bootIdAtFlash,omitempty"`
	// Booted are the levels read after the reboot.
	Booted *SystemFirmware `json:"booted,omitempty"`
	// After are the levels read after the commit or the reject.
	After *SystemFirmware `json:"after,omitempty"`
	// Failure says why the operation failed (state failed).
	Failure *Failure `json:"failure,omitempty"`
	// LastError is the last refused or failed step that left the state as
	// it was (a flash refused outside maintenance, a commit that failed);
	// cleared by the next step that succeeds.
	LastError *Failure `json:"lastError,omitempty"`
	// Steps is the step log, oldest first.
	Steps []Step `json:"steps"`
}

// Failure is why a step failed or was refused.
type Failure struct {
	// Step is the step ("validate", "flash", ...).
	Step    string    `json:"step"`
	Code    string    `json:"code"`
	Message string    `json:"message"`
	Time    time.Time `json:"time"`
}

// Step is one entry of the step log, which the engine copies into its
// audit log.
type Step struct {
	Time time.Time `json:"time"`
	// Step is "upload", "validate", "flash", "reboot", "commit", "reject",
	// "cancel" or "recover".
	Step string `json:"step"`
	// Result is "started", "ok", "refused" or "failed".
	Result string `json:"result"`
	// State is the operation's state after the step.
	State State `json:"state"`
	// FromLevel and ToLevel are the firmware levels the step moves
	// between, when it moves any.
	FromLevel string `json:"fromLevel,omitempty"`
	ToLevel   string `json:"toLevel,omitempty"`
	// Who asked for the step ("admin@internal", "agent").
	Who     string `json:"who"`
	Message string `json:"message,omitempty"`
	// Code is the error code of a refused or failed step.
	Code string `json:"code,omitempty"`
}

// maxSteps bounds the step log kept in the state file.
const maxSteps = 500

// stateFile is the persisted form.
type stateFile struct {
	Format    string     `json:"format"`
	Version   int        `json:"version"`
	Operation *Operation `json:"operation"`
}

const (
	stateFormat  = "polyvirt-firmware-state"
	stateVersion = 1
	// StateFileName is the state file's name in the firmware directory.
	StateFileName = "state.json"
)

// loadState reads the state file; a missing file is no operation.
func loadState(path string) (*Operation, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, &Error{Code: CodeStateFile, Field: path, Message: "cannot read the firmware state file: " + err.Error(), Err: err}
	}
	var sf stateFile
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&sf); err != nil {
		return nil, &Error{Code: CodeStateFile, Field: path, Message: "the firmware state file is not valid JSON: " + err.Error(), Err: err}
	}
	if sf.Format != stateFormat {
		return nil, errorf(CodeStateFile, path, "format %q, want %q", clip(sf.Format), stateFormat)
	}
	if sf.Version != stateVersion {
		return nil, errorf(CodeStateFile, path, "version %d, this agent reads version %d", sf.Version, stateVersion)
	}
	if op := sf.Operation; op != nil {
		if !knownStates[op.State] {
			return nil, errorf(CodeStateFile, path, "operation %s has unknown state %q", clip(op.ID), clip(string(op.State)))
		}
		if op.ID == "" {
			return nil, errorf(CodeStateFile, path, "operation without an id")
		}
	}
	return sf.Operation, nil
}

// saveState writes the state file atomically: a temporary file in the same
// directory, fsync, rename over the old one, fsync of the directory.
func saveState(path string, op *Operation) error {
	data, err := json.MarshalIndent(stateFile{Format: stateFormat, Version: stateVersion, Operation: op}, "", "  ")
	if err != nil {
		return &Error{Code: CodeStateFile, Field: path, Message: "encoding the state: " + err.Error(), Err: err}
	}
	if err := writeFileAtomic(path, append(data, '\n')); err != nil {
		return &Error{Code: CodeStateFile, Field: path, Message: "writing the state: " + err.Error(), Err: err}
	}
	return nil
}

// writeFileAtomic replaces path with data so that a crash leaves either
// the old or the new content.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	return syncDir(dir)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

// clone deep-copies an operation.
func (op *Operation) clone() Operation {
	if op == nil {
		return Operation{State: StateIdle, Steps: []Step{}}
	}
	data, err := json.Marshal(op)
	if err != nil {
		return Operation{ID: op.ID, State: op.State, Since: op.Since}
	}
	var out Operation
	if err := json.Unmarshal(data, &out); err != nil {
		return Operation{ID: op.ID, State: op.State, Since: op.Since}
	}
	return out
}
