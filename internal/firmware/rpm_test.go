package firmware

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
	"polyvirt/test/fakehost"
)

func buildRPM(t testing.TB, s fakehost.RPMSpec) []byte {
	t.Helper()
	data, err := fakehost.BuildRPM(s)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func TestExtractImageRPM(t *testing.T) {
	img := bytes.Repeat([]byte("POWER8 firmware image bytes "), 4000)
	for _, comp := range []string{"gzip", "xz", "zstd", "identity"} {
		t.Run(comp, func(t *testing.T) {
			spec := fakehost.FirmwareRPM("01SV810_133_081", img, comp)
			spec.Description = "For the IBM Power System S822L (8247-22L) and S812L (8247-21L)."
			var out bytes.Buffer
			info, err := ExtractImage(bytes.NewReader(buildRPM(t, spec)), "/downloads/01SV810_133_081.rpm", &out, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			want := agentapi.FirmwareImage{
				FileName: "01SV810_133_081.rpm", Format: "rpm", ImageName: "01SV810_133_081.img",
				Size: int64(len(img)), SHA256: sum(img),
				Package: &agentapi.FirmwareRPM{Name: "01SV810_133_081", Version: "1.1", Release: "1", Arch: "ppc64le",
					Summary: "System firmware 01SV810_133_081", Description: spec.Description,
					PayloadFormat: "cpio", PayloadCompressor: comp},
				Level: "SV810_133", Replaces: "SV810_081", MachineTypes: []string{"8247-21L", "8247-22L"},
			}
			if diff := cmp.Diff(want, info); diff != "" {
				t.Errorf("info (-want +got):\n%s", diff)
			}
			if !bytes.Equal(out.Bytes(), img) {
				t.Errorf("extracted %d bytes, want the %d image bytes", out.Len(), len(img))
			}
		})
	}
}

func TestExtractImageBare(t *testing.T) {
	img := fakehost.Image("SV860_100", "8247-22L")
	var out bytes.Buffer
	info, err := ExtractImage(bytes.NewReader(img), "01SV860_100_081.img", &out, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	want := agentapi.FirmwareImage{FileName: "01SV860_100_081.img", Format: "img", ImageName: "01SV860_100_081.img",
		Size: int64(len(img)), SHA256: sum(img), Level: "SV860_100", Replaces: "SV860_081"}
	if diff := cmp.Diff(want, info); diff != "" {
		t.Errorf("info (-want +got):\n%s", diff)
	}
	if !bytes.Equal(out.Bytes(), img) {
		t.Error("the bare image was not copied as it is")
	}
}

func gzipped(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func TestExtractImageErrors(t *testing.T) {
	img := []byte("IMAGE")
	good := buildRPM(t, fakehost.FirmwareRPM("01SV810_133_081", img, "gzip"))
	// Offsets in the good package: lead 96, signature header, main header.
	corruptAt := func(off int, b byte) []byte {
		c := append([]byte(nil), good...)
		c[off] = b
		return c
	}
	noImg := buildRPM(t, fakehost.RPMSpec{Name: "docs", Version: "1", Release: "1",
		Files: []fakehost.RPMFile{{Path: "./usr/share/doc/README", Data: []byte("x")}}})
	twoImgs := buildRPM(t, fakehost.RPMSpec{Name: "two", Version: "1", Release: "1",
		Files: []fakehost.RPMFile{{Path: "./a.img", Data: img}, {Path: "./b.img", Data: img}}})
	big := buildRPM(t, fakehost.FirmwareRPM("01SV810_133_081", bytes.Repeat([]byte{0}, 5000), "xz"))
	noName := buildRPM(t, fakehost.RPMSpec{Name: "x", Version: "1", Release: "1", OmitTags: []int32{1000},
		Files: []fakehost.RPMFile{{Path: "./a.img", Data: img}}})
	wrongComp := func() []byte {
		s := fakehost.FirmwareRPM("01SV810_133_081", img, "gzip")
		data := buildRPM(t, s)
		// Rewrite the compressor string "gzip" in the header to "xz\0\0".
		i := bytes.LastIndex(data, []byte("gzip\x00"))
		copy(data[i:], "xz\x00\x00\x00")
		return data
	}()
	unknownComp := func() []byte {
		data := buildRPM(t, fakehost.FirmwareRPM("01SV810_133_081", img, "gzip"))
		i := bytes.LastIndex(data, []byte("gzip\x00"))
		copy(data[i:], "lz4\x00\x00")
		return data
	}()
	sourceRPM := corruptAt(7, 1)

	tests := []struct {
		name  string
		data  []byte
		limit int64
		code  string
		msg   string
		bare  bool // uploaded as x.img rather than x.rpm
	}{
		{"empty upload", nil, 0, api.CodeFirmwareImageInvalid, "FIRMWARE_IMAGE_INVALID: image: the image is empty", true},
		{"gzip stream as image", gzipped(t, img), 0, api.CodeFirmwareImageInvalid,
			"FIRMWARE_IMAGE_INVALID: image: the upload is a gzip stream, not an RPM or a firmware image: upload the vendor's .rpm or the .img it holds", true},
		{"named .rpm but not one", []byte("hello"), 0, api.CodeFirmwareImageInvalid,
			"FIRMWARE_IMAGE_INVALID: rpm lead: x.rpm is named like an RPM but does not start with the RPM magic ed ab ee db", false},
		{"bare image too large", bytes.Repeat([]byte("x"), 101), 100, api.CodeFirmwareImageTooLarge,
			"FIRMWARE_IMAGE_TOO_LARGE: image: the image is larger than 100 bytes", true},
		{"lead only", good[:50], 0, api.CodeFirmwareImageInvalid,
			"FIRMWARE_IMAGE_INVALID: rpm lead: the file is truncated (it ends inside the lead)", false},
		{"source package", sourceRPM, 0, api.CodeFirmwareImageInvalid,
			"FIRMWARE_IMAGE_INVALID: rpm lead: type 1 is a source package, not a binary firmware package", false},
		{"bad lead version", corruptAt(4, 9), 0, api.CodeFirmwareImageInvalid,
			"FIRMWARE_IMAGE_INVALID: rpm lead: format version 9, want 3 or 4", false},
		{"bad signature magic", corruptAt(96, 0), 0, api.CodeFirmwareImageInvalid,
			"FIRMWARE_IMAGE_INVALID: rpm signature header: bad magic 00 ad e8 01, want 8e ad e8 01", false},
		{"truncated in the signature", good[:100], 0, api.CodeFirmwareImageInvalid,
			"FIRMWARE_IMAGE_INVALID: rpm signature header: the file is truncated (it ends inside the signature header)", false},
		{"absurd index count", corruptAt(96+8, 0x7f), 0, api.CodeFirmwareImageInvalid,
			"FIRMWARE_IMAGE_INVALID: rpm signature header: 2130706433 index entries, want 1 to 65536", false},
		{"no image in the package", noImg, 0, api.CodeFirmwareRPMNoImage,
			"FIRMWARE_RPM_NO_IMAGE: rpm payload: the package holds no *.img file (it holds ./usr/share/doc/README)", false},
		{"two images", twoImgs, 0, api.CodeFirmwareImageInvalid,
			"FIRMWARE_IMAGE_INVALID: rpm payload: the package holds more than one image (a.img and b.img); which one to flash is ambiguous", false},
		{"image over the limit", big, 1000, api.CodeFirmwareImageTooLarge,
			"FIRMWARE_IMAGE_TOO_LARGE: rpm cpio entry 1: ./tmp/fwupdate/01SV810_133_081.img is 5000 bytes, more than the 1000 allowed", false},
		{"NAME tag missing", noName, 0, api.CodeFirmwareImageInvalid,
			"FIRMWARE_IMAGE_INVALID: rpm header: tag NAME (1000) is missing", false},
		{"compressor tag lies", wrongComp, 0, api.CodeFirmwareImageInvalid,
			"FIRMWARE_IMAGE_INVALID: rpm payload: the header says the payload is xz, but it starts with gzip (1f 8b 08 00 00 00)", false},
		{"unknown compressor", unknownComp, 0, api.CodeFirmwareImageInvalid,
			"FIRMWARE_IMAGE_INVALID: rpm payload: the header says the payload is lz4, but it starts with gzip (1f 8b 08 00 00 00)", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := "x.rpm"
			if tt.bare {
				name = "x.img"
			}
			_, err := ExtractImage(bytes.NewReader(tt.data), name, io.Discard, Limits{MaxImageBytes: tt.limit})
			if err == nil {
				t.Fatal("no error")
			}
			var fe *api.Error
			if !errors.As(err, &fe) {
				t.Fatalf("error %T %v is not a *firmware.Error", err, err)
			}
			if diff := cmp.Diff([]string{tt.code, tt.msg}, []string{fe.Code, err.Error()}); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestExtractImageTruncated cuts a good package at every length: each cut
// is an error that says "truncated" (or names the broken part), never a
// panic or a silently short image.
func TestExtractImageTruncated(t *testing.T) {
	img := bytes.Repeat([]byte("0123456789"), 300)
	for _, comp := range []string{"gzip", "xz", "zstd", "identity"} {
		good := buildRPM(t, fakehost.FirmwareRPM("01SV810_133_081", img, comp))
		failures := 0
		for n := 0; n < len(good); n++ {
			_, err := ExtractImage(bytes.NewReader(good[:n]), "x.rpm", io.Discard, Limits{})
			if err == nil {
				t.Errorf("%s cut at %d of %d bytes: no error", comp, n, len(good))
				continue
			}
			failures++
			var fe *api.Error
			if !errors.As(err, &fe) || (fe.Code != api.CodeFirmwareImageInvalid && fe.Code != api.CodeFirmwareRPMNoImage) {
				t.Errorf("%s cut at %d: %v, want a FIRMWARE_IMAGE_INVALID error", comp, n, err)
			}
		}
		if failures != len(good) {
			t.Errorf("%s: %d of %d cuts failed", comp, failures, len(good))
		}
	}
}

func TestExtractImageCorruptPayload(t *testing.T) {
	img := bytes.Repeat([]byte("abcdefgh"), 500)
	good := buildRPM(t, fakehost.FirmwareRPM("01SV810_133_081", img, "gzip"))
	// Flip a byte near the end of the compressed payload: gzip's CRC or
	// the deflate stream breaks.
	bad := append([]byte(nil), good...)
	bad[len(bad)-12] ^= 0xff
	_, err := ExtractImage(bytes.NewReader(bad), "x.rpm", io.Discard, Limits{})
	if err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("err = %v, want a corrupt payload error", err)
	}
}

func TestLevelsFromPackageName(t *testing.T) {
	tests := []struct {
		name            string
		level, replaces string
		ok              bool
	}{
		{"01SV810_133_081", "SV810_133", "SV810_081", true},
		{"01SV810_133_081.rpm", "SV810_133", "SV810_081", true},
		{"/tmp/fwupdate/01SV810_133_081.img", "SV810_133", "SV810_081", true},
		{"01AL740_167_042-1.1-1", "AL740_167", "AL740_042", true},
		{"firmware.img", "", "", false},
		{"01SV810_133", "", "", false},
		{"01SV810_133_0812", "", "", false},
	}
	for _, tt := range tests {
		l, r, ok := LevelsFromPackageName(tt.name)
		if diff := cmp.Diff([]any{tt.level, tt.replaces, tt.ok}, []any{l, r, ok}); diff != "" {
			t.Errorf("LevelsFromPackageName(%q) (-want +got):\n%s", tt.name, diff)
		}
	}
}
