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
	"errors"
	"fmt"
	"net/http"
)

// The codes of storage errors (the agent answers them; the engine passes
// them on).
const (
	// CodePoolPathNotAllowed: the pool's directory is not one the host
	// lets VMs use for disk images (host_paths.disk).
	CodePoolPathNotAllowed = "POOL_PATH_NOT_ALLOWED"
	// CodePoolMissing: the pool's directory does not exist on the host
	// (the export is not mounted).
	CodePoolMissing = "POOL_DIRECTORY_MISSING"
	// CodePoolMarkerMissing: the directory has no pool marker: it is not
	// the pool's storage (an empty mount point), or the pool was never
	// initialized.
	CodePoolMarkerMissing = "POOL_MARKER_MISSING"
	// CodePoolMarkerMismatch: the directory's marker names another pool:
	// this host sees other storage at the pool's path.
	CodePoolMarkerMismatch = "POOL_MARKER_MISMATCH"
	// CodePoolNotWritable: the host cannot write in the pool's directory.
	CodePoolNotWritable = "POOL_NOT_WRITABLE"
	// CodePoolNotAvailable: an operation on a pool this host does not have
	// (one of the reasons above says why).
	CodePoolNotAvailable = "POOL_NOT_AVAILABLE"
	// CodePoolFull: not enough free space in the pool.
	CodePoolFull = "POOL_FULL"

	// CodeVolumeNameInvalid: the name cannot name a volume (it would
	// climb out of the pool).
	CodeVolumeNameInvalid = "VOLUME_NAME_INVALID"
	// CodeVolumeNotFound: no such volume in the pool.
	CodeVolumeNotFound = "VOLUME_NOT_FOUND"
	// CodeVolumeExists: a volume (or an upload) has the name already.
	CodeVolumeExists = "VOLUME_EXISTS"
	// CodeVolumeOutsidePool: the volume's file is a symbolic link, has
	// another name, or is not a regular file: it could lead outside its
	// pool.
	CodeVolumeOutsidePool = "VOLUME_OUTSIDE_POOL"
	// CodeBackingOutsidePool: a qcow2 image's backing file is outside its
	// pool (or a protocol, or without its format recorded), or it keeps its
	// data in an external file.
	CodeBackingOutsidePool = "VOLUME_BACKING_OUTSIDE_POOL"
	// CodeFormatMismatch: the image is not in the format declared.
	CodeFormatMismatch = "VOLUME_FORMAT_MISMATCH"
	// CodeImageCorrupt: qemu-img finds the image damaged.
	CodeImageCorrupt = "VOLUME_IMAGE_CORRUPT"
	// CodeImageTruncated: the image's metadata points past the end of
	// its file: it was cut short.
	CodeImageTruncated = "VOLUME_IMAGE_TRUNCATED"
	// CodeSizeMismatch: the image's virtual size is not the one declared.
	CodeSizeMismatch = "VOLUME_SIZE_MISMATCH"
	// CodeChecksumMismatch: the uploaded data's SHA-256 is not the one
	// declared.
	CodeChecksumMismatch = "VOLUME_CHECKSUM_MISMATCH"
	// CodeShrink: a volume cannot shrink (the guest's data would be cut).
	CodeShrink = "VOLUME_SHRINK_REFUSED"
	// CodeVolumeInvalid: a request's value is wrong (size, format, ...).
	CodeVolumeInvalid = "VOLUME_REQUEST_INVALID"

	// CodeUploadNotFound: no upload of this name is in progress.
	CodeUploadNotFound = "UPLOAD_NOT_FOUND"
	// CodeUploadOffset: the data does not start where the upload stands
	// (resume from the offset the upload reports).
	CodeUploadOffset = "UPLOAD_OFFSET_MISMATCH"
	// CodeUploadBusy: another request writes this upload now.
	CodeUploadBusy = "UPLOAD_IN_PROGRESS"
	// CodeUploadTooLarge: more data than the size declared.
	CodeUploadTooLarge = "UPLOAD_TOO_LARGE"
	// CodeUploadConflict: an upload of this name with other parameters
	// (size, checksum, format) is in progress.
	CodeUploadConflict = "UPLOAD_EXISTS"

	// CodeSnapshotExists, CodeSnapshotNotFound: a volume's internal
	// snapshot.
	CodeSnapshotExists   = "SNAPSHOT_EXISTS"
	CodeSnapshotNotFound = "SNAPSHOT_NOT_FOUND"
	// CodeVolumeBusy: the volume is open elsewhere (a running VM holds its
	// lock).
	CodeVolumeBusy = "VOLUME_IN_USE"
	// CodeToolFailed: qemu-img failed for another reason.
	CodeToolFailed = "STORAGE_TOOL_FAILED"
)

// Error is a storage refusal or failure: a stable code, a message, and the
// HTTP status the agent answers it with.
type Error struct {
	Code    string
	Message string
	Status  int
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func newErr(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func refused(code, format string, args ...any) *Error {
	return newErr(http.StatusUnprocessableEntity, code, format, args...)
}

func conflict(code, format string, args ...any) *Error {
	return newErr(http.StatusConflict, code, format, args...)
}

func notFound(code, format string, args ...any) *Error {
	return newErr(http.StatusNotFound, code, format, args...)
}

// Code returns the code of a storage error, or "".
func Code(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}
