package libvirtconn

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	golibvirt "github.com/digitalocean/go-libvirt"
)

// Migrations are the calls of a live migration at its source: the domain
// as the destination must see it, the migration itself (peer to peer: the
// source's daemon talks to the destination's daemon), its progress, and
// the knobs turned while it runs.
type Migrations interface {
	// MigratableXML returns the domain's XML without what only this host
	// knows (VIR_DOMAIN_XML_MIGRATABLE): the live domain, or with inactive
	// its persistent definition.
	MigratableXML(ctx context.Context, d Domain, inactive bool) (string, error)
	// Migrate sends a running domain to the libvirtd at destURI and
	// returns when the migration ended: nil when the domain runs there
	// (it is then gone here), an error when it failed and the domain runs
	// here still. When ctx ends first the migration is aborted.
	Migrate(ctx context.Context, d Domain, destURI string, p MigrateParams) error
	// DomainJob reads the domain's current job (a migration's progress),
	// or with completed the last completed one (on a migration's
	// destination too: the completed incoming migration, with the
	// downtime).
	DomainJob(ctx context.Context, d Domain, completed bool) (JobStats, error)
	// AbortJob cancels the domain's job (a migration: the domain keeps
	// running here).
	AbortJob(ctx context.Context, d Domain) error
	// SetMaxDowntime sets how long the final pause of a running migration
	// may last.
	SetMaxDowntime(ctx context.Context, d Domain, downtime time.Duration) error
	// StartPostCopy switches a running migration started with PostCopy to
	// post-copy.
	StartPostCopy(ctx context.Context, d Domain) error
}

// MigrateParams are a migration's parameters and flags. The migration is
// always live, peer to peer, persistent on the destination and undefined
// here when it succeeds.
type MigrateParams struct {
	// MigrationURI is where the memory stream goes (tcp://ADDR); without
	// it the destination offers its host name.
	MigrationURI string
	// DestName, DestXML and PersistXML are the domain's name, live XML
	// and persistent definition on the destination (the XML must describe
	// the same guest).
	DestName   string
	DestXML    string
	PersistXML string
	// BandwidthMiBs caps the stream (0: no cap).
	BandwidthMiBs uint64
	// CopyDisks are the targets of the disks copied during the migration
	// (VIR_MIGRATE_NON_SHARED_DISK with migrate_disks); the others are on
	// storage both hosts see.
	CopyDisks []string
	// AutoConverge, PostCopy and TLS are VIR_MIGRATE_AUTO_CONVERGE,
	// VIR_MIGRATE_POSTCOPY (allows StartPostCopy) and VIR_MIGRATE_TLS (the
	// stream itself encrypted).
	AutoConverge bool
	PostCopy     bool
	TLS          bool
	// Paused leaves the domain paused on the destination
	// (VIR_MIGRATE_PAUSED).
	Paused bool
}

// flags are the libvirt flags of p.
func (p MigrateParams) flags() golibvirt.DomainMigrateFlags {
	f := golibvirt.MigrateLive | golibvirt.MigratePeer2peer | golibvirt.MigratePersistDest |
		golibvirt.MigrateUndefineSource | golibvirt.MigrateAbortOnError
	if len(p.CopyDisks) > 0 {
		f |= golibvirt.MigrateNonSharedDisk
	}
	if p.AutoConverge {
		f |= golibvirt.MigrateAutoConverge
	}
	if p.PostCopy {
		f |= golibvirt.MigratePostcopy
	}
	if p.TLS {
		f |= golibvirt.MigrateTLS
	}
	if p.Paused {
		f |= golibvirt.MigratePaused
	}
	return f
}

// typedParams are the libvirt parameters of p.
func (p MigrateParams) typedParams() []golibvirt.TypedParam {
	var out []golibvirt.TypedParam
	str := func(field, v string) {
		if v != "" {
			out = append(out, golibvirt.TypedParam{Field: field, Value: *golibvirt.NewTypedParamValueString(v)})
		}
	}
	str(golibvirt.MigrateParamURI, p.MigrationURI)
	str(golibvirt.MigrateParamDestName, p.DestName)
	str(golibvirt.MigrateParamDestXML, p.DestXML)
	str(golibvirt.MigrateParamPersistXML, p.PersistXML)
	if p.BandwidthMiBs > 0 {
		out = append(out, golibvirt.TypedParam{Field: golibvirt.MigrateParamBandwidth, Value: *golibvirt.NewTypedParamValueUllong(p.BandwidthMiBs)})
	}
	for _, d := range p.CopyDisks {
		str(golibvirt.MigrateParamMigrateDisks, d)
	}
	return out
}

