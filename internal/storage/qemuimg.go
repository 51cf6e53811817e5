package storage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"polyvirt/internal/api"
	"polyvirt/internal/hostexec"
)

// ImageInfo is what `qemu-img info --output=json` says of an image.
type ImageInfo struct {
	// Format is the image format qemu-img opened it as (raw, qcow2).
	Format string `json:"format"`
	// VirtualSize is the size the guest sees, in bytes.
	VirtualSize int64 `json:"virtual-size"`
	// ActualSize is the space the file takes on the host, in bytes.
	ActualSize int64 `json:"actual-size"`
	// ClusterSize is a qcow2 image's cluster size.
	ClusterSize int64 `json:"cluster-size,omitempty"`
	// BackingFilename and BackingFormat are a qcow2 image's backing file
	// as recorded in its header, and its format.
	BackingFilename string `json:"backing-filename,omitempty"`
	BackingFormat   string `json:"backing-filename-format,omitempty"`
	// DirtyFlag tells that the image was not closed cleanly.
	DirtyFlag bool `json:"dirty-flag"`
	// Snapshots are the image's internal snapshots.
	Snapshots []VolumeSnapshot `json:"snapshots,omitempty"`
	// FormatSpecific holds the qcow2 details (corrupt flag, compat).
	FormatSpecific *struct {
		Type string `json:"type"`
		Data struct {
			Compat  string `json:"compat,omitempty"`
			Corrupt bool   `json:"corrupt,omitempty"`
		} `json:"data"`
	} `json:"format-specific,omitempty"`
}

// maxToolOutput bounds what is read of qemu-img's answers.
const maxToolOutput = 4 << 20

// ParseInfo reads the JSON of `qemu-img info --output=json` (one image, not
// a chain). It refuses what an image cannot have: no format, a negative
// size, a snapshot without a name.
func ParseInfo(b []byte) (ImageInfo, error) {
	var info ImageInfo
	if len(b) > maxToolOutput {
		return info, fmt.Errorf("qemu-img info: answer of %d bytes", len(b))
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&info); err != nil {
		return ImageInfo{}, fmt.Errorf("qemu-img info: the answer is not its JSON: %v", err)
	}
	if dec.More() {
		return ImageInfo{}, errors.New("qemu-img info: more than one image in the answer")
	}
	switch {
	case info.Format == "":
		return ImageInfo{}, errors.New("qemu-img info: format: missing")
	case strings.ContainsAny(info.Format, " /\x00"):
		return ImageInfo{}, fmt.Errorf("qemu-img info: format %q is not a format name", info.Format)
	case info.VirtualSize < 0:
		return ImageInfo{}, fmt.Errorf("qemu-img info: virtual-size: %d is negative", info.VirtualSize)
	case info.ActualSize < 0:
		return ImageInfo{}, fmt.Errorf("qemu-img info: actual-size: %d is negative", info.ActualSize)
	case info.ClusterSize < 0:
		return ImageInfo{}, fmt.Errorf("qemu-img info: cluster-size: %d is negative", info.ClusterSize)
	case strings.ContainsRune(info.BackingFilename, 0):
		return ImageInfo{}, errors.New("qemu-img info: backing-filename: holds a NUL byte")
	}
	for i, s := range info.Snapshots {
		if s.Name == "" {
			return ImageInfo{}, fmt.Errorf("qemu-img info: snapshots[%d].name: missing", i)
		}
		if s.VMStateSize < 0 {
			return ImageInfo{}, fmt.Errorf("qemu-img info: snapshots[%d].vm-state-size: %d is negative", i, s.VMStateSize)
		}
	}
	return info, nil
}

// Corrupt tells whether qemu-img marked the image corrupt.
func (i ImageInfo) Corrupt() bool {
	return i.FormatSpecific != nil && i.FormatSpecific.Data.Corrupt
}

// CheckResult is what `qemu-img check --output=json` says of an image.
type CheckResult struct {
	Format           string `json:"format"`
	CheckErrors      int64  `json:"check-errors"`
	Corruptions      int64  `json:"corruptions"`
	Leaks            int64  `json:"leaks"`
	CorruptionsFixed int64  `json:"corruptions-fixed"`
	ImageEndOffset   int64  `json:"image-end-offset"`
	TotalClusters    int64  `json:"total-clusters"`
	AllocClusters    int64  `json:"allocated-clusters"`
}

