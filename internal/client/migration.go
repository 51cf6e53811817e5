package client

import (
	"context"

	"polyvirt/internal/api/engineapi"
)

// Migrate starts a VM's live migration (POST /vms/{vm}/migrate); it
// answers as the migration starts: Migration follows it.
func (c *Client) Migrate(ctx context.Context, ref string, req engineapi.MigrationRequest) (engineapi.Migration, error) {
	var out engineapi.Migration
	err := c.Do(ctx, "POST", "/vms/"+esc(ref)+"/migrate", nil, req, &out)
	return out, err
}

// Migration reads a VM's migration in flight, or its last one.
func (c *Client) Migration(ctx context.Context, ref string) (engineapi.Migration, error) {
	var out engineapi.Migration
	err := c.Do(ctx, "GET", "/vms/"+esc(ref)+"/migration", nil, nil, &out)
	return out, err
}

// CancelMigration cancels a VM's migration in flight and returns its
// outcome.
func (c *Client) CancelMigration(ctx context.Context, ref string) (engineapi.Migration, error) {
	var out engineapi.Migration
	err := c.Do(ctx, "DELETE", "/vms/"+esc(ref)+"/migration", nil, nil, &out)
	return out, err
}

// MaintenanceWith switches a host to Maintenance, its VMs migrating away
// first (StopVMs: those that cannot leave are shut down).
func (c *Client) MaintenanceWith(ctx context.Context, ref string, req engineapi.MaintenanceRequest) (engineapi.Host, error) {
	var out engineapi.Host
	err := c.Do(ctx, "POST", "/hosts/"+esc(ref)+"/maintenance", nil, req, &out)
	return out, err
}

// Evacuation reads a host's evacuation: each VM's outcome.
func (c *Client) Evacuation(ctx context.Context, ref string) (engineapi.Evacuation, error) {
	var out engineapi.Evacuation
	err := c.Do(ctx, "GET", "/hosts/"+esc(ref)+"/evacuation", nil, nil, &out)
	return out, err
}
