package libvirtconn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
)

// Lifecycle is what a host agent needs beyond Domains: the gentle and the
// paused states, the state's reason, statistics, lifecycle events and
// knowing when the daemon went away.
type Lifecycle interface {
	// ShutdownDomain asks the guest to power off (ACPI, or the platform's
	// power button: an EPOW event on pseries).
	ShutdownDomain(ctx context.Context, d Domain) error
	// RebootDomain asks the guest to reboot.
	RebootDomain(ctx context.Context, d Domain) error
	// SuspendDomain pauses a running domain's vCPUs; ResumeDomain resumes.
	SuspendDomain(ctx context.Context, d Domain) error
	ResumeDomain(ctx context.Context, d Domain) error
	// DomainStateReason returns the state with libvirt's reason code.
	DomainStateReason(ctx context.Context, d Domain) (DomainState, int32, error)
	// DomainStats returns the statistics of the given domains (state, CPU,
	// balloon, vCPUs, interfaces, block devices; or the state alone).
	DomainStats(ctx context.Context, ds []Domain, o StatsOptions) ([]DomainStats, error)
	// QueryStatus asks the domain's QEMU for its run state through its
	// monitor (QMP query-status): whether QEMU answers at all. libvirt
	// marks the domain "tainted: custom-monitor" (once) for it.
	QueryStatus(ctx context.Context, d Domain) (string, error)
	// Events streams lifecycle events until ctx ends or the connection is
	// lost; the channel is then closed. A connection has one event stream:
	// it is registered with the daemon once and never deregistered (the
	// daemon drops it when the connection closes, see rpcConn), so a second
	// call fails.
	Events(ctx context.Context) (<-chan LifecycleEvent, error)
	// Disconnected is closed when the connection to the daemon is lost.
	Disconnected() <-chan struct{}
}

// AgentConn is everything the host agent uses.
type AgentConn interface {
	DomainConn
	Lifecycle
	Migrations
}

// DialAgent is Dial for the host agent's connection.
func DialAgent(uri string, timeout time.Duration) (AgentConn, error) {
	c, err := Dial(uri, timeout)
	if err != nil {
		return nil, err
	}
	ac, ok := c.(AgentConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("libvirt connection %T cannot serve an agent", c)
	}
	return ac, nil
}

var _ AgentConn = (*rpcConn)(nil)

// LifecycleEvent is one libvirt lifecycle event.
type LifecycleEvent struct {
	Domain Domain
	// Event and Detail are libvirt's virDomainEventType and its detail.
	Event  int32
	Detail int32
}

// The lifecycle event types (libvirt's virDomainEventType).
const (
	EventDefined     = int32(golibvirt.DomainEventDefined)
	EventUndefined   = int32(golibvirt.DomainEventUndefined)
	EventStarted     = int32(golibvirt.DomainEventStarted)
	EventSuspended   = int32(golibvirt.DomainEventSuspended)
	EventResumed     = int32(golibvirt.DomainEventResumed)
	EventStopped     = int32(golibvirt.DomainEventStopped)
	EventShutdown    = int32(golibvirt.DomainEventShutdown)
	EventPMSuspended = int32(golibvirt.DomainEventPmsuspended)
	EventCrashed     = int32(golibvirt.DomainEventCrashed)
)

var eventNames = []string{"defined", "undefined", "started", "suspended", "resumed", "stopped", "shutdown", "pmsuspended", "crashed"}

// EventName names a lifecycle event type.
func EventName(e int32) string {
	if e >= 0 && int(e) < len(eventNames) {
		return eventNames[e]
	}
	return fmt.Sprintf("event-%d", e)
}

// DomainStats are the statistics of one domain.
type DomainStats struct {
	Domain       Domain
	State        DomainState
	Reason       int32
	CPUTimeNs    uint64
	VCPUs        int
	BalloonKiB   uint64 // current memory
	MaxMemoryKiB uint64
	// Balloon holds what the guest's balloon driver reports, and the QEMU
	// process's resident memory (zero when not reported).
	Balloon    BalloonStats
	Blocks     []BlockStats
	Interfaces []InterfaceStats
}

