package engine

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"time"

	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
)

// fakeAgents are the fake agents by address: a migration's source finds
// its destination by the address in the destination's libvirt URI.
var fakeAgents sync.Map // addr → *fakeAgent

// fakeMig is a fake agent's migration side: the VMs announced to it and
// the migrations it sends. A migration runs while the test lets it: it
// completes after a few progress readings, unless hold keeps it in flight
// or fail makes it fail.
type fakeMig struct {
	incoming map[string]*agentapi.Incoming
	out      map[string]*fakeOutgoing
	// hold keeps the migrations in flight until it is closed (nil: they
	// run through).
	hold chan struct{}
	// arrival keeps the VMs migrated here Arriving until it is closed
	// (nil: they arrive with their migration).
	arrival chan struct{}
	// fail makes the next migrations fail with this message.
	fail string
	// noTLS makes the host take no VMs.
	noTLS bool
	// plan changes the plans it answers.
	plan func(*agentapi.MigrationPlan)
	// orders are the orders received.
	orders []agentapi.MigrationOrder
}

type fakeOutgoing struct {
	st     agentapi.MigrationStatus
	cancel chan struct{}
}

func (a *fakeAgent) migrationRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/vms/{id}/migration/plan", func(w http.ResponseWriter, r *http.Request) {
		v, ok := a.get(r.PathValue("id"))
		if !ok {
			writeAPIError(w, http.StatusNotFound, api.CodeVMNotFound, "no such VM")
			return
		}
		plan := agentapi.MigrationPlan{VM: v.ID, Name: v.Name, Machine: "pseries-7.2", CPUMode: "custom", CPUModel: "POWER8",
			MemoryMiB: 256, VCPUs: 1, PageKiB: 64, Disks: []agentapi.MigrationDisk{}}
		a.mu.Lock()
		if a.mig.plan != nil {
			a.mig.plan(&plan)
		}
		a.mu.Unlock()
		json.NewEncoder(w).Encode(plan)
	})
	mux.HandleFunc("POST /v1/incoming", func(w http.ResponseWriter, r *http.Request) {
		var req agentapi.IncomingRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			writeAPIError(w, http.StatusBadRequest, api.CodeBadRequest, err.Error())
			return
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		if a.mig.noTLS {
			writeAPIError(w, http.StatusConflict, api.CodeMigrationNoTLS, "host "+a.name+" takes no VMs")
			return
		}
		if _, ok := a.vms[req.VM]; ok {
			writeAPIError(w, http.StatusConflict, api.CodeMigrationDestinationExists, "has it")
			return
		}
		if a.mig.incoming == nil {
			a.mig.incoming = map[string]*agentapi.Incoming{}
		}
		in := &agentapi.Incoming{Migration: req.Migration, VM: req.VM, Name: req.Name, SourceHost: req.SourceHost, Host: a.name,
			LibvirtURI: "qemu+tls://" + a.addr + "/system", MigrationAddress: "tcp://127.0.0.1", DomainName: "lab-" + req.Name,
			Disks: req.Disks, State: agentapi.IncomingAnnounced, Expires: time.Now().Add(5 * time.Minute)}
		for i := range in.Disks {
			in.Disks[i].Shared = strings.HasPrefix(in.Disks[i].Path, "/shared/")
		}
		a.mig.incoming[req.VM] = in
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(in)
	})
	mux.HandleFunc("GET /v1/incoming/{vm}", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		defer a.mu.Unlock()
		in := a.mig.incoming[r.PathValue("vm")]
		if in == nil {
			writeAPIError(w, http.StatusNotFound, api.CodeMigrationNotInProgress, "not announced")
			return
		}
		json.NewEncoder(w).Encode(in)
	})
	mux.HandleFunc("DELETE /v1/incoming/{vm}", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		defer a.mu.Unlock()
		in := a.mig.incoming[r.PathValue("vm")]
		if in == nil {
			writeAPIError(w, http.StatusNotFound, api.CodeMigrationNotInProgress, "not announced")
			return
		}
		delete(a.mig.incoming, r.PathValue("vm"))
		if in.State != agentapi.IncomingArrived {
			in.State = agentapi.IncomingGone
		}
		json.NewEncoder(w).Encode(in)
	})
	mux.HandleFunc("POST /v1/vms/{id}/migrate", func(w http.ResponseWriter, r *http.Request) {
		var o agentapi.MigrationOrder
		if err := json.NewDecoder(r.Body).Decode(&o); err != nil {
			writeAPIError(w, http.StatusBadRequest, api.CodeBadRequest, err.Error())
			return
		}
		id := r.PathValue("id")
		a.mu.Lock()
		defer a.mu.Unlock()
		v, ok := a.vms[id]
		if !ok {
			writeAPIError(w, http.StatusNotFound, api.CodeVMNotFound, "no such VM")
			return
		}
		addr := strings.TrimSuffix(strings.TrimPrefix(o.Destination.LibvirtURI, "qemu+tls://"), "/system")
		dst, ok := fakeAgents.Load(addr)
		if !ok {
			writeAPIError(w, http.StatusBadRequest, api.CodeInvalidArgument, "no destination at "+o.Destination.LibvirtURI)
			return
		}
		if a.mig.out == nil {
			a.mig.out = map[string]*fakeOutgoing{}
		}
		a.mig.orders = append(a.mig.orders, o)
		out := &fakeOutgoing{cancel: make(chan struct{}), st: agentapi.MigrationStatus{Migration: o.Migration, VM: id, Name: v.vm.Name,
			SourceHost: a.name, DestinationHost: o.DestinationHost, Policy: o.Policy, Phase: agentapi.PhasePreparing, Started: time.Now(),
			CopiedDisks: o.CopyDisks}}
		a.mig.out[id] = out
		go a.runMigration(out, dst.(*fakeAgent), a.mig.hold, a.mig.fail)
		w.WriteHeader(http.StatusAccepted)
		json.NewEncoder(w).Encode(out.st)
	})
	mux.HandleFunc("GET /v1/vms/{id}/migration", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		defer a.mu.Unlock()
		out := a.mig.out[r.PathValue("id")]
		if out == nil {
			writeAPIError(w, http.StatusNotFound, api.CodeMigrationNotInProgress, "no migration")
			return
		}
		json.NewEncoder(w).Encode(out.st)
	})
	mux.HandleFunc("DELETE /v1/vms/{id}/migration", func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		out := a.mig.out[r.PathValue("id")]
		a.mu.Unlock()
		if out == nil || agentapi.MigrationFinished(out.st.Phase) {
			writeAPIError(w, http.StatusConflict, api.CodeMigrationNotInProgress, "no migration in flight")
			return
		}
		close(out.cancel)
		for i := 0; i < 100; i++ {
			a.mu.Lock()
			done := agentapi.MigrationFinished(out.st.Phase)
			st := out.st
			a.mu.Unlock()
			if done {
				json.NewEncoder(w).Encode(st)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		writeAPIError(w, http.StatusGatewayTimeout, api.CodeLibvirtTimeout, "the cancel did not end it")
	})
}