// JobType is libvirt's virDomainJobType.
type JobType int32

// The job types.
const (
	JobNone      JobType = JobType(golibvirt.DomainJobNone)
	JobBounded   JobType = JobType(golibvirt.DomainJobBounded)
	JobUnbounded JobType = JobType(golibvirt.DomainJobUnbounded)
	JobCompleted JobType = JobType(golibvirt.DomainJobCompleted)
	JobFailed    JobType = JobType(golibvirt.DomainJobFailed)
	JobCancelled JobType = JobType(golibvirt.DomainJobCancelled)
)

// Active tells whether a job runs.
func (t JobType) Active() bool { return t == JobBounded || t == JobUnbounded }

// The job operations (libvirt's virDomainJobOperation) a migration has.
const (
	JobMigrationIn  = int(golibvirt.DomainJobOperationStrMigrationIn)
	JobMigrationOut = int(golibvirt.DomainJobOperationStrMigrationOut)
)

// JobStats are a domain job's figures (bytes, bytes per second).
type JobStats struct {
	Type      JobType
	Operation int
	Elapsed   time.Duration
	// Data is memory and disks together.
	DataTotal, DataProcessed, DataRemaining uint64
	MemTotal, MemProcessed, MemRemaining    uint64
	MemBps                                  uint64
	// DirtyRate is in pages per second; MemIteration the pass over the
	// memory.
	DirtyRate    uint64
	MemIteration int
	// PostcopyRequests counts the pages the destination asked for in
	// post-copy.
	PostcopyRequests                            uint64
	DiskTotal, DiskProcessed, DiskRemaining     uint64
	DiskBps                                     uint64
	AutoConvergeThrottle                        int
	Downtime, DowntimeNet, SetupTime, Remaining time.Duration
	// Success and Error are a completed job's outcome (when libvirt says).
	Success bool
	Error   string
}

// jobStatsOf reads libvirt's typed parameters.
func jobStatsOf(typ int32, ps []golibvirt.TypedParam) JobStats {
	s := JobStats{Type: JobType(typ)}
	ms := func(v any) time.Duration { return time.Duration(asUint(v)) * time.Millisecond }
	for _, p := range ps {
		v := p.Value.I
		switch p.Field {
		case golibvirt.DomainJobOperationStr:
			s.Operation = int(asUint(v))
		case golibvirt.DomainJobTimeElapsed:
			s.Elapsed = ms(v)
		case golibvirt.DomainJobTimeRemaining:
			s.Remaining = ms(v)
		case golibvirt.DomainJobDowntime:
			s.Downtime = ms(v)
		case golibvirt.DomainJobDowntimeNet:
			s.DowntimeNet = ms(v)
		case golibvirt.DomainJobSetupTime:
			s.SetupTime = ms(v)
		case golibvirt.DomainJobDataTotal:
			s.DataTotal = asUint(v)
		case golibvirt.DomainJobDataProcessed:
			s.DataProcessed = asUint(v)
		case golibvirt.DomainJobDataRemaining:
			s.DataRemaining = asUint(v)
		case golibvirt.DomainJobMemoryTotal:
			s.MemTotal = asUint(v)
		case golibvirt.DomainJobMemoryProcessed:
			s.MemProcessed = asUint(v)
		case golibvirt.DomainJobMemoryRemaining:
			s.MemRemaining = asUint(v)
		case golibvirt.DomainJobMemoryBps:
			s.MemBps = asUint(v)
		case golibvirt.DomainJobMemoryDirtyRate:
			s.DirtyRate = asUint(v)
		case golibvirt.DomainJobMemoryIteration:
			s.MemIteration = int(min(asUint(v), 1<<30))
		case golibvirt.DomainJobMemoryPostcopyReqs:
			s.PostcopyRequests = asUint(v)
		case golibvirt.DomainJobDiskTotal:
			s.DiskTotal = asUint(v)
		case golibvirt.DomainJobDiskProcessed:
			s.DiskProcessed = asUint(v)
		case golibvirt.DomainJobDiskRemaining:
			s.DiskRemaining = asUint(v)
		case golibvirt.DomainJobDiskBps:
			s.DiskBps = asUint(v)
		case golibvirt.DomainJobAutoConvergeThrottle:
			s.AutoConvergeThrottle = int(min(asUint(v), 100))
		case golibvirt.DomainJobSuccess:
			s.Success = asUint(v) != 0
			if b, ok := v.(int32); ok {
				s.Success = b != 0
			}
		case golibvirt.DomainJobErrmsg:
			s.Error, _ = v.(string)
		}
	}
	return s
}

var _ Migrations = (*rpcConn)(nil)

