package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/hostexec"
	"polyvirt/internal/libvirtconn"
	"polyvirt/internal/pki"
	"polyvirt/internal/vmspec"
)

// The receiving side of a live migration. The engine announces a VM
// before its source sends it: this agent checks it as it checks a VM it
// creates (its architecture, its definition, its host paths against this
// host's policy), says which of its disks it sees (a probe file the source
// made beside the disk is here: the same storage) and creates the others
// empty for libvirt to copy into, and answers where to send it. A domain
// that arrives owned by this host without an announcement is destroyed on
// sight, which fails its migration at the source. An announced one is not
// listed while it arrives; once libvirt finished it (it runs here), it is
// this host's VM like any other. Announcements are kept in
// DATA_DIR/incoming so that a restarted agent still knows them.

// incoming is one VM announced to this host.
type incoming struct {
	Req  agentapi.IncomingRequest `json:"request"`
	Info agentapi.Incoming        `json:"info"`
	// Created are the disk files this agent made for the copy: they go
	// when the VM does not arrive.
	Created []string `json:"created,omitempty"`
	// Arrived is when it arrived.
	Arrived time.Time `json:"arrived,omitempty"`

	watching bool
}

// defaultAnnouncementTTL bounds an announcement the engine gave no TTL.
const defaultAnnouncementTTL = 5 * time.Minute

func (a *Agent) incomingDir() string { return filepath.Join(a.cfg.DataDir, "incoming") }

func (a *Agent) incomingFile(vm string) string { return filepath.Join(a.incomingDir(), vm+".json") }

// saveIncoming writes an announcement's record (a.mig.mu held).
func (a *Agent) saveIncoming(in *incoming) {
	b, err := json.MarshalIndent(in, "", "  ")
	if err == nil {
		err = pki.WriteFile(a.incomingFile(in.Req.VM), append(b, '\n'), 0o600)
	}
	if err != nil {
		a.log.Warn("cannot keep an announcement", "vm", in.Req.VM, "err", err)
	}
}

// loadIncoming reads the announcements a previous run of the agent kept.
func (a *Agent) loadIncoming() {
	files, _ := filepath.Glob(filepath.Join(a.incomingDir(), "*.json"))
	a.mig.mu.Lock()
	defer a.mig.mu.Unlock()
	if a.mig.in == nil {
		a.mig.in = map[string]*incoming{}
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var in incoming
		if err := json.Unmarshal(b, &in); err != nil || in.Req.VM == "" || filepath.Base(f) != in.Req.VM+".json" {
			a.log.Warn("an unreadable announcement is dropped", "file", f, "err", err)
			_ = os.Remove(f)
			continue
		}
		a.mig.in[in.Req.VM] = &in
	}
}

