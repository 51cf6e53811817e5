package good

import "testing"

func TestPasses(t *testing.T) { t.Log("a log line of a passing test, not shown") }

func TestSkipsWithReason(t *testing.T) {
	t.Skip("libvirt's schema is absent: domain XML not checked against it")
}

func TestSkipsSilently(t *testing.T) { t.SkipNow() }

func TestTable(t *testing.T) {
	for _, name := range []string{"one", "two"} {
		t.Run(name, func(t *testing.T) {
			if name == "two" {
				t.Skipf("case %s needs PostgreSQL", name)
			}
		})
	}
}
