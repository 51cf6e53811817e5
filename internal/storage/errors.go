// Package storage is the host side of polyvirt's storage: pools (directories
// the host path policy allows, recognized by a marker file), the volumes
// they hold (raw and qcow2 image files, each one file directly in its
// pool), resumable uploads checked with qemu-img before they are accepted,
// clones, overlays, resizes, internal qcow2 snapshots of volumes at rest,
// and the check that a VM's volume disk resolves inside its pool.
//
// Nothing here keeps state in memory between calls: a pool is described by
// the engine on each call (its id, name and path), and an upload's progress
// lives next to its data in the pool (hidden files), so that any host that
// sees a shared pool can resume it and an agent restart loses nothing.
//
// Every path is a host path resolved under Root ("/" on a host, a directory
// tree in tests) with package hostpath, links followed: a volume whose file
// is a symbolic link, has another name (a hard link), or leads outside its
// pool is refused, and so is a qcow2 image whose backing file is outside
// its pool. Errors are *Error values with a stable code.
package storage

import (
	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
)

// The agent API's storage documents (internal/api/agentapi), which this
// package's functions take and return.
type (
	Pool           = agentapi.Pool
	PoolStatus     = agentapi.PoolStatus
	VolumeInfo     = agentapi.VolumeInfo
	VolumeSnapshot = agentapi.VolumeSnapshot
	CreateRequest  = agentapi.CreateRequest
	UploadRequest  = agentapi.UploadRequest
	UploadStatus   = agentapi.UploadStatus
	SnapshotOp     = agentapi.SnapshotOp
)

// The operations on a volume's internal snapshot.
const (
	SnapshotCreate = agentapi.SnapshotCreate
	SnapshotRevert = agentapi.SnapshotRevert
	SnapshotDelete = agentapi.SnapshotDelete
)

// Errors are *api.Error values with a code of internal/api/codes.go
// (storage group); the HTTP status the agent answers them with is their
// code's (internal/api/status.go).

func newErr(code, format string, args ...any) *api.Error {
	return api.FieldError(code, "", format, args...)
}

func refused(code, format string, args ...any) *api.Error  { return newErr(code, format, args...) }
func conflict(code, format string, args ...any) *api.Error { return newErr(code, format, args...) }
func notFound(code, format string, args ...any) *api.Error { return newErr(code, format, args...) }

// message is the message of a storage error.
func message(err error) string {
	if e, ok := err.(*api.Error); ok {
		return e.Message
	}
	return err.Error()
}
