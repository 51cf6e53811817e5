package store_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"polyvirt/internal/store"
)

// pgServer is a PostgreSQL server of the test's own (initdb + pg_ctl in a
// temporary directory, on a free port), so that restarting it disturbs no
// other test.
type pgServer struct {
	bin, dir, data string
	port           int
	cred           *syscall.Credential // run the tools as the postgres user when root
	t              *testing.T
}

// startPGServer starts a private server, stopped and removed at the end
// of the test. Without PostgreSQL's binaries the test fails when real
// components are required and is skipped otherwise.
func startPGServer(t *testing.T) *pgServer {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	if len(bins) == 0 {
		if required() {
			t.Fatal("no /usr/lib/postgresql/*/bin/pg_ctl: install Debian's postgresql (scripts/lib.sh ensure_postgres)")
		}
		t.Skip("PostgreSQL's server binaries are not installed: skipping")
	}
	sort.Strings(bins)
	s := &pgServer{bin: filepath.Dir(bins[len(bins)-1]), t: t}
	dir, err := os.MkdirTemp("", "polyvirt-pg-")
	if err != nil {
		t.Fatal(err)
	}
	s.dir, s.data = dir, filepath.Join(dir, "data")
	t.Cleanup(func() { os.RemoveAll(dir) })
	if os.Geteuid() == 0 { // initdb refuses to run as root
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root needs the postgres user for initdb: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	s.run("initdb", "-D", s.data, "-U", "polyvirt", "-A", "trust", "-E", "UTF8", "--no-sync")
	s.run("pg_ctl", "-D", s.data, "-l", filepath.Join(dir, "log"), "-w", "-t", "60", "-o",
		fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=50", s.port, dir), "start")
	t.Cleanup(func() { s.run("pg_ctl", "-D", s.data, "-m", "immediate", "-w", "stop") })
	return s
}

func (s *pgServer) dsn() string {
	return fmt.Sprintf("postgres://polyvirt@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=5", s.port)
}

func (s *pgServer) run(tool string, args ...string) {
	s.t.Helper()
	cmd := exec.Command(filepath.Join(s.bin, tool), args...)
	cmd.Dir = s.dir
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	// Output to a file, not a pipe: a server started by pg_ctl keeps its
	// descriptors, and a pipe would never reach EOF.
	out, err := os.CreateTemp("", "polyvirt-pg-out-")
	if err != nil {
		s.t.Fatal(err)
	}
	defer os.Remove(out.Name())
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		text, _ := os.ReadFile(out.Name())
		log, _ := os.ReadFile(filepath.Join(s.dir, "log"))
		s.t.Fatalf("%s %s: %v\n%s\nserver log:\n%s", tool, strings.Join(args, " "), err, text, log)
	}
}

// TestPostgresRestartUnderLoad restarts the server while writers add
// hosts, each with its event, in one transaction: the calls in flight fail
// with a retryable ErrUnavailable, the pool reconnects by itself, every
// write reported done is there, and no host lacks its event (nothing
// half-written).
func TestPostgresRestartUnderLoad(t *testing.T) {
	srv := startPGServer(t)
	s, err := store.OpenPostgres(ctx, srv.dsn(), store.Options{MaxConns: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := store.Cluster{Name: "c"}
	if err := s.CreateCluster(ctx, &c); err != nil {
		t.Fatal(err)
	}
	var (
		mu        sync.Mutex
		committed = map[string]bool{}
		failures  = map[string]int{} // error text → count
		unknown   []error
		total     atomic.Int64
		after     atomic.Int64 // successes after the restart
		restarted atomic.Bool
		stop      = make(chan struct{})
		wg        sync.WaitGroup
	)
	write := func(id string) error {
		return s.InTx(ctx, func(tx store.Tx) error {
			h := store.Host{ID: id, Name: id, Address: "a:1", ClusterID: c.ID}
			if err := tx.CreateHost(ctx, &h); err != nil {
				return err
			}
			if _, err := tx.UpdateHostStats(ctx, []store.HostStats{{HostID: id, Stats: []byte(`{"cpu": 1}`)}}); err != nil {
				return err
			}
			return tx.AppendEvent(ctx, &store.Event{Action: "host.add", ObjectKind: "host", ObjectID: id, Message: "added " + id})
		})
	}
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("w%d-%d", w, n)
				err := write(id)
				mu.Lock()
				switch {
				case err == nil:
					committed[id] = true
					total.Add(1)
					if restarted.Load() {
						after.Add(1)
					}
				case store.IsRetryable(err):
					msg := err.Error()
					if i := strings.Index(msg, "PostgreSQL: "); i >= 0 {
						msg = msg[i:]
					}
					failures[msg]++
				default:
					unknown = append(unknown, err)
				}
				mu.Unlock()
				if err != nil {
					time.Sleep(20 * time.Millisecond) // a client backing off
				}
			}
		}(w)
	}
	waitFor := func(what string, cond func() bool, within time.Duration) {
		deadline := time.Now().Add(within)
		for !cond() {
			if time.Now().After(deadline) {
				close(stop)
				wg.Wait()
				t.Fatalf("%s: not within %v (%d writes done, %d after the restart, failures %v)", what, within, total.Load(), after.Load(), failures)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor("writes before the restart", func() bool { return total.Load() >= 100 }, 20*time.Second)
	began := time.Now()
	srv.run("pg_ctl", "-D", srv.data, "-l", filepath.Join(srv.dir, "log"), "-m", "fast", "-w", "-t", "60", "restart")
	restarted.Store(true)
	t.Logf("restart took %v", time.Since(began).Round(time.Millisecond))
	waitFor("recovery after the restart", func() bool { return after.Load() >= 100 }, 20*time.Second)
	close(stop)
	wg.Wait()

	for _, err := range unknown {
		t.Errorf("a failure that is not ErrUnavailable: %v", err)
	}
	nfail := 0
	for msg, n := range failures {
		nfail += n
		t.Logf("%4d × %s", n, msg)
	}
	if nfail == 0 {
		t.Error("no call failed: the restart was not under load")
	}
	t.Logf("%d writes committed, %d failed and were retryable", len(committed), nfail)
	// Every write reported done is there; nothing is half-written.
	hosts := checkHostsHaveEvents(t, s)
	for id := range committed {
		if _, err := s.GetHost(ctx, id); err != nil {
			t.Errorf("committed host %s: %v", id, err)
		}
	}
	if hosts < len(committed) {
		t.Errorf("%d hosts stored, %d committed", hosts, len(committed))
	}
	list, err := s.ListHosts(ctx, store.HostFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range list {
		if len(h.Stats) == 0 {
			t.Errorf("host %s lacks its stats (half-written)", h.Name)
		}
	}
	if !errors.Is(s.Ping(ctx), nil) {
		t.Error("the store does not answer after the test")
	}
}
