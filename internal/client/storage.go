package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"polyvirt/internal/api"
	"polyvirt/internal/api/engineapi"
)

// Pools lists the storage pools (of a cluster, when given).
func (c *Client) Pools(ctx context.Context, cluster string) ([]engineapi.Pool, error) {
	var q url.Values
	if cluster != "" {
		q = url.Values{"cluster": {cluster}}
	}
	var out []engineapi.Pool
	err := c.Do(ctx, "GET", "/pools", q, nil, &out)
	return out, err
}

// Pool shows a pool with what each host says of it.
func (c *Client) Pool(ctx context.Context, ref string) (engineapi.Pool, error) {
	var out engineapi.Pool
	err := c.Do(ctx, "GET", "/pools/"+esc(ref), nil, nil, &out)
	return out, err
}

// CreatePool adds a pool to a cluster.
func (c *Client) CreatePool(ctx context.Context, req engineapi.PoolRequest) (engineapi.Pool, error) {
	var out engineapi.Pool
	err := c.Do(ctx, "POST", "/pools", nil, req, &out)
	return out, err
}

// DeletePool removes a pool that holds no volume.
func (c *Client) DeletePool(ctx context.Context, ref string) error {
	return c.Do(ctx, "DELETE", "/pools/"+esc(ref), nil, nil, nil)
}

// Volumes lists volumes (of a pool, when given).
func (c *Client) Volumes(ctx context.Context, pool string) ([]engineapi.Volume, error) {
	var q url.Values
	if pool != "" {
		q = url.Values{"pool": {pool}}
	}
	var out []engineapi.Volume
	err := c.Do(ctx, "GET", "/volumes", q, nil, &out)
	return out, err
}

func volumePath(pool, name string) string { return "/volumes/" + esc(pool) + "/" + esc(name) }

// Volume shows a volume.
func (c *Client) Volume(ctx context.Context, pool, name string) (engineapi.Volume, error) {
	var out engineapi.Volume
	err := c.Do(ctx, "GET", volumePath(pool, name), nil, nil, &out)
	return out, err
}

// CreateVolume makes an empty volume (or starts an upload: see
// UploadVolume).
func (c *Client) CreateVolume(ctx context.Context, req engineapi.VolumeRequest) (engineapi.Volume, error) {
	var out engineapi.Volume
	err := c.Do(ctx, "POST", "/volumes", nil, req, &out)
	return out, err
}

// DeleteVolume deletes a volume nothing uses.
func (c *Client) DeleteVolume(ctx context.Context, pool, name string) error {
	return c.Do(ctx, "DELETE", volumePath(pool, name), nil, nil, nil)
}

// ResizeVolume grows a volume.
func (c *Client) ResizeVolume(ctx context.Context, pool, name string, size int64) (engineapi.Volume, error) {
	var out engineapi.Volume
	err := c.Do(ctx, "POST", volumePath(pool, name)+"/resize", nil, engineapi.VolumeResize{SizeBytes: size}, &out)
	return out, err
}

// CloneVolume copies a volume whole into a new one.
func (c *Client) CloneVolume(ctx context.Context, pool, name string, req engineapi.VolumeClone) (engineapi.Volume, error) {
	var out engineapi.Volume
	err := c.Do(ctx, "POST", volumePath(pool, name)+"/clone", nil, req, &out)
	return out, err
}

// UploadProgress says where an upload stands.
func (c *Client) UploadProgress(ctx context.Context, pool, name string) (engineapi.UploadProgress, error) {
	var out engineapi.UploadProgress
	err := c.Do(ctx, "GET", volumePath(pool, name)+"/upload", nil, nil, &out)
	return out, err
}

// CancelUpload drops an upload and its data.
func (c *Client) CancelUpload(ctx context.Context, pool, name string) error {
	return c.Do(ctx, "DELETE", volumePath(pool, name)+"/upload", nil, nil, nil)
}

