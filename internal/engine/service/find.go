package service

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"polyvirt/internal/api"
	"polyvirt/internal/store"
)

// findCluster finds a cluster by name or ID.
func (e *engine) findCluster(ctx context.Context, ref string) (store.Cluster, error) {
	if strings.TrimSpace(ref) == "" {
		return store.Cluster{}, invalidField("cluster", "no cluster named")
	}
	c, err := e.st.GetClusterByName(ctx, ref)
	if errors.Is(err, store.ErrNotFound) {
		if c2, err2 := e.st.GetCluster(ctx, ref); err2 == nil {
			return c2, nil
		}
		return c, &api.Error{Code: api.CodeNotFound, Field: "cluster",
			Message: fmt.Sprintf("cluster %q does not exist (polyvirt cluster list)", ref)}
	}
	return c, err
}

// findHost finds a host by name or ID.
func (e *engine) findHost(ctx context.Context, ref string) (store.Host, error) {
	if strings.TrimSpace(ref) == "" {
		return store.Host{}, invalidField("host", "no host named")
	}
	h, err := e.st.GetHostByName(ctx, ref)
	if errors.Is(err, store.ErrNotFound) {
		if h2, err2 := e.st.GetHost(ctx, ref); err2 == nil {
			return h2, nil
		}
		return h, &api.Error{Code: api.CodeNotFound, Field: "host",
			Message: fmt.Sprintf("host %q does not exist (polyvirt host list)", ref)}
	}
	return h, err
}

// findHostWithoutReport is findHost without the host's capabilities
// report (Capabilities nil).
func (e *engine) findHostWithoutReport(ctx context.Context, ref string) (store.Host, error) {
	if strings.TrimSpace(ref) == "" {
		return store.Host{}, invalidField("host", "no host named")
	}
	hs, err := e.st.ListHosts(ctx, store.HostFilter{Name: ref})
	if err != nil {
		return store.Host{}, err
	}
	if len(hs) == 1 {
		return hs[0], nil
	}
	h, err := e.findHost(ctx, ref)
	h.Capabilities = nil
	return h, err
}