// BalloonStats are a domain's memory as its balloon driver and QEMU report
// it, in KiB (libvirt's balloon.* statistics; zero when not reported).
type BalloonStats struct {
	// RSSKiB is the QEMU process's resident memory.
	RSSKiB uint64
	// AvailableKiB is the memory the guest sees, UsableKiB what it could
	// use without swapping, UnusedKiB what it leaves unused.
	AvailableKiB, UsableKiB, UnusedKiB uint64
	// SwapInKiB and SwapOutKiB are the guest's swapped memory (counters).
	SwapInKiB, SwapOutKiB uint64
}

// BlockStats are one block device's counters.
type BlockStats struct {
	Name                                     string
	ReadBytes, WriteBytes, ReadOps, WriteOps uint64
}

// InterfaceStats are one interface's counters.
type InterfaceStats struct {
	Name                             string
	RxBytes, TxBytes, RxPkts, TxPkts uint64
}

// Error codes of libvirt that callers map to their own answers.
const (
	CodeNoDomain          = int(golibvirt.ErrNoDomain)
	CodeOperationInvalid  = int(golibvirt.ErrOperationInvalid)
	CodeDomainExists      = int(golibvirt.ErrDomExist)
	CodeConfigUnsupported = int(golibvirt.ErrConfigUnsupported)
	CodeInvalidArg        = int(golibvirt.ErrInvalidArg)
	CodeOperationFailed   = int(golibvirt.ErrOperationFailed)
	// CodeOperationTimeout: libvirt waited in vain for a domain's job
	// ("cannot acquire state change lock"), held by a call its QEMU does not
	// answer.
	CodeOperationTimeout = int(golibvirt.ErrOperationTimeout)
)

// ErrorCode returns libvirt's error number carried by err, or 0.
func ErrorCode(err error) int {
	var le golibvirt.Error
	if errors.As(err, &le) {
		return int(le.Code)
	}
	var lp *golibvirt.Error
	if errors.As(err, &lp) && lp != nil {
		return int(lp.Code)
	}
	var re remoteError
	if errors.As(err, &re) {
		return int(re.Code)
	}
	return 0
}

func (c *rpcConn) ShutdownDomain(ctx context.Context, d Domain) error {
	return c.withDomain(ctx, "DomainShutdown", d, c.l.DomainShutdown)
}

func (c *rpcConn) RebootDomain(ctx context.Context, d Domain) error {
	return c.withDomain(ctx, "DomainReboot", d, func(rd golibvirt.Domain) error { return c.l.DomainReboot(rd, 0) })
}

func (c *rpcConn) SuspendDomain(ctx context.Context, d Domain) error {
	return c.withDomain(ctx, "DomainSuspend", d, c.l.DomainSuspend)
}

func (c *rpcConn) ResumeDomain(ctx context.Context, d Domain) error {
	return c.withDomain(ctx, "DomainResume", d, c.l.DomainResume)
}

func (c *rpcConn) DomainStateReason(ctx context.Context, d Domain) (DomainState, int32, error) {
	var st, reason int32
	err := c.withDomain(ctx, "DomainGetState", d, func(rd golibvirt.Domain) error {
		var err error
		st, reason, err = c.l.DomainGetState(rd, 0)
		return err
	})
	return DomainState(st), reason, err
}

// StatsOptions choose what DomainStats gathers.
type StatsOptions struct {
	// StateOnly asks for the state alone: libvirt answers it from what it
	// holds, without any domain's job or QEMU monitor, so it cannot hang
	// on a QEMU that does not answer.
	StateOnly bool
	// NoWait skips, for a domain whose job is held by another call, what
	// needs its QEMU monitor (VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT)
	// instead of waiting up to 30 s for the job.
	NoWait bool
}

