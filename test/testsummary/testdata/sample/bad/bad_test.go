package bad

import "testing"

func TestFails(t *testing.T) {
	t.Log("what the test saw")
	t.Errorf("got 1, want 2")
}

func TestSubFails(t *testing.T) {
	t.Run("ok", func(t *testing.T) {})
	t.Run("broken", func(t *testing.T) { t.Fatal("broken case") })
}

func TestPasses(t *testing.T) {}