// runMigration runs a fake migration: a few progress readings, then the
// VM moves to dst (or the migration fails, or is canceled).
func (a *fakeAgent) runMigration(out *fakeOutgoing, dst *fakeAgent, hold chan struct{}, failWith string) {
	id := out.st.VM
	finish := func(phase, code, msg string) {
		a.mu.Lock()
		out.st.Phase, out.st.Code, out.st.Error, out.st.Finished = phase, code, msg, time.Now()
		out.st.ElapsedMs = time.Since(out.st.Started).Milliseconds()
		a.mu.Unlock()
	}
	for pass := 1; pass <= 3; pass++ {
		time.Sleep(30 * time.Millisecond)
		a.mu.Lock()
		out.st.Phase, out.st.Pass = agentapi.PhaseCopyingMemory, pass
		out.st.MemoryTotal, out.st.MemoryProcessed, out.st.MemoryRemaining, out.st.MemoryRate = 256<<20, uint64(pass)*64<<20, 256<<20-uint64(pass)*64<<20, 100<<20
		out.st.AllowedDowntimeMs = 100
		a.mu.Unlock()
	}
	if hold != nil {
		select {
		case <-hold:
		case <-out.cancel:
			finish(agentapi.PhaseCanceled, api.CodeMigrationCanceled, "canceled: operation aborted")
			return
		}
	}
	select {
	case <-out.cancel:
		finish(agentapi.PhaseCanceled, api.CodeMigrationCanceled, "canceled: operation aborted")
		return
	default:
	}
	if failWith != "" {
		finish(agentapi.PhaseFailed, api.CodeMigrationFailed, failWith)
		return
	}
	// The VM moves: gone here, running there.
	a.mu.Lock()
	v := a.vms[id]
	delete(a.vms, id)
	a.mu.Unlock()
	if v != nil {
		vm := v.vm
		vm.Host, vm.State, vm.Reason = dst.name, agentapi.StateRunning, "migrated"
		dst.mu.Lock()
		dst.vms[id] = &fakeVM{vm: vm, def: v.def}
		if in := dst.mig.incoming[id]; in != nil {
			if arrival := dst.mig.arrival; arrival != nil {
				in.State = agentapi.IncomingArriving
				go func() {
					<-arrival
					dst.mu.Lock()
					in.State, in.DowntimeMs = agentapi.IncomingArrived, 42
					dst.mu.Unlock()
				}()
			} else {
				in.State, in.DowntimeMs = agentapi.IncomingArrived, 42
			}
		}
		dst.publish(vm, "migrated", "from "+a.name)
		dst.mu.Unlock()
		a.mu.Lock()
		gone := v.vm
		gone.State = agentapi.StateUnknown
		a.publish(gone, "undefined", "migrated")
		a.mu.Unlock()
	}
	finish(agentapi.PhaseCompleted, "", "")
}
