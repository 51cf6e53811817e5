package vmspec

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestExamples: every definition under examples/ is valid, and every one
// under examples/invalid/ is refused with exactly the violations its
// "# expect: CODE field" header lines name.
func TestExamples(t *testing.T) {
	good, _ := filepath.Glob("../../examples/*.yaml")
	bad, _ := filepath.Glob("../../examples/invalid/*.yaml")
	if len(good) < 3 || len(bad) < 1 {
		t.Fatalf("examples missing: %d valid, %d invalid", len(good), len(bad))
	}
	for _, f := range good {
		t.Run(filepath.Base(f), func(t *testing.T) {
			vm, err := DecodeFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Validate(vm, Options{}); err != nil {
				t.Errorf("refused:\n%v", err)
			}
		})
	}
	for _, f := range bad {
		t.Run("invalid/"+filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			want := expectations(data)
			if len(want) == 0 {
				t.Fatal("no '# expect: CODE field' line")
			}
			vm, err := Decode(data)
			if err == nil {
				_, err = Validate(vm, Options{})
			}
			got := violations(err)
			sortViolations(want)
			sortViolations(got)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("(-expected +got):\n%s\n%v", diff, err)
			}
		})
	}
}

// expectations reads the "# expect: CODE field" lines.
func expectations(data []byte) []violation {
	var out []violation
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "# expect:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		v := violation{Code: f[0]}
		if len(f) > 1 {
			v.Field = f[1]
		}
		out = append(out, v)
	}
	return out
}

func sortViolations(v []violation) {
	sort.Slice(v, func(i, j int) bool {
		if v[i].Field != v[j].Field {
			return v[i].Field < v[j].Field
		}
		return v[i].Code < v[j].Code
	})
}
