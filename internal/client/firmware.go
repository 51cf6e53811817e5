package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"polyvirt/internal/api"
	"polyvirt/internal/api/engineapi"
)

// HostFirmware returns a host's system firmware: the agent's inventory and
// operation, and the engine's records.
func (c *Client) HostFirmware(ctx context.Context, host string) (engineapi.HostFirmware, error) {
	var f engineapi.HostFirmware
	err := c.Do(ctx, "GET", "/hosts/"+esc(host)+"/firmware", nil, nil, &f)
	return f, err
}

// UploadFirmware sends a firmware image (the vendor's RPM or a .img) to a
// host's agent through the engine; name is its file name.
func (c *Client) UploadFirmware(ctx context.Context, host, name string, image io.Reader, size int64) (engineapi.FirmwareStepResult, error) {
	var res engineapi.FirmwareStepResult
	u := c.base + "/api/v1/hosts/" + esc(host) + "/firmware/image?" + url.Values{"name": {name}}.Encode()
	req, err := http.NewRequestWithContext(ctx, "POST", u, image)
	if err != nil {
		return res, err
	}
	if size >= 0 {
		req.ContentLength = size
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	// An image takes longer than the client's per-call timeout: the
	// caller's context bounds it.
	resp, err := (&http.Client{Transport: c.http.Transport}).Do(req)
	if err != nil {
		return res, fmt.Errorf("uploading %s: %w", name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return res, err
	}
	if resp.StatusCode >= 300 {
		return res, api.FromAnswer(resp.StatusCode, b)
	}
	return res, json.Unmarshal(b, &res)
}

// FirmwareStep asks for a step of the update: validate, flash, commit,
// reject, cancel or clear. Done is false when the step goes on (poll
// HostFirmware).
func (c *Client) FirmwareStep(ctx context.Context, host, step, reason string) (engineapi.FirmwareStepResult, error) {
	var res engineapi.FirmwareStepResult
	err := c.Do(ctx, "POST", "/hosts/"+esc(host)+"/firmware/"+esc(step), nil, engineapi.FirmwareStepRequest{Reason: reason}, &res)
	return res, err
}

// RolloutOptions are a rollout's settings (engineapi.RolloutRequest).
type RolloutOptions = engineapi.RolloutRequest

// StartRollout starts a rolling firmware update of a cluster with an image
// (name is its file name): the engine validates it on every host first.
func (c *Client) StartRollout(ctx context.Context, cluster string, o RolloutOptions, image io.Reader, size int64) (engineapi.Rollout, error) {
	var res engineapi.Rollout
	q := url.Values{"name": {o.ImageName}}
	if len(o.Hosts) > 0 {
		q.Set("hosts", strings.Join(o.Hosts, ","))
	}
	if o.MaxUnavailable != 0 {
		q.Set("maxUnavailable", strconv.Itoa(o.MaxUnavailable))
	}
	for k, v := range map[string]string{"soak": o.Soak, "commit": o.Commit, "reason": o.Reason} {
		if v != "" {
			q.Set(k, v)
		}
	}
	u := c.base + "/api/v1/clusters/" + esc(cluster) + "/firmware/rollout?" + q.Encode()
	req, err := http.NewRequestWithContext(ctx, "POST", u, image)
	if err != nil {
		return res, err
	}
	if size >= 0 {
		req.ContentLength = size
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	// The validation on every host takes longer than the client's
	// per-call timeout: the caller's context bounds it.
	resp, err := (&http.Client{Transport: c.http.Transport}).Do(req)
	if err != nil {
		return res, fmt.Errorf("starting the rollout with %s: %w", o.ImageName, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return res, err
	}
	if resp.StatusCode >= 300 {
		return res, api.FromAnswer(resp.StatusCode, b)
	}
	return res, json.Unmarshal(b, &res)
}

// Rollout is a cluster's rollout under way, else its last one.
func (c *Client) Rollout(ctx context.Context, cluster string) (engineapi.Rollout, error) {
	var r engineapi.Rollout
	err := c.Do(ctx, "GET", "/clusters/"+esc(cluster)+"/firmware/rollout", nil, nil, &r)
	return r, err
}

// RolloutAction pauses, resumes or aborts a cluster's rollout.
func (c *Client) RolloutAction(ctx context.Context, cluster, action, reason string) (engineapi.Rollout, error) {
	var r engineapi.Rollout
	err := c.Do(ctx, "POST", "/clusters/"+esc(cluster)+"/firmware/rollout/"+esc(action), nil, engineapi.RolloutAction{Reason: reason}, &r)
	return r, err
}
