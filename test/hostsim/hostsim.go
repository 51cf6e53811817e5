// Package hostsim simulates polyvirt hosts (the role of oVirt's vdsmfake):
// each simulated host listens on its own port and speaks the agent API
// the engine monitors — GET /v1/capabilities (with ETag / If-None-Match),
// GET /v1/stats, GET /v1/vms (none) and GET /v1/events (with the
// statistics pushed when asked, as an agent does) — over mutual TLS and
// HTTP/2, with a certificate it gets by enrolling with the engine like a
// real agent (agent.Enroll). Thousands of hosts fit in one process; the
// engine cannot tell them from agents.
//
// The capabilities reports are those of the built-in profiles (package
// profiles, read through package caps without a libvirt daemon), so a
// simulated POWER8 is admitted like the real fake-KVM POWER8 agent. A
// host can be stopped (connection refused), hung (accepts, never answers)
// and given another profile (a reinstall), to drive the engine's status
// machine in tests.
package hostsim

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"polyvirt/internal/agent"
	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
	"polyvirt/internal/caps"
	"polyvirt/internal/pki"
)

// Sim is a set of simulated hosts.
type Sim struct {
	mu      sync.Mutex
	reports map[string]*report
	hosts   []*Host
}

// report is a profile's capabilities report and its ETag.
type report struct {
	body []byte
	etag string
}

// New makes an empty simulator.
func New() *Sim { return &Sim{reports: map[string]*report{}} }

// Report returns the capabilities report (JSON) of a built-in profile.
func (s *Sim) report(profile string) (*report, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.reports[profile]; ok {
		return r, nil
	}
	res, err := caps.Collect(context.Background(), caps.Options{Profile: profile})
	if err != nil {
		return nil, fmt.Errorf("profile %s: %w", profile, err)
	}
	body, err := json.MarshalIndent(res.Report, "", "  ")
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(body)
	r := &report{body: body, etag: `"` + hex.EncodeToString(sum[:16]) + `"`}
	s.reports[profile] = r
	return r, nil
}

// Host is one simulated host.
type Host struct {
	sim  *Sim
	name string
	addr string

	mu      sync.Mutex
	ln      net.Listener // held from AddHost to the first Start
	rep     *report
	tlsCfg  *tls.Config
	srv     *http.Server
	serving bool

	hung       atomic.Bool
	noPush     atomic.Bool
	noPushETag atomic.Bool
	pushes     atomic.Int64
	requests   atomic.Int64
	// conns are the connections open to the host (OpenConns).
	conns sync.Map      // net.Conn → struct{}
	cpu   atomic.Uint64 // float64 bits: the simulated CPU usage
}

// AddHost makes a host presenting a profile, listening on a free port of
// 127.0.0.1 (held from now on). It answers once enrolled.
func (s *Sim) AddHost(name, profile string) (*Host, error) {
	return s.AddHostAt(name, profile, "127.0.0.1")
}

// AddHostAt is AddHost on a free port of another address (127.0.0.2, ...:
// ten thousand hosts need more ports than one address has to spare).
func (s *Sim) AddHostAt(name, profile, ip string) (*Host, error) {
	rep, err := s.report(profile)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return nil, err
	}
	h := &Host{sim: s, name: name, addr: ln.Addr().String(), rep: rep, ln: ln}
	s.mu.Lock()
	s.hosts = append(s.hosts, h)
	s.mu.Unlock()
	return h, nil
}

// Name is the host's name.
func (h *Host) Name() string { return h.name }

// Addr is the HOST:PORT the host listens on.
func (h *Host) Addr() string { return h.addr }

// Requests counts the requests the host answered.
func (h *Host) Requests() int64 { return h.requests.Load() }

func (h *Host) connState(c net.Conn, st http.ConnState) {
	switch st {
	case http.StateNew:
		h.conns.Store(c, struct{}{})
	case http.StateClosed, http.StateHijacked:
		h.conns.Delete(c)
	}
}

// OpenConns counts the connections open to the host by the protocol they
// negotiated: HTTP/1.1 (or none yet) and HTTP/2.
func (h *Host) OpenConns() (http1, http2 int) {
	h.conns.Range(func(k, _ any) bool {
		if tc, ok := k.(*tls.Conn); ok && tc.ConnectionState().NegotiatedProtocol == "h2" {
			http2++
		} else {
			http1++
		}
		return true
	})
	return http1, http2
}

// Enroll joins the engine with a join token (as polyvirt agent join does)
// and starts answering with the certificate received.
func (h *Host) Enroll(ctx context.Context, engineURL, token string) (*agent.Enrollment, error) {
	e, err := agent.Enroll(ctx, engineURL, token, 30*time.Second)
	if err != nil {
		return nil, err
	}
	cfg, err := pki.ServerTLS([]byte(e.Cert), e.KeyPEM, []byte(e.CACert))
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	h.tlsCfg = cfg
	h.mu.Unlock()
	return e, h.Start()
}

// UseTLS sets the host's TLS configuration directly (tests that enroll
// otherwise).
func (h *Host) UseTLS(cfg *tls.Config) {
	h.mu.Lock()
	h.tlsCfg = cfg
	h.mu.Unlock()
}

// Start (re)starts answering; an enrolled host that was stopped comes back.
func (h *Host) Start() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.serving {
		return nil
	}
	if h.tlsCfg == nil {
		return errors.New("host " + h.name + " is not enrolled")
	}
	ln, err := h.ln, error(nil)
	h.ln = nil
	for i := 0; ln == nil && i < 50; i++ {
		if ln, err = net.Listen("tcp", h.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if ln == nil {
		return fmt.Errorf("host %s: cannot listen on %s again: %v", h.name, h.addr, err)
	}
	h.srv = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: log.New(io.Discard, "", 0), ConnState: h.connState}
	h.serving = true
	srv := h.srv
	cfg := h.tlsCfg.Clone()
	if len(cfg.NextProtos) == 0 {
		// HTTP/2 as a real agent's server offers it (http.Server.ServeTLS).
		cfg.NextProtos = []string{"h2", "http/1.1"}
	}
	go srv.Serve(tls.NewListener(ln, cfg))
	return nil
}

