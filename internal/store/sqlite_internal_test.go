package store

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSQLiteFull makes SQLite run out of room (max_page_count, which
// gives the SQLITE_FULL a full disk gives): the error is ErrStorage saying
// the disk is full, the failed transaction leaves nothing, and the store
// works again when there is room.
func TestSQLiteFull(t *testing.T) {
	ctx := context.Background()
	st, err := OpenSQLite(ctx, filepath.Join(t.TempDir(), "polyvirt.db"), Options{MaxConns: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s := st.(*sqlStore)
	limit := func(extra int) {
		var pages int
		if err := s.db.QueryRowContext(ctx, "PRAGMA page_count").Scan(&pages); err != nil {
			t.Fatal(err)
		}
		if _, err := s.db.ExecContext(ctx, "PRAGMA max_page_count = "+itoa(pages+extra)); err != nil {
			t.Fatal(err)
		}
	}
	c := Cluster{Name: "c"}
	if err := s.CreateCluster(ctx, &c); err != nil {
		t.Fatal(err)
	}
	limit(40)
	caps := []byte(`{"pad": "` + strings.Repeat("x", 8000) + `"}`)
	write := func(i int) error {
		return s.InTx(ctx, func(tx Tx) error {
			h := Host{Name: "h" + itoa(i), Address: "a:1", ClusterID: c.ID}
			if err := tx.CreateHost(ctx, &h); err != nil {
				return err
			}
			// The event is written, then the capabilities fill the file.
			if err := tx.AppendEvent(ctx, &Event{Action: "host.add", ObjectID: h.ID, Message: "added"}); err != nil {
				return err
			}
			h.Capabilities = caps
			return tx.UpdateHost(ctx, &h)
		})
	}
	var full error
	n := 0
	for ; n < 1000 && full == nil; n++ {
		full = write(n)
	}
	if !errors.Is(full, ErrStorage) || !strings.Contains(full.Error(), "disk is full") {
		t.Fatalf("after %d writes: %v; want ErrStorage, disk full", n, full)
	}
	hosts, err := s.ListHosts(ctx, HostFilter{WithCapabilities: true})
	if err != nil {
		t.Fatal(err)
	}
	page, err := s.ListEvents(ctx, EventFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(hosts) != n-1 || len(page.Events) != n-1 {
		t.Errorf("%d writes succeeded, but %d hosts and %d events are stored", n-1, len(hosts), len(page.Events))
	}
	for _, h := range hosts {
		if len(h.Capabilities) == 0 {
			t.Errorf("host %s was stored half-written (no capabilities)", h.Name)
		}
	}
	limit(1000)
	if err := write(n + 1); err != nil {
		t.Errorf("write after making room: %v", err)
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

// TestPreparedStatements: SQLite's statements are prepared once and kept
// (a read's SQL is not parsed again), inside transactions too; the batch
// writes' long ones are not kept; and a transaction on a pool of one
// connection (which it holds) does not wait for itself to prepare one.
func TestPreparedStatements(t *testing.T) {
	for _, conns := range []int{1, 8} {
		t.Run(itoa(conns)+" connections", func(t *testing.T) {
			// A transaction that waited for itself would end with this.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			st, err := OpenSQLite(ctx, filepath.Join(t.TempDir(), "polyvirt.db"), Options{MaxConns: conns})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			s := st.(*sqlStore)
			c := Cluster{Name: "c"}
			if err := s.CreateCluster(ctx, &c); err != nil {
				t.Fatal(err)
			}
			var stats []HostStats
			for i := range 60 {
				h := Host{Name: "h" + itoa(i), Address: "a:1", ClusterID: c.ID}
				if err := s.CreateHost(ctx, &h); err != nil {
					t.Fatal(err)
				}
				stats = append(stats, HostStats{HostID: h.ID, Stats: []byte(`{"n":1}`), At: time.Now()})
			}
			round := func() {
				t.Helper()
				if _, err := s.ListClusters(ctx); err != nil {
					t.Fatal(err)
				}
				if hosts, err := s.ListHosts(ctx, HostFilter{Brief: true}); err != nil || len(hosts) != 60 {
					t.Fatalf("%d hosts, %v", len(hosts), err)
				}
				if err := s.InTx(ctx, func(tx Tx) error {
					hosts, err := tx.ListHosts(ctx, HostFilter{Name: "h7"})
					if err == nil && len(hosts) != 1 {
						err = errors.New(itoa(len(hosts)) + " hosts named h7")
					}
					return err
				}); err != nil {
					t.Fatal(err)
				}
				if missing, err := s.UpdateHostStats(ctx, stats); err != nil || len(missing) > 0 {
					t.Fatalf("statistics: %v missing, %v", missing, err)
				}
			}
			round()
			kept := s.nstmts.Load()
			if kept == 0 {
				t.Fatal("no statement kept prepared")
			}
			round()
			round()
			if n := s.nstmts.Load(); n != kept {
				t.Errorf("the same calls again: %d statements kept, %d after the first", n, kept)
			}
			n := 0
			s.stmts.Range(func(k, _ any) bool {
				n++
				if q := k.(string); len(q) > maxStmtLen {
					t.Errorf("a statement of %d bytes kept: %.80s...", len(q), q)
				}
				return true
			})
			if n != int(kept) {
				t.Errorf("%d statements kept, counted %d", n, kept)
			}
		})
	}
}
