package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/renameio/v2"

	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/libvirtconn"
)

// powerdown is a shutdown with a time-out in progress.
type powerdown struct{ cancel context.CancelFunc }

// powerdownRecord is a shutdown with a time-out as the agent keeps it on
// disk, so that a restarted agent still powers the VM off when its time
// is up.
type powerdownRecord struct {
	// Deadline is when the VM is powered off if it is not down.
	Deadline time.Time `json:"deadline"`
	// TimeoutSeconds is the time-out the shutdown was given.
	TimeoutSeconds int `json:"timeoutSeconds"`
	// Force says to power the VM off at the deadline.
	Force bool `json:"force"`
}

// powerdownBook is the agent's file of the shutdowns with a time-out in
// progress (VM id → record), written whole through a rename at each change.
type powerdownBook struct {
	path string
	mu   sync.Mutex
	recs map[string]powerdownRecord
	// owners are the watches that wrote the records, so that an ended
	// watch removes its own record, not a newer one's.
	owners map[string]*powerdown
}

// powerdownFile is the book's file in the agent's data directory.
const powerdownFile = "powerdowns.json"

// openPowerdownBook reads the book in dataDir; a missing file is an empty
// book, an unreadable one an error naming the file.
func openPowerdownBook(dataDir string) (*powerdownBook, error) {
	b := &powerdownBook{path: filepath.Join(dataDir, powerdownFile), recs: map[string]powerdownRecord{}, owners: map[string]*powerdown{}}
	data, err := os.ReadFile(b.path)
	if errors.Is(err, os.ErrNotExist) {
		return b, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, &b.recs); err != nil {
		return nil, fmt.Errorf("%s: %w", b.path, err)
	}
	if b.recs == nil { // the file said null
		b.recs = map[string]powerdownRecord{}
	}
	return b, nil
}

// put records VM id's shutdown, watched by pd.
func (b *powerdownBook) put(id string, pd *powerdown, r powerdownRecord) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.recs[id], b.owners[id] = r, pd
	return b.saveLocked()
}

// done removes VM id's record when pd wrote it.
func (b *powerdownBook) done(id string, pd *powerdown) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.owners[id] != pd {
		return nil
	}
	delete(b.recs, id)
	delete(b.owners, id)
	return b.saveLocked()
}

// pending are the records not watched by this agent yet (those read from
// the file at start), which it takes over.
func (b *powerdownBook) pending() map[string]powerdownRecord {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]powerdownRecord{}
	for id, r := range b.recs {
		if b.owners[id] == nil {
			out[id] = r
		}
	}
	return out
}

// drop removes the records of VMs this agent no longer has.
func (b *powerdownBook) drop(ids []string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, id := range ids {
		delete(b.recs, id)
		delete(b.owners, id)
	}
	return b.saveLocked()
}

func (b *powerdownBook) saveLocked() error {
	data, err := json.Marshal(b.recs)
	if err != nil {
		return err
	}
	return renameio.WriteFile(b.path, data, 0o600)
}

// watchPowerdown waits, in the background, until VM e is down; when it is
// not within timeout and force is set, it powers the VM off and publishes
// EventShutdownTimeout (as oVirt's shutdown with a time-out does). A newer
// shutdown, a start or a destroy of the VM ends the wait. The wait is in
// the agent's book: an agent that restarts meanwhile takes it over
// (resumePowerdowns).
func (a *Agent) watchPowerdown(e *vmEntry, timeout time.Duration, force bool) {
	a.watchPowerdownUntil(e, powerdownRecord{Deadline: time.Now().Add(timeout), TimeoutSeconds: int(timeout / time.Second), Force: force})
}

// watchPowerdownUntil is watchPowerdown to a recorded deadline.
func (a *Agent) watchPowerdownUntil(e *vmEntry, rec powerdownRecord) {
	timeout := time.Duration(rec.TimeoutSeconds) * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	pd := &powerdown{cancel: cancel}
	if old, ok := a.powerdowns.Swap(e.ID, pd); ok {
		old.(*powerdown).cancel()
	}
	if a.powerdownBook != nil {
		if err := a.powerdownBook.put(e.ID, pd, rec); err != nil {
			a.log.Warn("cannot record a shutdown's time-out (it is lost if the agent restarts)", "vm", e.ID, "err", err)
		}
	}
	go func() {
		defer func() {
			cancel()
			a.powerdowns.CompareAndDelete(e.ID, pd)
			if a.powerdownBook != nil {
				if err := a.powerdownBook.done(e.ID, pd); err != nil {
					a.log.Warn("cannot update the shutdowns' time-outs", "err", err)
				}
			}
		}()
		down := func() bool {
			c, err := a.conn.get()
			if err != nil {
				return false
			}
			sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
			defer scancel()
			st, err := c.DomainState(sctx, e.Domain)
			return errors.Is(err, libvirtconn.ErrNoDomain) || (err == nil && (st == libvirtconn.StateShutoff || st == libvirtconn.StateCrashed))
		}
		for time.Now().Before(rec.Deadline) {
			select {
			case <-ctx.Done():
				return
			case <-time.After(min(time.Second, time.Until(rec.Deadline))):
			}
			if down() {
				return
			}
		}
		if !rec.Force || ctx.Err() != nil {
			return
		}
		unlock := a.lockForDestroy(e)
		defer unlock()
		if ctx.Err() != nil || down() {
			return
		}
		c, err := a.conn.get()
		if err == nil {
			err = a.destroy(ctx, c, e)
		}
		if err != nil {
			a.log.Warn("cannot power off a VM after its shutdown time-out", "vm", e.ID, "name", e.Name, "err", err)
			return
		}
		a.log.Info("VM powered off after its shutdown time-out", "vm", e.ID, "name", e.Name, "timeout", timeout)
		a.hub.publish(agentapi.Event{Time: time.Now().UTC(), Host: a.cfg.HostID, VM: e.ID, Name: e.Name, Event: agentapi.EventShutdownTimeout,
			Detail: fmt.Sprintf("the guest did not power off within %s of the shutdown request; the VM was powered off", timeout),
			State:  agentapi.StateDefined})
	}()
}

// resumePowerdowns takes over the shutdowns with a time-out that an
// earlier run of the agent was waiting for, once the index holds the VMs
// (after the first recovery): each waits for what is left of its time (a
// deadline that passed meanwhile powers the VM off at once), and the
// records of VMs that are gone are dropped.
func (a *Agent) resumePowerdowns() {
	if a.powerdownBook == nil {
		return
	}
	var gone []string
	for id, rec := range a.powerdownBook.pending() {
		e, ok := a.index.get(id)
		if !ok {
			gone = append(gone, id)
			continue
		}
		a.log.Info("taking over a shutdown's time-out", "vm", id, "name", e.Name, "left", time.Until(rec.Deadline).Round(time.Second))
		a.watchPowerdownUntil(e, rec)
	}
	if len(gone) > 0 {
		if err := a.powerdownBook.drop(gone); err != nil {
			a.log.Warn("cannot update the shutdowns' time-outs", "err", err)
		}
	}
}
