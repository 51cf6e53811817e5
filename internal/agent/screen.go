package agent

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"strconv"

	"polyvirt/internal/api"
	"polyvirt/internal/libvirtconn"
)

// Screenshot returns a PNG of a running VM's first display head.
func (a *Agent) Screenshot(ctx context.Context, id string) ([]byte, error) {
	e, err := a.entry(id)
	if err != nil {
		return nil, err
	}
	c, err := a.conn.get()
	if err != nil {
		return nil, err
	}
	st, err := c.DomainState(ctx, e.Domain)
	if err != nil {
		return nil, err
	}
	if st != libvirtconn.StateRunning && st != libvirtconn.StatePaused && st != libvirtconn.StateBlocked {
		return nil, api.NewError(http.StatusConflict, api.CodeVMNotRunning, "VM %s is %s; a screenshot needs a running VM", e.Name, stateOf(st))
	}
	// The picture comes from the VM's QEMU (screendump): through its gate.
	var img []byte
	var mime string
	err = a.qemuCall(ctx, e, "a screenshot (screendump)", true, func(ctx context.Context, c libvirtconn.AgentConn) error {
		var err error
		img, mime, err = c.Screenshot(ctx, e.Domain, 0)
		return err
	})
	if err != nil {
		if libvirtconn.ErrorCode(err) == libvirtconn.CodeOperationInvalid || libvirtconn.ErrorCode(err) == libvirtconn.CodeOperationFailed {
			return nil, api.NewError(http.StatusConflict, api.CodeVMHasNoDisplay, "VM %s has no display to take a picture of: %v", e.Name, err)
		}
		return nil, err
	}
	return toPNG(img, mime)
}

// toPNG returns a PNG image as it is (after checking it decodes) and
// converts QEMU's PPM (P6) screenshots.
func toPNG(data []byte, mime string) ([]byte, error) {
	if bytes.HasPrefix(data, []byte("\x89PNG")) {
		if _, err := png.DecodeConfig(bytes.NewReader(data)); err != nil {
			return nil, fmt.Errorf("screenshot (%s): %w", mime, err)
		}
		return data, nil
	}
	img, err := decodePPM(data)
	if err != nil {
		return nil, fmt.Errorf("screenshot (%s): %w", mime, err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// maxPixels bounds a decoded screenshot (a 8K screen is 33 Mpx).
const maxPixels = 40 << 20

// decodePPM reads a binary PPM (P6, maxval < 256).
func decodePPM(data []byte) (image.Image, error) {
	fields := make([]int, 0, 3)
	i := 0
	if !bytes.HasPrefix(data, []byte("P6")) {
		return nil, fmt.Errorf("not a PNG or binary PPM image")
	}
	i = 2
	for len(fields) < 3 {
		// Skip white space and comments.
		for i < len(data) && (data[i] == ' ' || data[i] == '\n' || data[i] == '\r' || data[i] == '\t' || data[i] == '#') {
			if data[i] == '#' {
				for i < len(data) && data[i] != '\n' {
					i++
				}
				continue
			}
			i++
		}
		j := i
		for j < len(data) && data[j] >= '0' && data[j] <= '9' {
			j++
		}
		if j == i || j-i > 9 {
			return nil, fmt.Errorf("PPM header: bad number at byte %d", i)
		}
		n, _ := strconv.Atoi(string(data[i:j]))
		fields = append(fields, n)
		i = j
	}
	w, h, maxval := fields[0], fields[1], fields[2]
	if w <= 0 || h <= 0 || w*h > maxPixels || maxval <= 0 || maxval > 255 {
		return nil, fmt.Errorf("PPM header: %dx%d maxval %d out of range", w, h, maxval)
	}
	i++ // the single white space after maxval
	if len(data)-i < w*h*3 {
		return nil, fmt.Errorf("PPM: %d bytes of pixels, want %d", len(data)-i, w*h*3)
	}
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	px := data[i:]
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			o := (y*w + x) * 3
			img.SetRGBA(x, y, color.RGBA{R: px[o], G: px[o+1], B: px[o+2], A: 255})
		}
	}
	return img, nil
}
