package browser

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"strings"
	"testing"
)

// decodePNG reads a PNG, or a data: URL of one (canvas.toDataURL).
func decodePNG(b []byte) (image.Image, error) {
	if s, ok := strings.CutPrefix(string(b), "data:image/png;base64,"); ok {
		raw, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, err
		}
		b = raw
	}
	return png.Decode(bytes.NewReader(b))
}

// screenDiff is the share of the pixels of two pictures of one screen that
// differ by more than tol in a colour channel; pictures of different sizes
// are an error.
func screenDiff(a, b image.Image, tol uint8) (float64, error) {
	ra, rb := a.Bounds(), b.Bounds()
	if ra.Dx() != rb.Dx() || ra.Dy() != rb.Dy() {
		return 1, fmt.Errorf("sizes differ: %dx%d and %dx%d", ra.Dx(), ra.Dy(), rb.Dx(), rb.Dy())
	}
	if ra.Empty() {
		return 1, fmt.Errorf("empty pictures")
	}
	diff := 0
	for y := 0; y < ra.Dy(); y++ {
		for x := 0; x < ra.Dx(); x++ {
			ca := color.NRGBAModel.Convert(a.At(ra.Min.X+x, ra.Min.Y+y)).(color.NRGBA)
			cb := color.NRGBAModel.Convert(b.At(rb.Min.X+x, rb.Min.Y+y)).(color.NRGBA)
			if absDiff(ca.R, cb.R) > tol || absDiff(ca.G, cb.G) > tol || absDiff(ca.B, cb.B) > tol {
				diff++
			}
		}
	}
	return float64(diff) / float64(ra.Dx()*ra.Dy()), nil
}

func absDiff(a, b uint8) uint8 {
	if a > b {
		return a - b
	}
	return b - a
}

// screenStats are the share of the pixels that are not (nearly) black and
// the share of the most common colour.
func screenStats(img image.Image) (lit, top float64) {
	r := img.Bounds()
	n := r.Dx() * r.Dy()
	if n == 0 {
		return 0, 1
	}
	counts := map[color.NRGBA]int{}
	litN := 0
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			c := color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)
			c.A = 255
			counts[c]++
			if int(c.R)+int(c.G)+int(c.B) > 60 {
				litN++
			}
		}
	}
	most := 0
	for _, k := range counts {
		most = max(most, k)
	}
	return float64(litN) / float64(n), float64(most) / float64(n)
}

// blank tells a screen with nothing on it: one colour (nearly) everywhere.
func blank(img image.Image) bool {
	_, top := screenStats(img)
	return top > 0.995
}

// installerMenu tells a screen that shows the Debian installer's dialog:
// its blue background (VGA blue, 0 0 170) around a grey dialog (VGA light
// grey, 170 170 170). A kernel log is mostly black; a screen the installer
// is clearing or drawing again is grey or black without the blue.
func installerMenu(img image.Image) bool {
	if blank(img) {
		return false
	}
	r := img.Bounds()
	n := r.Dx() * r.Dy()
	if n == 0 {
		return false
	}
	near := func(c color.NRGBA, r, g, b uint8) bool {
		return absDiff(c.R, r) <= 24 && absDiff(c.G, g) <= 24 && absDiff(c.B, b) <= 24
	}
	blue, grey := 0, 0
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			c := color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)
			switch {
			case near(c, 0, 0, 170):
				blue++
			case near(c, 170, 170, 170):
				grey++
			}
		}
	}
	return float64(blue)/float64(n) > 0.02 && float64(grey)/float64(n) > 0.2
}

func fill(w, h int, c color.NRGBA) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.SetNRGBA(x, y, c)
		}
	}
	return img
}

// TestScreenComparison: the comparison the console tests rely on tells the
// same picture, a changed one, a blank one and a menu.
func TestScreenComparison(t *testing.T) {
	blue, grey, black := color.NRGBA{0, 0, 170, 255}, color.NRGBA{170, 170, 170, 255}, color.NRGBA{0, 0, 0, 255}
	menu := fill(100, 100, blue)
	for y := 10; y < 90; y++ {
		for x := 10; x < 90; x++ {
			menu.SetNRGBA(x, y, grey)
		}
	}
	moved := image.NewNRGBA(menu.Rect)
	copy(moved.Pix, menu.Pix)
	for x := 20; x < 80; x++ {
		moved.SetNRGBA(x, 50, color.NRGBA{170, 0, 0, 255})
	}
	nearly := image.NewNRGBA(menu.Rect)
	copy(nearly.Pix, menu.Pix)
	nearly.SetNRGBA(0, 0, color.NRGBA{3, 2, 172, 255}) // compression noise
	klog := fill(100, 100, black)
	for x := 0; x < 60; x++ {
		klog.SetNRGBA(x, 5, grey)
	}
	// The installer clearing its screen: grey but for the cursor.
	clearing := fill(100, 100, grey)
	clearing.SetNRGBA(0, 0, black)
	// Drawing: the top half blue, the rest black.
	drawing := fill(100, 100, black)
	for y := 0; y < 50; y++ {
		for x := 0; x < 100; x++ {
			drawing.SetNRGBA(x, y, blue)
		}
	}
	for _, tc := range []struct {
		name     string
		a, b     image.Image
		want     float64
		wantErr  bool
		menu     bool
		blankPic bool
	}{
		{"same", menu, menu, 0, false, true, false},
		{"noise within the tolerance", menu, nearly, 0, false, true, false},
		{"a line moved", menu, moved, 0.006, false, true, false},
		{"another size", menu, fill(50, 50, blue), 1, true, true, false},
		{"black", fill(100, 100, black), fill(100, 100, black), 0, false, false, true},
		{"a kernel log", klog, klog, 0, false, false, false},
		{"a screen being cleared", clearing, clearing, 0, false, false, true},
		{"a screen being drawn", drawing, drawing, 0, false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := screenDiff(tc.a, tc.b, 24)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("screenDiff = %v, %v; want %v (error %v)", got, err, tc.want, tc.wantErr)
			}
			if m := installerMenu(tc.a); m != tc.menu {
				t.Errorf("installerMenu = %v; want %v", m, tc.menu)
			}
			if b := blank(tc.a); b != tc.blankPic {
				t.Errorf("blank = %v; want %v", b, tc.blankPic)
			}
		})
	}
	var buf bytes.Buffer
	png.Encode(&buf, menu)
	img, err := decodePNG([]byte("data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes())))
	if err != nil || img.Bounds().Dx() != 100 {
		t.Errorf("decodePNG of a data URL: %v", err)
	}
}