// UploadOptions tune UploadVolume.
type UploadOptions struct {
	// VirtualSize, when set, is the virtual size the image must have.
	VirtualSize int64
	// SHA256 is the data's checksum; computed from the data when empty.
	SHA256 string
	// Retries is how many times an interrupted transfer is resumed from
	// where the upload stands (default 5; -1: never).
	Retries int
	// Progress is told how many bytes are there, after each chunk and
	// every second.
	Progress func(offset, size int64)
	// ChunkBytes, when set, sends the data in requests of this size (a
	// failure then costs at most one chunk); 0 sends the rest at once.
	ChunkBytes int64
}

// UploadVolume uploads an image file as a new volume: it declares the
// data (size, SHA-256), sends it from where the upload stands, and on an
// interruption asks again where that is and resumes (an upload of the same
// name, size and checksum begun earlier is resumed too). The engine checks
// the data when it is complete; a refusal comes back with its code and
// nothing is kept.
func (c *Client) UploadVolume(ctx context.Context, pool, name, format string, data io.ReaderAt, size int64, o UploadOptions) (engineapi.Volume, error) {
	if o.SHA256 == "" {
		h := sha256.New()
		if _, err := io.Copy(h, io.NewSectionReader(data, 0, size)); err != nil {
			return engineapi.Volume{}, fmt.Errorf("reading the image: %w", err)
		}
		o.SHA256 = hex.EncodeToString(h.Sum(nil))
	}
	if o.Retries == 0 {
		o.Retries = 5
	}
	v, err := c.CreateVolume(ctx, engineapi.VolumeRequest{Pool: pool, Name: name, Format: format,
		Upload: &engineapi.UploadRequest{SizeBytes: size, SHA256: o.SHA256, VirtualSize: o.VirtualSize}})
	if err != nil {
		return v, err
	}
	off := int64(0)
	if v.Upload != nil {
		off = v.Upload.Offset
	}
	failures := 0
	for {
		end := size
		if o.ChunkBytes > 0 && off+o.ChunkBytes < size {
			end = off + o.ChunkBytes
		}
		ans, err := c.putChunk(ctx, pool, name, io.NewSectionReader(data, off, end-off), off, end-off, size, o.Progress)
		if err == nil {
			if ans.Volume != nil {
				return *ans.Volume, nil
			}
			off = ans.Upload.Offset
			failures = 0
			continue
		}
		var ae *api.Error
		if errors.As(err, &ae) && ae.Status != http.StatusConflict {
			return engineapi.Volume{}, err // refused
		}
		if ctx.Err() != nil {
			return engineapi.Volume{}, err
		}
		failures++
		if o.Retries < 0 || failures > o.Retries {
			return engineapi.Volume{}, fmt.Errorf("upload of %s interrupted %d times, last: %w (run the same command again to resume)", name, failures, err)
		}
		select {
		case <-ctx.Done():
			return engineapi.Volume{}, ctx.Err()
		case <-time.After(time.Duration(failures) * 500 * time.Millisecond):
		}
		p, perr := c.UploadProgress(ctx, pool, name)
		if perr != nil {
			continue
		}
		if p.Done {
			return c.Volume(ctx, pool, name)
		}
		off = p.Offset
	}
}

// putChunk sends length bytes at off.
func (c *Client) putChunk(ctx context.Context, pool, name string, r io.Reader, off, length, size int64, progress func(int64, int64)) (engineapi.UploadAnswer, error) {
	var ans engineapi.UploadAnswer
	var sent int64
	if progress != nil {
		r = &countingReader{r: r, n: &sent}
		done := make(chan struct{})
		defer close(done)
		go func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-done:
					return
				case <-t.C:
					progress(off+atomicLoad(&sent), size)
				}
			}
		}()
	}
	req, err := http.NewRequestWithContext(ctx, "PUT", c.base+"/api/v1"+volumePath(pool, name)+"/data", r)
	if err != nil {
		return ans, err
	}
	req.ContentLength = length
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set(engineapi.UploadOffsetHeader, strconv.FormatInt(off, 10))
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	// Data takes longer than the client's per-call timeout: the caller's
	// context bounds it.
	resp, err := (&http.Client{Transport: c.upload}).Do(req)
	if err != nil {
		return ans, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return ans, err
	}
	if resp.StatusCode >= 300 {
		return ans, api.FromAnswer(resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, &ans); err != nil {
		return ans, err
	}
	if progress != nil {
		progress(ans.Upload.Offset, size)
	}
	return ans, nil
}