func (c *rpcConn) DomainStats(ctx context.Context, ds []Domain, o StatsOptions) ([]DomainStats, error) {
	rds := make([]golibvirt.Domain, 0, len(ds))
	for _, d := range ds {
		rd, err := c.toRPC(d)
		if err != nil {
			return nil, err
		}
		rds = append(rds, rd)
	}
	if len(rds) == 0 {
		return nil, nil
	}
	kinds := golibvirt.DomainStatsState | golibvirt.DomainStatsCPUTotal | golibvirt.DomainStatsBalloon |
		golibvirt.DomainStatsVCPU | golibvirt.DomainStatsInterface | golibvirt.DomainStatsBlock
	if o.StateOnly {
		kinds = golibvirt.DomainStatsState
	}
	var flags golibvirt.ConnectGetAllDomainStatsFlags
	if o.NoWait {
		flags |= golibvirt.ConnectGetAllDomainsStatsNowait
	}
	recs, err := call(ctx, c, "ConnectGetAllDomainStats", func() ([]golibvirt.DomainStatsRecord, error) {
		return c.l.ConnectGetAllDomainStats(rds, uint32(kinds), uint32(flags))
	})
	if err != nil {
		return nil, err
	}
	out := make([]DomainStats, 0, len(recs))
	for _, r := range recs {
		out = append(out, statsOf(r))
	}
	return out, nil
}

// statsOf reads the typed parameters of one record ("state.state",
// "cpu.time", "balloon.current", "vcpu.current", "net.0.name",
// "block.0.rd.bytes", ...).
func statsOf(r golibvirt.DomainStatsRecord) DomainStats {
	s := DomainStats{Domain: fromRPC(r.Dom)}
	blocks := map[int]*BlockStats{}
	nets := map[int]*InterfaceStats{}
	block := func(i int) *BlockStats {
		if blocks[i] == nil {
			blocks[i] = &BlockStats{}
		}
		return blocks[i]
	}
	net := func(i int) *InterfaceStats {
		if nets[i] == nil {
			nets[i] = &InterfaceStats{}
		}
		return nets[i]
	}
	for _, p := range r.Params {
		v := p.Value.I
		switch p.Field {
		case "state.state":
			s.State = DomainState(asUint(v))
		case "state.reason":
			s.Reason = int32(asUint(v))
		case "cpu.time":
			s.CPUTimeNs = asUint(v)
		case "vcpu.current":
			s.VCPUs = int(asUint(v))
		case "balloon.current":
			s.BalloonKiB = asUint(v)
		case "balloon.maximum":
			s.MaxMemoryKiB = asUint(v)
		case "balloon.rss":
			s.Balloon.RSSKiB = asUint(v)
		case "balloon.available":
			s.Balloon.AvailableKiB = asUint(v)
		case "balloon.usable":
			s.Balloon.UsableKiB = asUint(v)
		case "balloon.unused":
			s.Balloon.UnusedKiB = asUint(v)
		case "balloon.swap_in":
			s.Balloon.SwapInKiB = asUint(v)
		case "balloon.swap_out":
			s.Balloon.SwapOutKiB = asUint(v)
		default:
			var i int
			var rest string
			if n, _ := fmt.Sscanf(p.Field, "block.%d.%s", &i, &rest); n == 2 && i >= 0 && i < 1024 {
				b := block(i)
				switch rest {
				case "name":
					b.Name, _ = v.(string)
				case "rd.bytes":
					b.ReadBytes = asUint(v)
				case "wr.bytes":
					b.WriteBytes = asUint(v)
				case "rd.reqs":
					b.ReadOps = asUint(v)
				case "wr.reqs":
					b.WriteOps = asUint(v)
				}
			} else if n, _ := fmt.Sscanf(p.Field, "net.%d.%s", &i, &rest); n == 2 && i >= 0 && i < 1024 {
				nt := net(i)
				switch rest {
				case "name":
					nt.Name, _ = v.(string)
				case "rx.bytes":
					nt.RxBytes = asUint(v)
				case "tx.bytes":
					nt.TxBytes = asUint(v)
				case "rx.pkts":
					nt.RxPkts = asUint(v)
				case "tx.pkts":
					nt.TxPkts = asUint(v)
				}
			}
		}
	}
	s.Blocks, s.Interfaces = ordered(blocks), ordered(nets)
	return s
}