// Stop closes the host's listener and connections: the engine gets
// "connection refused", as from a killed agent.
func (h *Host) Stop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.serving {
		h.srv.Close()
		h.serving = false
	}
	if h.ln != nil {
		h.ln.Close()
		h.ln = nil
	}
}

// Hang makes the host accept requests and never answer them (an agent
// that disappears mid-request), or answer again.
func (h *Host) Hang(on bool) { h.hung.Store(on) }

// SetProfile makes the host report another profile's capabilities (a
// reinstall on other hardware).
func (h *Host) SetProfile(profile string) error {
	rep, err := h.sim.report(profile)
	if err != nil {
		return err
	}
	h.mu.Lock()
	h.rep = rep
	h.mu.Unlock()
	return nil
}

// ServeHTTP answers the agent API the engine uses.
func (h *Host) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.hung.Load() {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Minute):
		}
		return
	}
	h.requests.Add(1)
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/v1/capabilities":
		h.mu.Lock()
		rep := h.rep
		h.mu.Unlock()
		w.Header().Set("ETag", rep.etag)
		if r.Header.Get("If-None-Match") == rep.etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(rep.body)
	case r.Method == http.MethodGet && r.URL.Path == "/v1/stats":
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(h.stats())
	case r.Method == http.MethodGet && r.URL.Path == "/v1/vms":
		// A simulated host runs no VM: the engine's VM watcher finds none.
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte("[]\n"))
	case r.Method == http.MethodGet && r.URL.Path == "/v1/events":
		// The event stream stays open, with the agent's keep-alive
		// comments, as a real idle host's does (Stop closes it); with
		// ?stats=INTERVAL it carries the statistics too, as a real agent's.
		var push <-chan time.Time
		if v := r.URL.Query().Get("stats"); v != "" && !h.noPush.Load() {
			d, err := time.ParseDuration(v)
			if err != nil || d < agentapi.MinStatsPush || d > agentapi.MaxStatsPush {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			w.Header().Set(agentapi.StatsHeader, d.String())
			t := time.NewTicker(d)
			defer t.Stop()
			push = t.C
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		rc := http.NewResponseController(w)
		fmt.Fprint(w, ": host simulator events\n\n")
		if push != nil {
			h.pushStats(w)
		}
		if rc.Flush() != nil {
			return
		}
		t := time.NewTicker(15 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-r.Context().Done():
				return
			case <-t.C:
				fmt.Fprint(w, ": keepalive\n\n")
			case <-push:
				if h.hung.Load() {
					continue
				}
				h.pushStats(w)
			}
			if rc.Flush() != nil {
				return
			}
		}
	default:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		json.NewEncoder(w).Encode(api.ErrorBody{Error: api.Error{Code: api.CodeNotFound, Message: "the host simulator answers GET /v1/capabilities, /v1/stats, /v1/vms and /v1/events only"}})
	}
}

// pushStats writes the statistics as an event of the stream, with the
// report's ETag as a real agent's say it.
func (h *Host) pushStats(w io.Writer) {
	h.pushes.Add(1)
	st := h.stats()
	if !h.noPushETag.Load() {
		h.mu.Lock()
		st.CapsETag = strings.Trim(h.rep.etag, `"`)
		h.mu.Unlock()
	}
	doc, _ := json.Marshal(st)
	fmt.Fprintf(w, "event: %s\ndata: %s\n\n", agentapi.EventStats, doc)
}

// NoPush makes the host answer its event stream without the statistics,
// as an agent that cannot push them (the engine polls it instead).
func (h *Host) NoPush(on bool) { h.noPush.Store(on) }

// NoPushETag makes the host push its statistics without its report's
// ETag, as an agent older than agentapi.Stats.CapsETag (the engine asks
// every so often whether its report changed).
func (h *Host) NoPushETag(on bool) { h.noPushETag.Store(on) }

// Pushes counts the statistics the host pushed on its event stream.
func (h *Host) Pushes() int64 { return h.pushes.Load() }

// stats makes plausible figures: CPU usage wandering between 0 and 100;
// libvirt reachable, as a real agent says in every report.
func (h *Host) stats() agentapi.Stats {
	u := h.cpuUsage() + (rand.Float64()-0.5)*10
	u = min(max(u, 0), 100)
	h.cpu.Store(uint64(u * 1000))
	return agentapi.Stats{Host: agentapi.HostStats{Time: time.Now().UTC(), CPUUsagePercent: float64(int(u*100)) / 100, CPUs: 160,
		MemTotalMiB: 262144, MemFreeMiB: 200000, MemAvailableMiB: 210000, Load1: u / 10, Load5: u / 12, Load15: u / 15},
		VMs: []agentapi.VMStats{}, Libvirt: &agentapi.LibvirtStatus{Connected: true, URI: "qemu:///system"}}
}

func (h *Host) cpuUsage() float64 {
	v := h.cpu.Load()
	if v == 0 {
		return 20
	}
	return float64(v) / 1000
}

// Close stops every host.
func (s *Sim) Close() {
	s.mu.Lock()
	hosts := append([]*Host(nil), s.hosts...)
	s.mu.Unlock()
	for _, h := range hosts {
		h.Stop()
	}
}