// Images lists the image library (of an architecture, when given).
func (c *Client) Images(ctx context.Context, arch string) ([]engineapi.Image, error) {
	var q url.Values
	if arch != "" {
		q = url.Values{"arch": {arch}}
	}
	var out []engineapi.Image
	err := c.Do(ctx, "GET", "/images", q, nil, &out)
	return out, err
}

// Image shows an image.
func (c *Client) Image(ctx context.Context, ref string) (engineapi.Image, error) {
	var out engineapi.Image
	err := c.Do(ctx, "GET", "/images/"+esc(ref), nil, nil, &out)
	return out, err
}

// CreateImage adds a volume to the image library.
func (c *Client) CreateImage(ctx context.Context, req engineapi.ImageRequest) (engineapi.Image, error) {
	var out engineapi.Image
	err := c.Do(ctx, "POST", "/images", nil, req, &out)
	return out, err
}

// DeleteImage removes an image and its volume.
func (c *Client) DeleteImage(ctx context.Context, ref string) error {
	return c.Do(ctx, "DELETE", "/images/"+esc(ref), nil, nil, nil)
}

// Templates lists the templates.
func (c *Client) Templates(ctx context.Context) ([]engineapi.Template, error) {
	var out []engineapi.Template
	err := c.Do(ctx, "GET", "/templates", nil, nil, &out)
	return out, err
}

// Template shows a template.
func (c *Client) Template(ctx context.Context, ref string) (engineapi.Template, error) {
	var out engineapi.Template
	err := c.Do(ctx, "GET", "/templates/"+esc(ref), nil, nil, &out)
	return out, err
}

// CreateTemplate makes a template of a VM that is Down.
func (c *Client) CreateTemplate(ctx context.Context, req engineapi.TemplateRequest) (engineapi.Template, error) {
	var out engineapi.Template
	err := c.Do(ctx, "POST", "/templates", nil, req, &out)
	return out, err
}

// DeleteTemplate removes a template and its volumes.
func (c *Client) DeleteTemplate(ctx context.Context, ref string) error {
	return c.Do(ctx, "DELETE", "/templates/"+esc(ref), nil, nil, nil)
}

// Snapshots lists a VM's snapshots.
func (c *Client) Snapshots(ctx context.Context, vm string) ([]engineapi.Snapshot, error) {
	var out []engineapi.Snapshot
	err := c.Do(ctx, "GET", "/vms/"+esc(vm)+"/snapshots", nil, nil, &out)
	return out, err
}

// CreateSnapshot takes a snapshot of a VM.
func (c *Client) CreateSnapshot(ctx context.Context, vm string, req engineapi.SnapshotRequest) (engineapi.Snapshot, error) {
	var out engineapi.Snapshot
	err := c.Do(ctx, "POST", "/vms/"+esc(vm)+"/snapshots", nil, req, &out)
	return out, err
}

// RevertSnapshot reverts a VM to a snapshot.
func (c *Client) RevertSnapshot(ctx context.Context, vm, name string) (engineapi.Snapshot, error) {
	var out engineapi.Snapshot
	err := c.Do(ctx, "POST", "/vms/"+esc(vm)+"/snapshots/"+esc(name)+"/revert", nil, struct{}{}, &out)
	return out, err
}

// DeleteSnapshot deletes a VM's snapshot.
func (c *Client) DeleteSnapshot(ctx context.Context, vm, name string) error {
	return c.Do(ctx, "DELETE", "/vms/"+esc(vm)+"/snapshots/"+esc(name), nil, nil, nil)
}

// countingReader counts what is read through it.
type countingReader struct {
	r io.Reader
	n *int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	atomic.AddInt64(c.n, int64(n))
	return n, err
}

func atomicLoad(p *int64) int64 { return atomic.LoadInt64(p) }
