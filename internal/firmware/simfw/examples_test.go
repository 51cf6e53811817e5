package simfw

import (
	"context"
	"path/filepath"
	"testing"

	"polyvirt/internal/firmware"
	"polyvirt/internal/hostexec"
)

// TestExampleImages: the README's images are simulated images for the
// S822L, each validating to its level.
func TestExampleImages(t *testing.T) {
	for file, level := range map[string]string{"01SV810_133_081.img": "SV810_133", "01SV810_140_133.img": "SV810_140"} {
		h, err := Open(t.TempDir(), s822l, Options{})
		if err != nil {
			t.Fatal(err)
		}
		res, err := h.Run(context.Background(), hostexec.Command{Name: "update_flash", Args: []string{"-v", "-f", filepath.Join("..", "..", "..", "examples", "firmware", file)}})
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		p, err := firmware.ParseValidation(res.Stdout)
		if err != nil || p.NewT != level {
			t.Errorf("%s: projects %q (%v), want %s", file, p.NewT, err, level)
		}
		if lvl, _, ok := firmware.LevelsFromPackageName(file); !ok || lvl != level {
			t.Errorf("%s is not named for %s", file, level)
		}
	}
}
