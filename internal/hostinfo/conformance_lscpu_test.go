package hostinfo

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"polyvirt/internal/cpuset"
)

// lscpuSummary is the summary part of an lscpu .expected file: the global
// lines, and one block of lines per "Model name:" (one per CPU type).
type lscpuSummary struct {
	global map[string]string
	types  []map[string]string
}

// parseLscpuExpected reads lscpu's summary (up to the parsable part).
func parseLscpuExpected(data string) lscpuSummary {
	s := lscpuSummary{global: map[string]string{}}
	for _, line := range strings.Split(data, "\n") {
		if strings.HasPrefix(line, "#") {
			break
		}
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		if key == "Model name" {
			s.types = append(s.types, map[string]string{})
		}
		switch key {
		case "Model name", "Model", "Thread(s) per core", "Core(s) per socket", "Socket(s)",
			"Socket(s) per book", "Book(s)", "Book(s) per drawer", "Drawer(s)", "Stepping", "Flags":
			if len(s.types) > 0 {
				if _, dup := s.types[len(s.types)-1][key]; !dup {
					s.types[len(s.types)-1][key] = val
				}
				continue
			}
		}
		if _, dup := s.global[key]; !dup {
			s.global[key] = val
		}
	}
	return s
}

// lscpuView renders what hostinfo read in lscpu's vocabulary, for the keys
// the expected summary has.
func lscpuView(h *Host, want lscpuSummary) lscpuSummary {
	got := lscpuSummary{global: map[string]string{}}
	g := got.global
	g["CPU(s)"] = strconv.Itoa(h.Topology.TotalCPUs)
	g["On-line CPU(s) list"] = h.Topology.Online.String()
	if len(h.Topology.Offline) > 0 {
		g["Off-line CPU(s) list"] = h.Topology.Offline.String()
	}
	if len(h.CPU.Types) > 0 && h.CPU.Types[0].Vendor != "" {
		g["Vendor ID"] = h.CPU.Types[0].Vendor
	}
	if h.CPU.Machine != "" && h.Arch == "s390x" {
		g["Machine type"] = h.CPU.Machine
	}
	if len(h.NUMA) > 0 {
		g["NUMA node(s)"] = strconv.Itoa(len(h.NUMA))
		for _, n := range h.NUMA {
			g[fmt.Sprintf("NUMA node%d CPU(s)", n.ID)] = n.CPUs.String()
		}
	}
	for _, t := range h.CPU.Types {
		m := map[string]string{
			"Model name":         t.Model,
			"Thread(s) per core": strconv.Itoa(t.ThreadsPerCore),
			"Core(s) per socket": strconv.Itoa(t.CoresPerSocket),
		}
		if m["Model name"] == "" {
			m["Model name"] = "-"
		}
		if t.Books > 0 {
			m["Socket(s) per book"] = strconv.Itoa(t.SocketsPerBook)
			if t.Drawers > 0 {
				m["Book(s) per drawer"] = strconv.Itoa(t.BooksPerDrawer)
				m["Drawer(s)"] = strconv.Itoa(t.Drawers)
			} else {
				m["Book(s)"] = strconv.Itoa(t.Books)
			}
		} else {
			m["Socket(s)"] = strconv.Itoa(t.Sockets)
		}
		switch h.Arch.Family() {
		case "ppc":
			m["Model"] = t.Revision // lscpu prints the revision as "Model:" on POWER
		case "x86":
			m["Stepping"] = t.Revision
			m["Model"] = h.CPU.ModelID
		case "arm":
			m["Stepping"] = t.Revision
		}
		if len(t.Flags) > 0 {
			m["Flags"] = strings.Join(t.Flags, " ")
		}
		got.types = append(got.types, m)
	}
	return got
}