// ordered returns the map's values in key order.
func ordered[T any](m map[int]*T) []T {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	out := make([]T, len(keys))
	for i, k := range keys {
		out[i] = *m[k]
	}
	return out
}

func asUint(v any) uint64 {
	switch n := v.(type) {
	case uint64:
		return n
	case int64:
		if n < 0 {
			return 0
		}
		return uint64(n)
	case uint32:
		return uint64(n)
	case int32:
		if n < 0 {
			return 0
		}
		return uint64(n)
	case float64:
		if n < 0 {
			return 0
		}
		return uint64(n)
	}
	return 0
}

// ErrSubscribed: a connection has one event stream.
var ErrSubscribed = errors.New("this libvirt connection has its event stream already")

func (c *rpcConn) Events(ctx context.Context) (<-chan LifecycleEvent, error) {
	c.evMu.Lock()
	defer c.evMu.Unlock()
	if c.subscribed {
		return nil, ErrSubscribed
	}
	// The subscription lives with the connection (c.life ends after Close),
	// never with ctx: see rpcConn for the daemon crash that avoids.
	in, err := call(ctx, c, "ConnectDomainEventCallbackRegisterAny", func() (<-chan golibvirt.DomainEventLifecycleMsg, error) {
		return c.l.LifecycleEvents(c.life)
	})
	if err != nil {
		return nil, err
	}
	c.subscribed = true
	out := make(chan LifecycleEvent, 64)
	go func() {
		defer close(out)
		// When the reader is gone, the events are dropped until the
		// connection closes, so that go-libvirt's goroutine never blocks.
		drain := func() {
			go func() {
				for range in {
				}
			}()
		}
		for {
			select {
			case ev, ok := <-in:
				if !ok {
					return
				}
				select {
				case out <- LifecycleEvent{Domain: fromRPC(ev.Dom), Event: ev.Event, Detail: ev.Detail}:
				case <-ctx.Done():
					drain()
					return
				}
			case <-ctx.Done():
				drain()
				return
			}
		}
	}()
	return out, nil
}

// queryStatusCommand is QMP's query-status.
const queryStatusCommand = `{"execute":"query-status"}`

func (c *rpcConn) QueryStatus(ctx context.Context, d Domain) (string, error) {
	var reply string
	err := c.withDomain(ctx, "query-status", d, func(rd golibvirt.Domain) error {
		var err error
		reply, err = c.l.QEMUDomainMonitorCommand(rd, queryStatusCommand, 0)
		return err
	})
	if err != nil {
		return "", err
	}
	return parseQueryStatus(reply)
}

// parseQueryStatus reads QMP's answer to query-status
// ({"return": {"status": "running", "running": true}, "id": ...}).
func parseQueryStatus(reply string) (string, error) {
	var r struct {
		Return *struct {
			Status string `json:"status"`
		} `json:"return"`
		Error *struct {
			Class string `json:"class"`
			Desc  string `json:"desc"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(reply), &r); err != nil {
		return "", fmt.Errorf("query-status: QEMU's answer is not JSON: %v", err)
	}
	if r.Error != nil {
		return "", fmt.Errorf("query-status: QEMU answered %s: %s", r.Error.Class, r.Error.Desc)
	}
	if r.Return == nil || r.Return.Status == "" {
		return "", errors.New("query-status: QEMU's answer has no status")
	}
	return r.Return.Status, nil
}

func (c *rpcConn) Disconnected() <-chan struct{} { return c.l.Disconnected() }