// ParseCheck reads the JSON of `qemu-img check --output=json`.
func ParseCheck(b []byte) (CheckResult, error) {
	var r CheckResult
	if len(b) > maxToolOutput {
		return r, fmt.Errorf("qemu-img check: answer of %d bytes", len(b))
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&r); err != nil {
		return CheckResult{}, fmt.Errorf("qemu-img check: the answer is not its JSON: %v", err)
	}
	if dec.More() {
		return CheckResult{}, errors.New("qemu-img check: more than one result in the answer")
	}
	for name, v := range map[string]int64{"check-errors": r.CheckErrors, "corruptions": r.Corruptions, "leaks": r.Leaks,
		"image-end-offset": r.ImageEndOffset, "total-clusters": r.TotalClusters, "allocated-clusters": r.AllocClusters} {
		if v < 0 {
			return CheckResult{}, fmt.Errorf("qemu-img check: %s: %d is negative", name, v)
		}
	}
	if r.Format == "" {
		return CheckResult{}, errors.New("qemu-img check: format: missing")
	}
	return r, nil
}

// qemuImg runs qemu-img.
type qemuImg struct {
	runner hostexec.Runner
	// name is the program (default qemu-img).
	name string
}

func (q qemuImg) run(ctx context.Context, timeout time.Duration, args ...string) (hostexec.Result, error) {
	name := q.name
	if name == "" {
		name = "qemu-img"
	}
	return q.runner.Run(ctx, hostexec.Command{Name: name, Args: args, Timeout: timeout})
}

// openSpec is a json: file name that opens one image file with a format
// driver and no backing file: qemu-img reads nothing but this file, even
// when the image's header names a backing file (or a protocol).
func openSpec(file, format string) string {
	spec := map[string]any{"driver": format, "file": map[string]any{"driver": "file", "filename": file}}
	if format == "qcow2" {
		spec["backing"] = nil
	}
	b, _ := json.Marshal(spec)
	return "json:" + string(b)
}

// info runs qemu-img info on one file opened as format, without its
// backing chain; force reads an image a running VM holds.
func (q qemuImg) info(ctx context.Context, file, format string, force bool) (ImageInfo, error) {
	args := []string{"info", "--output=json"}
	if force {
		args = append(args, "-U")
	}
	res, err := q.run(ctx, time.Minute, append(args, openSpec(file, format))...)
	if err != nil {
		return ImageInfo{}, toolError(err, res)
	}
	return ParseInfo(res.Stdout)
}

// check runs qemu-img check on one file (no backing chain). qemu-img exits
// 2 when it finds corruptions and 3 for leaks: the JSON says which.
func (q qemuImg) check(ctx context.Context, file, format string) (CheckResult, string, error) {
	res, err := q.run(ctx, 10*time.Minute, "check", "--output=json", openSpec(file, format))
	var he *hostexec.Error
	if err != nil && !(errors.As(err, &he) && errors.Is(he.Kind, hostexec.ErrExit) && (he.ExitCode == 2 || he.ExitCode == 3)) {
		return CheckResult{}, string(res.Stderr), toolError(err, res)
	}
	r, perr := ParseCheck(res.Stdout)
	return r, string(res.Stderr), perr
}

// toolError turns a failed qemu-img run into a storage error: a lock held
// by a running VM is VOLUME_IN_USE, the rest STORAGE_TOOL_FAILED with
// qemu-img's first line.
func toolError(err error, res hostexec.Result) error {
	msg := strings.TrimSpace(string(res.Stderr))
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	if msg == "" {
		msg = err.Error()
	}
	if strings.Contains(msg, "Failed to get") && strings.Contains(msg, "lock") {
		return conflict(api.CodeVolumeInUse, "the volume is in use (a running VM holds it): %s", msg)
	}
	return newErr(api.CodeStorageToolFailed, "qemu-img: %s", msg)
}