// dropIncoming forgets an announcement (a.mig.mu held), and with cleanup
// removes the disk files made for it.
func (a *Agent) dropIncoming(in *incoming, cleanup bool) {
	if cleanup {
		for _, f := range in.Created {
			if err := os.Remove(filepath.Join(a.root, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
				a.log.Warn("a disk made for a migration that did not come stays", "file", f, "err", err)
			}
		}
	}
	if a.mig.in[in.Req.VM] == in {
		delete(a.mig.in, in.Req.VM)
	}
	_ = os.Remove(a.incomingFile(in.Req.VM))
}

// announced is the live announcement of a VM, or nil.
func (a *Agent) announced(vm string) *incoming {
	a.mig.mu.Lock()
	defer a.mig.mu.Unlock()
	in := a.mig.in[vm]
	if in == nil || in.Info.State == agentapi.IncomingGone {
		return nil
	}
	return in
}

// Announce takes the engine's announcement of a VM about to arrive.
func (a *Agent) Announce(ctx context.Context, req agentapi.IncomingRequest) (*agentapi.Incoming, error) {
	id, err := canonicalID(req.VM)
	if err != nil {
		return nil, &api.Error{Status: http.StatusBadRequest, Code: api.CodeUUIDInvalid, Field: "vm", Message: err.Error()}
	}
	req.VM = id
	if req.Migration == "" || req.SourceHost == "" || req.SourceHost == a.cfg.HostID {
		return nil, &api.Error{Status: http.StatusBadRequest, Code: api.CodeInvalidArgument, Field: "sourceHost",
			Message: fmt.Sprintf("an announcement names its migration and another source host than %s", a.cfg.HostID)}
	}
	if a.cfg.Migration.Address == "" || !a.libvirtFiles().Exists() {
		return nil, api.NewError(http.StatusConflict, api.CodeMigrationNoTLS,
			"host %s takes no VMs: its libvirtd has no TLS endpoint for other hosts (migration.address in its agent's configuration, set by polyvirt agent libvirt-tls)", a.cfg.HostID)
	}
	// The VM as this host would create it.
	def, err := vmspec.Decode(req.Definition)
	if err != nil {
		return nil, err
	}
	def.UUID = id
	report, err := a.Capabilities(ctx, false)
	if err != nil {
		return nil, err
	}
	if err := a.checkArch(def, report); err != nil {
		return nil, err
	}
	render := def.Clone()
	render.Name, render.UUID = a.domainName(def.Name), a.domainUUID(id)
	valid, err := vmspec.Validate(render, vmspec.Options{Host: report, HostConsole: true})
	if err != nil {
		return nil, err
	}
	if err := a.checkDefinitionPaths(id, valid.VM()); err != nil {
		return nil, err
	}
	unlock := a.locks.lock(id)
	defer unlock()
	if e, ok := a.index.get(id); ok {
		return nil, api.NewError(http.StatusConflict, api.CodeMigrationDestinationExists, "host %s has VM %s already (%s)", a.cfg.HostID, e.Name, e.Domain.Name)
	}
	c, err := a.conn.get()
	if err != nil {
		return nil, err
	}
	name := a.domainName(def.Name)
	if d, err := c.LookupDomain(ctx, name); err == nil {
		return nil, api.NewError(http.StatusConflict, api.CodeMigrationDestinationExists, "host %s has a domain named %s already (uuid %s)", a.cfg.HostID, name, d.UUID)
	}
	a.mig.mu.Lock()
	old := a.mig.in[id]
	a.mig.mu.Unlock()
	if old != nil && old.Info.State == agentapi.IncomingArriving {
		// Arriving still, or an arrival that ended while this agent did
		// not watch (it started again): the domain says.
		if d, err := c.LookupDomain(ctx, old.Info.DomainName); err == nil || !errors.Is(err, libvirtconn.ErrNoDomain) {
			if arriving, aerr := a.arriving(ctx, c, d); err != nil || aerr != nil || arriving {
				return nil, api.NewError(http.StatusConflict, api.CodeMigrationInProgress, "VM %s is arriving on host %s already", def.Name, a.cfg.HostID)
			}
		}
		a.log.Info("an arrival that ended without this agent is forgotten", "vm", id, "migration", old.Info.Migration)
	}
	a.mig.mu.Lock()
	if old != nil && a.mig.in[id] == old {
		a.dropIncoming(old, old.Info.State != agentapi.IncomingArrived)
	}
	a.mig.mu.Unlock()

	disks, created, err := a.prepareDisks(ctx, def.Name, req.Disks)
	if err != nil {
		return nil, err
	}
	ttl := time.Duration(req.TTLSeconds) * time.Second
	if ttl <= 0 {
		ttl = defaultAnnouncementTTL
	}
	in := &incoming{Req: req, Created: created, Info: agentapi.Incoming{
		Migration: req.Migration, VM: id, Name: def.Name, SourceHost: req.SourceHost, Host: a.cfg.HostID,
		LibvirtURI:       libvirtconn.TLSURI(a.cfg.Migration.Address, ""),
		MigrationAddress: "tcp://" + bracketIPv6(a.cfg.Migration.StreamAddress),
		DomainName:       name, ConsoleLog: a.consoleLog(id), Disks: disks,
		State: agentapi.IncomingAnnounced, Expires: time.Now().Add(ttl).UTC(),
	}}
	in.Req.Definition = nil
	// A fresh console log for the VM's life here.
	_ = os.Remove(a.consoleLog(id))
	a.mig.mu.Lock()
	if a.mig.in == nil {
		a.mig.in = map[string]*incoming{}
	}
	a.mig.in[id] = in
	a.saveIncoming(in)
	info := in.Info
	a.mig.mu.Unlock()
	// Domains judged foreign before are judged again: one may be this VM.
	a.index.forgetForeign()
	a.log.Info("VM announced", "vm", id, "name", def.Name, "from", req.SourceHost, "migration", req.Migration,
		"copy", len(created), "expires", info.Expires)
	return &info, nil
}

// prepareDisks judges each disk of an announced VM: on storage this host
// sees (its probe is here) it is shared; a writable disk that is not is
// copied, into an empty image made here now (the file must not exist); a
// read-only one (a CD-ROM) must be here already. It returns the disks with
// the verdict and the files it made.
func (a *Agent) prepareDisks(ctx context.Context, vm string, disks []agentapi.MigrationDisk) ([]agentapi.MigrationDisk, []string, error) {
	out := make([]agentapi.MigrationDisk, 0, len(disks))
	var created []string
	fail := func(err error) ([]agentapi.MigrationDisk, []string, error) {
		for _, f := range created {
			_ = os.Remove(filepath.Join(a.root, f))
		}
		return nil, nil, err
	}
	for _, d := range disks {
		if !filepath.IsAbs(d.Path) || filepath.Clean(d.Path) != d.Path {
			return fail(&api.Error{Status: http.StatusBadRequest, Code: api.CodeInvalidArgument, Field: "disks",
				Message: fmt.Sprintf("disk %s: %q is not a clean absolute path", d.Target, d.Path)})
		}
		host := filepath.Join(a.root, d.Path)
		_, statErr := os.Stat(host)
		exists := statErr == nil
		if d.Probe != "" {
			if _, err := os.Stat(filepath.Join(a.root, d.Probe)); err == nil {
				d.Shared = true
			}
		}
		switch {
		case d.Shared:
		case d.ReadOnly:
			if !exists {
				return fail(api.NewError(http.StatusConflict, api.CodeMigrationDiskExists,
					"VM %s's read-only disk %s (%s) is not on host %s, and read-only disks are not copied: put the image there (or on storage both hosts see)",
					vm, d.Target, d.Path, a.cfg.HostID))
			}
			d.Shared = true
		case exists:
			return fail(api.NewError(http.StatusConflict, api.CodeMigrationDiskExists,
				"VM %s's disk %s is copied to host %s, but %s exists there already and is not the same storage: move it away first",
				vm, d.Target, a.cfg.HostID, d.Path))
		default:
			if err := a.createImage(ctx, d); err != nil {
				return fail(api.NewError(http.StatusConflict, api.CodeMigrationFailed, "VM %s's disk %s: cannot make %s on host %s to copy into: %v",
					vm, d.Target, d.Path, a.cfg.HostID, err))
			}
			created = append(created, d.Path)
		}
		out = append(out, d)
	}
	return out, created, nil
}

// createImage makes an empty image of a disk's format and size for
// libvirt to copy into.
func (a *Agent) createImage(ctx context.Context, d agentapi.MigrationDisk) error {
	host := filepath.Join(a.root, d.Path)
	if err := os.MkdirAll(filepath.Dir(host), 0o755); err != nil {
		return err
	}
	switch d.Format {
	case "", "raw":
		f, err := os.OpenFile(host, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		if err := f.Truncate(int64(d.VirtualSize)); err != nil {
			f.Close()
			os.Remove(host)
			return err
		}
		return f.Close()
	case "qcow2":
		_, err := (&hostexec.Exec{}).Run(ctx, hostexec.Command{Name: "qemu-img",
			Args: []string{"create", "-q", "-f", "qcow2", host, strconv.FormatUint(d.VirtualSize, 10)}, Timeout: time.Minute})
		return err
	}
	return fmt.Errorf("format %q cannot be made here (raw and qcow2 can)", d.Format)
}

// Incoming reports an announced VM.
func (a *Agent) Incoming(id string) (*agentapi.Incoming, error) {
	cid, _ := canonicalID(id)
	a.mig.mu.Lock()
	defer a.mig.mu.Unlock()
	in := a.mig.in[cid]
	if in == nil {
		return nil, api.NewError(http.StatusNotFound, api.CodeMigrationNotInProgress, "no VM %s is announced to host %s", id, a.cfg.HostID)
	}
	info := in.Info
	return &info, nil
}

// Withdraw takes an announcement back (the engine gave the migration up):
// a VM still arriving is destroyed here (its migration fails at the
// source), the disk files made for it go. A VM that arrived stays.
func (a *Agent) Withdraw(ctx context.Context, id string) (*agentapi.Incoming, error) {
	cid, _ := canonicalID(id)
	unlock := a.locks.lock(cid)
	defer unlock()
	a.mig.mu.Lock()
	in := a.mig.in[cid]
	a.mig.mu.Unlock()
	if in == nil {
		return nil, api.NewError(http.StatusNotFound, api.CodeMigrationNotInProgress, "no VM %s is announced to host %s", id, a.cfg.HostID)
	}
	arrived := in.Info.State == agentapi.IncomingArrived
	if !arrived {
		if c, err := a.conn.get(); err == nil {
			if d, err := c.LookupDomain(ctx, in.Info.DomainName); err == nil {
				if arriving, _ := a.arriving(ctx, c, d); arriving {
					a.log.Warn("an incoming VM is destroyed: its announcement was withdrawn", "vm", cid)
					_ = c.DestroyDomain(ctx, d)
				} else if _, ok := a.index.get(cid); !ok {
					// It arrived meanwhile: it is this host's VM now.
					arrived = true
				}
			}
		}
	}
	a.mig.mu.Lock()
	info := in.Info
	if !arrived {
		info.State = agentapi.IncomingGone
	}
	a.dropIncoming(in, !arrived)
	a.mig.mu.Unlock()
	return &info, nil
}

// arriving tells whether a domain is the destination of a migration in
// progress. A domain this host sends is paused for the migration too (at
// its switch-over, until the destination took it): its job says it goes
// out, and it is not arriving.
func (a *Agent) arriving(ctx context.Context, c libvirtconn.AgentConn, d libvirtconn.Domain) (bool, error) {
	jctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	job, err := c.DomainJob(jctx, d, false)
	if err == nil && job.Type.Active() {
		switch job.Operation {
		case libvirtconn.JobMigrationIn:
			return true, nil
		case libvirtconn.JobMigrationOut:
			return false, nil
		}
	}
	st, reason, err := c.DomainStateReason(jctx, d)
	if err != nil {
		return false, err
	}
	return st == libvirtconn.StatePaused && reason == pausedMigration, nil
}

// bracketIPv6 writes an IPv6 address in brackets, as a URI needs it.
func bracketIPv6(host string) string {
	if strings.Contains(host, ":") && !strings.HasPrefix(host, "[") {
		return "[" + host + "]"
	}
	return host
}

// pausedMigration is libvirt's VIR_DOMAIN_PAUSED_MIGRATION.
const pausedMigration = 2

// incomingDomain handles a domain owned by this host that is not in its
// index (a lifecycle event, a recovery): an arriving domain without an
// announcement is destroyed, an announced one is followed until it
// arrived. It tells whether it handled the domain (false: a VM of this
// host to index as any other).
func (a *Agent) incomingDomain(ctx context.Context, c libvirtconn.AgentConn, e *vmEntry) bool {
	in := a.announced(e.ID)
	if in != nil && in.Info.State == agentapi.IncomingAnnounced && time.Now().After(in.Info.Expires) {
		in = nil
	}
	if in == nil {
		// The cheap question first (a recovery asks it of every VM): an
		// arriving domain is paused until libvirt finished it.
		st, _, err := c.DomainStateReason(ctx, e.Domain)
		if err != nil {
			return errors.Is(err, libvirtconn.ErrNoDomain)
		}
		if st != libvirtconn.StatePaused {
			return false
		}
	}
	arriving, err := a.arriving(ctx, c, e.Domain)
	if err != nil {
		return errors.Is(err, libvirtconn.ErrNoDomain)
	}
	if in == nil {
		if !arriving {
			return false
		}
		a.log.Warn("an incoming VM that was not announced is destroyed", "vm", e.ID, "name", e.Name, "domain", e.Domain.Name)
		if err := c.DestroyDomain(ctx, e.Domain); err != nil && !errors.Is(err, libvirtconn.ErrNoDomain) {
			a.log.Warn("cannot destroy an unannounced incoming VM", "vm", e.ID, "err", err)
		}
		a.hub.publish(agentapi.Event{Time: time.Now().UTC(), Host: a.cfg.HostID, VM: e.ID, Name: e.Name, Event: "migration-refused",
			Detail: api.CodeMigrationNotAnnounced, State: agentapi.StateUnknown})
		return true
	}
	if !arriving {
		a.arrived(ctx, c, e, in)
		return true
	}
	a.mig.mu.Lock()
	if in.Info.State != agentapi.IncomingArriving {
		in.Info.State = agentapi.IncomingArriving
		a.saveIncoming(in)
	}
	watch := !in.watching
	in.watching = true
	a.mig.mu.Unlock()
	if watch {
		go a.watchArrival(e, in)
	}
	return true
}

// arrived makes an announced VM that libvirt finished this host's VM.
func (a *Agent) arrived(ctx context.Context, c libvirtconn.AgentConn, e *vmEntry, in *incoming) {
	complete := a.completedJob(ctx, c, e, in)
	a.mig.mu.Lock()
	in.Info.State, in.Arrived = agentapi.IncomingArrived, time.Now().UTC()
	a.saveIncoming(in)
	a.mig.mu.Unlock()
	if !complete {
		// libvirt records the completed job (with the downtime) when its
		// last step ends, a moment after the domain runs here.
		go func() {
			for i := 0; i < 75 && !a.completedJob(a.mig.background(), c, e, in); i++ {
				time.Sleep(200 * time.Millisecond)
			}
		}()
	}
	a.index.put(e)
	a.log.Info("VM arrived", "vm", e.ID, "name", e.Name, "from", in.Req.SourceHost, "downtimeMs", in.Info.DowntimeMs)
	st := agentapi.StateRunning
	if s, _, err := c.DomainStateReason(ctx, e.Domain); err == nil {
		st = stateOf(s)
	}
	a.hub.publish(agentapi.Event{Time: time.Now().UTC(), Host: a.cfg.HostID, VM: e.ID, Name: e.Name,
		Event: "migrated", Detail: "from " + in.Req.SourceHost, State: st})
}

// completedJob takes libvirt's figures of a completed incoming migration
// (the downtime, the total time) into the announcement; false while
// libvirt has none yet.
func (a *Agent) completedJob(ctx context.Context, c libvirtconn.AgentConn, e *vmEntry, in *incoming) bool {
	jctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	job, err := c.DomainJob(jctx, e.Domain, true)
	cancel()
	if err != nil || job.Type != libvirtconn.JobCompleted || job.Operation != libvirtconn.JobMigrationIn {
		return errors.Is(err, libvirtconn.ErrNoDomain)
	}
	a.mig.mu.Lock()
	in.Info.DowntimeMs, in.Info.TotalMs = job.Downtime.Milliseconds(), job.Elapsed.Milliseconds()
	a.saveIncoming(in)
	a.mig.mu.Unlock()
	return true
}

// watchArrival follows an arriving domain until it arrived or went (its
// migration failed: the disk files made for it go).
func (a *Agent) watchArrival(e *vmEntry, in *incoming) {
	ctx := a.mig.background()
	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
	defer func() {
		a.mig.mu.Lock()
		in.watching = false
		a.mig.mu.Unlock()
	}()
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		c, err := a.conn.get()
		if err != nil {
			continue
		}
		arriving, err := a.arriving(ctx, c, e.Domain)
		switch {
		case errors.Is(err, libvirtconn.ErrNoDomain):
			a.log.Warn("an announced VM did not arrive: its migration failed", "vm", e.ID, "name", e.Name)
			a.mig.mu.Lock()
			in.Info.State = agentapi.IncomingGone
			a.dropIncoming(in, true)
			a.mig.mu.Unlock()
			return
		case err != nil || arriving:
			continue
		}
		if _, ok := a.index.get(e.ID); !ok {
			a.arrived(ctx, c, e, in)
		}
		return
	}
}

// expireIncoming drops the announcements whose VM did not start to
// arrive in time, and the records of arrivals older than keepFinished.
func (a *Agent) expireIncoming() {
	a.mig.mu.Lock()
	defer a.mig.mu.Unlock()
	for _, in := range a.mig.in {
		switch {
		case in.Info.State == agentapi.IncomingAnnounced && time.Now().After(in.Info.Expires):
			a.log.Info("an announcement expired", "vm", in.Req.VM, "migration", in.Req.Migration)
			a.dropIncoming(in, true)
		case in.Info.State == agentapi.IncomingArrived && time.Since(in.Arrived) > keepFinished:
			a.dropIncoming(in, false)
		}
	}
}

// runMigrations starts the migrations' background work: announcements
// kept by an earlier run, their expiry.
func (a *Agent) runMigrations(ctx context.Context) {
	a.mig.mu.Lock()
	a.mig.ctx = ctx
	a.mig.mu.Unlock()
	a.loadIncoming()
	go func() {
		t := time.NewTicker(15 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				a.removeProbes(true)
				return
			case <-t.C:
				a.expireIncoming()
			}
		}
	}()
}
