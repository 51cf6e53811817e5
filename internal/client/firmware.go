package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"

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