// listKeys are compared as CPU sets: lscpu prints "4,5" and "0-62:2" where
// cpuset prints "4-5" and "0,2,4,…".
func isListKey(k string) bool {
	return strings.HasSuffix(k, "CPU(s) list") || (strings.HasPrefix(k, "NUMA node") && strings.HasSuffix(k, "CPU(s)"))
}

func sameValue(key, want, got string) bool {
	if !isListKey(key) {
		return want == got
	}
	w, err1 := cpuset.Parse(want)
	g, err2 := cpuset.Parse(got)
	return err1 == nil && err2 == nil && w.String() == g.String()
}

// TestConformanceLscpu reads every lscpu dump of the corpus and compares
// model names, CPU counts, lists and topology with lscpu's own output.
func TestConformanceLscpu(t *testing.T) {
	dir := needCorpus(t, "lscpu")
	files, err := filepath.Glob(filepath.Join(dir, "*.expected"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no .expected files in %s (%v)", dir, err)
	}
	tars, _ := filepath.Glob(filepath.Join(dir, "*.tar.gz"))
	if len(tars) != len(files) {
		t.Errorf("%d dumps and %d .expected files in %s", len(tars), len(files), dir)
	}
	// The keys compared: these must be in every dump's summary (or, for
	// the s390 book keys, replace Socket(s)).
	required := []string{"CPU(s)", "On-line CPU(s) list"}
	compared := []string{"CPU(s)", "On-line CPU(s) list", "Off-line CPU(s) list", "Vendor ID", "Machine type", "NUMA node(s)"}
	typeKeys := []string{"Model name", "Model", "Thread(s) per core", "Core(s) per socket", "Socket(s)",
		"Socket(s) per book", "Book(s)", "Book(s) per drawer", "Drawer(s)", "Stepping", "Flags"}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".expected")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			want := parseLscpuExpected(string(data))
			for _, k := range required {
				if _, ok := want.global[k]; !ok {
					t.Fatalf("%s has no %q line", f, k)
				}
			}
			if len(want.types) == 0 {
				t.Fatalf("%s has no Model name", f)
			}
			root := lscpuDump(t, dir, name)
			h, err := Read(os.DirFS(root), Options{})
			if err != nil {
				t.Fatal(err)
			}
			got := lscpuView(h, want)
			checked := 0
			for _, k := range compared {
				w, inWant := want.global[k]
				g, inGot := got.global[k]
				if k == "NUMA node(s)" && !inWant {
					w, inWant = "0", true // lscpu prints no NUMA section without nodes
					if !inGot {
						g = "0"
					}
				}
				if !inWant {
					continue
				}
				checked++
				if !sameValue(k, w, g) {
					t.Errorf("%s:\n got: %q\nwant: %q", k, g, w)
				}
			}
			for k, w := range want.global {
				if strings.HasPrefix(k, "NUMA node") && k != "NUMA node(s)" {
					checked++
					if g := got.global[k]; !sameValue(k, w, g) {
						t.Errorf("%s:\n got: %q\nwant: %q", k, g, w)
					}
				}
			}
			if len(got.types) != len(want.types) {
				t.Fatalf("%d CPU types, want %d:\n got: %v\nwant: %v", len(got.types), len(want.types), got.types, want.types)
			}
			for i := range want.types {
				for _, k := range typeKeys {
					w, inWant := want.types[i][k]
					if !inWant {
						continue
					}
					g, inGot := got.types[i][k]
					if !inGot {
						if k == "Model" && h.Arch.Family() == "arm" {
							continue // lscpu's ARM "Model:" is the raw CPU revision, not kept per type
						}
						t.Errorf("type %d %s: not read, want %q", i, k, w)
						continue
					}
					checked++
					if g != w {
						t.Errorf("type %d %s:\n got: %q\nwant: %q", i, k, g, w)
					}
				}
			}
			if checked < 6 {
				t.Errorf("only %d values compared", checked)
			}
			t.Logf("%d values match lscpu (arch %s from %s); problems: %v", checked, h.Arch, h.ArchSource, h.Problems)
		})
	}
}