func (c *rpcConn) MigratableXML(ctx context.Context, d Domain, inactive bool) (string, error) {
	flags := golibvirt.DomainXMLMigratable | golibvirt.DomainXMLSecure
	if inactive {
		flags |= golibvirt.DomainXMLInactive
	}
	var out string
	err := c.withDomain(ctx, "DomainGetXMLDesc", d, func(rd golibvirt.Domain) error {
		var err error
		out, err = c.l.DomainGetXMLDesc(rd, flags)
		return err
	})
	return out, err
}

// abortGrace is how long Migrate waits for libvirt to end a migration it
// aborted because its context ended.
const abortGrace = 30 * time.Second

func (c *rpcConn) Migrate(ctx context.Context, d Domain, destURI string, p MigrateParams) error {
	rd, err := c.toRPC(d)
	if err != nil {
		return err
	}
	if destURI == "" {
		return errors.New("migrate: no destination URI")
	}
	if !c.calls.begin() {
		return fmt.Errorf("%w: DomainMigratePerform3Params on a closed connection", ErrUnavailable)
	}
	done := make(chan error, 1)
	go func() {
		defer c.calls.end()
		_, err := c.l.DomainMigratePerform3Params(rd, golibvirt.OptString{destURI}, p.typedParams(), nil, p.flags())
		done <- err
	}()
	select {
	case err := <-done:
		return notFound(d.Name, err)
	case <-ctx.Done():
	}
	// The migration runs in the daemon whatever happens to this call:
	// cancel it there.
	if c.calls.begin() {
		_ = c.l.DomainAbortJob(rd)
		c.calls.end()
	}
	select {
	case err := <-done:
		if err == nil {
			return nil
		}
		return fmt.Errorf("%w (migration aborted: %v)", ctx.Err(), err)
	case <-time.After(abortGrace):
		return fmt.Errorf("%w: the migration was aborted but libvirt did not end it within %s", ctx.Err(), abortGrace)
	}
}

func (c *rpcConn) DomainJob(ctx context.Context, d Domain, completed bool) (JobStats, error) {
	var flags golibvirt.DomainGetJobStatsFlags
	if completed {
		flags = golibvirt.DomainJobStatsCompleted
	}
	var st JobStats
	err := c.withDomain(ctx, "DomainGetJobStats", d, func(rd golibvirt.Domain) error {
		typ, ps, err := c.l.DomainGetJobStats(rd, flags)
		if err != nil {
			return err
		}
		st = jobStatsOf(typ, ps)
		return nil
	})
	return st, err
}

func (c *rpcConn) AbortJob(ctx context.Context, d Domain) error {
	return c.withDomain(ctx, "DomainAbortJob", d, c.l.DomainAbortJob)
}

func (c *rpcConn) SetMaxDowntime(ctx context.Context, d Domain, downtime time.Duration) error {
	return c.withDomain(ctx, "DomainMigrateSetMaxDowntime", d, func(rd golibvirt.Domain) error {
		return c.l.DomainMigrateSetMaxDowntime(rd, uint64(downtime/time.Millisecond), 0)
	})
}

func (c *rpcConn) StartPostCopy(ctx context.Context, d Domain) error {
	return c.withDomain(ctx, "DomainMigrateStartPostCopy", d, func(rd golibvirt.Domain) error { return c.l.DomainMigrateStartPostCopy(rd, 0) })
}

// TLSURI is the libvirt URI of a daemon listening for TLS at addr
// (HOST:PORT), read by a client whose certificate, key and CA are in
// pkiDir (cacert.pem, clientcert.pem, clientkey.pem).
func TLSURI(addr, pkiDir string) string {
	u := "qemu+tls://" + addr + "/system"
	if pkiDir != "" {
		u += "?pkipath=" + pkiDir
	}
	return u
}

// IsTLSURI tells whether a libvirt URI uses TLS.
func IsTLSURI(uri string) bool { return strings.HasPrefix(uri, "qemu+tls://") }

// DefaultSocket is the system daemon's read-write socket.
const DefaultSocket = "/var/run/libvirt/libvirt-sock"

// SocketPath is the local socket a libvirt URI reaches (qemu:///system, or
// qemu+unix:///system?socket=PATH); false for a remote URI.
func SocketPath(uri string) (string, bool) {
	u, err := url.Parse(uri)
	if err != nil || u.Host != "" {
		return "", false
	}
	scheme := strings.SplitN(u.Scheme, "+", 2)
	if len(scheme) == 2 && scheme[1] != "unix" {
		return "", false
	}
	if s := u.Query().Get("socket"); s != "" {
		return s, true
	}
	if u.Path != "/system" {
		return "", false
	}
	return DefaultSocket, true
}
