package firmware

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
)

var knownStates = map[agentapi.FirmwareState]bool{
	agentapi.FirmwareStateIdle: true, agentapi.FirmwareStateUploaded: true, agentapi.FirmwareStateValidating: true, agentapi.FirmwareStateValidated: true,
	agentapi.FirmwareStateFlashing: true, agentapi.FirmwareStateRebooting: true, agentapi.FirmwareStateAwaitingDecision: true,
	agentapi.FirmwareStateCommitting: true, agentapi.FirmwareStateCommitted: true, agentapi.FirmwareStateRejecting: true, agentapi.FirmwareStateRejected: true,
	agentapi.FirmwareStateFailed: true, agentapi.FirmwareStateCancelled: true,
}

// maxSteps bounds the step log kept in the state file.
const maxSteps = 500

// stateFile is the persisted form.
type stateFile struct {
	Format    string                      `json:"format"`
	Version   int                         `json:"version"`
	Operation *agentapi.FirmwareOperation `json:"operation"`
}

const (
	stateFormat  = "polyvirt-firmware-state"
	stateVersion = 1
	// StateFileName is the state file's name in the firmware directory.
	StateFileName = "state.json"
)

// loadState reads the state file; a missing file is no operation.
func loadState(path string) (*agentapi.FirmwareOperation, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, &api.Error{Code: api.CodeFirmwareStateFile, Field: path, Message: "cannot read the firmware state file: " + err.Error(), Err: err}
	}
	var sf stateFile
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&sf); err != nil {
		return nil, &api.Error{Code: api.CodeFirmwareStateFile, Field: path, Message: "the firmware state file is not valid JSON: " + err.Error(), Err: err}
	}
	if sf.Format != stateFormat {
		return nil, api.FieldError(api.CodeFirmwareStateFile, path, "format %q, want %q", clip(sf.Format), stateFormat)
	}
	if sf.Version != stateVersion {
		return nil, api.FieldError(api.CodeFirmwareStateFile, path, "version %d, this agent reads version %d", sf.Version, stateVersion)
	}
	if op := sf.Operation; op != nil {
		if !knownStates[op.State] {
			return nil, api.FieldError(api.CodeFirmwareStateFile, path, "operation %s has unknown state %q", clip(op.ID), clip(string(op.State)))
		}
		if op.ID == "" {
			return nil, api.FieldError(api.CodeFirmwareStateFile, path, "operation without an id")
		}
	}
	return sf.Operation, nil
}

// saveState writes the state file atomically: a temporary file in the same
// directory, fsync, rename over the old one, fsync of the directory.
func saveState(path string, op *agentapi.FirmwareOperation) error {
	data, err := json.MarshalIndent(stateFile{Format: stateFormat, Version: stateVersion, Operation: op}, "", "  ")
	if err != nil {
		return &api.Error{Code: api.CodeFirmwareStateFile, Field: path, Message: "encoding the state: " + err.Error(), Err: err}
	}
	if err := writeFileAtomic(path, append(data, '\n')); err != nil {
		return &api.Error{Code: api.CodeFirmwareStateFile, Field: path, Message: "writing the state: " + err.Error(), Err: err}
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

// cloneOperation deep-copies an operation.
func cloneOperation(op *agentapi.FirmwareOperation) agentapi.FirmwareOperation {
	if op == nil {
		return agentapi.FirmwareOperation{State: agentapi.FirmwareStateIdle, Steps: []agentapi.FirmwareStep{}}
	}
	data, err := json.Marshal(op)
	if err != nil {
		return agentapi.FirmwareOperation{ID: op.ID, State: op.State, Since: op.Since}
	}
	var out agentapi.FirmwareOperation
	if err := json.Unmarshal(data, &out); err != nil {
		return agentapi.FirmwareOperation{ID: op.ID, State: op.State, Since: op.Since}
	}
	return out
}
