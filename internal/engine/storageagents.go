package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/engine/service"
	"polyvirt/internal/store"
)

// storageTimeout bounds a storage call to an agent (a clone of a large
// volume, an upload's last check).
const storageTimeout = time.Hour

// storageAgents calls the agents' storage API and running VMs' snapshots
// (service.StorageAgents): the VM client's pinned mutual TLS on HTTP/1.1
// connections of their own (the consoles' transport, cloned: an upload
// that streams gigabytes does not share the host's HTTP/2 connection with
// the monitoring), with longer time-outs and larger buffers; an upload's
// data is copied in blocks of 1 MiB, read from the client while the last
// is sent to the agent, its TLS records sent together (bulkconn).
type storageAgents struct {
	ops  *agentOps
	http *http.Client
}

func newStorageAgents(ops *agentOps) *storageAgents {
	tr := ops.wsTr.Clone()
	tr.DialTLSContext = ops.dialBulkTLS
	tr.ResponseHeaderTimeout = storageTimeout
	tr.WriteBufferSize = 256 << 10
	tr.ReadBufferSize = 256 << 10
	return &storageAgents{ops: ops, http: &http.Client{Transport: tr}}
}

var _ service.StorageAgents = (*storageAgents)(nil)

// do sends one request to a host's agent and reads its answer into out.
func (s *storageAgents) do(ctx context.Context, h store.Host, method, p string, hdr http.Header, body io.Reader, length int64, ctype string, out any) error {
	addr, err := s.ops.target(h)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, storageTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "https://"+addr+p, body)
	if err != nil {
		return err
	}
	if length >= 0 {
		req.ContentLength = length
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if u := service.CallerFrom(ctx); u != nil {
		req.Header.Set("X-Polyvirt-User", u.Name)
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return &service.AgentError{Host: h.Name, Msg: shortError(err)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAgentBody+1))
	if err != nil {
		return &service.AgentError{Host: h.Name, Msg: fmt.Sprintf("reading the answer of %s %s: %v", method, p, err)}
	}
	if resp.StatusCode >= 300 {
		ae := api.FromAnswer(resp.StatusCode, b)
		return &service.AgentError{Host: h.Name, Status: resp.StatusCode, Code: ae.Code, Msg: ae.Message, Errors: ae.Details}
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return &service.AgentError{Host: h.Name, Status: http.StatusBadGateway, Code: api.CodeAgentError,
				Msg: fmt.Sprintf("the answer of %s %s is not what was expected: %v", method, p, err)}
		}
	}
	return nil
}

func (s *storageAgents) postJSON(ctx context.Context, h store.Host, p string, in, out any) error {
	var body io.Reader
	length := int64(0)
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body, length = bytes.NewReader(b), int64(len(b))
	}
	return s.do(ctx, h, http.MethodPost, p, nil, body, length, "application/json", out)
}

func (s *storageAgents) Storage(ctx context.Context, h store.Host, op string, in, out any) error {
	return s.postJSON(ctx, h, "/v1/storage/"+op, in, out)
}

func (s *storageAgents) UploadData(ctx context.Context, h store.Host, p agentapi.Pool, name string, offset, length int64, data io.Reader) (agentapi.UploadStatus, error) {
	q := url.Values{"poolId": {p.ID}, "pool": {p.Name}, "poolPath": {p.Path}, "poolKind": {p.Kind}, "name": {name}}
	hdr := http.Header{agentapi.UploadOffsetHeader: {strconv.FormatInt(offset, 10)}}
	var st agentapi.UploadStatus
	err := s.do(ctx, h, http.MethodPut, "/v1/storage/uploads/data?"+q.Encode(), hdr, data, length, "application/octet-stream", &st)
	return st, err
}

func (s *storageAgents) CreateSnapshot(ctx context.Context, h store.Host, vmID string, req agentapi.SnapshotRequest) error {
	return s.postJSON(ctx, h, "/v1/vms/"+url.PathEscape(vmID)+"/snapshots", req, nil)
}

func (s *storageAgents) RevertSnapshot(ctx context.Context, h store.Host, vmID, name string) error {
	return s.postJSON(ctx, h, "/v1/vms/"+url.PathEscape(vmID)+"/snapshots/"+url.PathEscape(name)+"/revert", nil, nil)
}

func (s *storageAgents) DeleteSnapshot(ctx context.Context, h store.Host, vmID, name string) error {
	return s.do(ctx, h, http.MethodDelete, "/v1/vms/"+url.PathEscape(vmID)+"/snapshots/"+url.PathEscape(name), nil, nil, 0, "", nil)
}
