package fakehost

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"sort"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// RPMFile is one file of a built RPM's payload.
type RPMFile struct {
	// Path is the archive name ("./tmp/fwupdate/01SV810_133_081.img").
	Path string
	// Data is the content of a regular file.
	Data []byte
	// Mode is the full cpio mode; zero means a regular file 0644.
	Mode uint32
}

// RPMSpec describes an RPM to build.
type RPMSpec struct {
	// Name, Version, Release name the package ("01SV810_133_081", "1.1",
	// "1").
	Name, Version, Release string
	// Summary and Description are free text (a vendor may name the
	// machine types the image is for there).
	Summary, Description string
	// Compressor is the payload compressor: "gzip" (default), "xz",
	// "zstd" or "identity" (no compression).
	Compressor string
	// Files are the payload's files, in order.
	Files []RPMFile
	// OmitTags leaves these header tags out (to build broken packages).
	OmitTags []int32
}

// FirmwareRPM is the spec of an IBM-style firmware package named
// "01"+level+"_"+replaced fix ("01SV860_100_081") holding one image at
// ./tmp/fwupdate/NAME.img, compressed with compressor.
func FirmwareRPM(name string, img []byte, compressor string) RPMSpec {
	return RPMSpec{
		Name:       name,
		Version:    "1.1",
		Release:    "1",
		Summary:    "System firmware " + name,
		Compressor: compressor,
		Files: []RPMFile{
			{Path: "./tmp/fwupdate", Mode: 0o040755},
			{Path: "./tmp/fwupdate/" + name + ".img", Data: img},
		},
	}
}

// BuildRPM writes a valid binary RPM (format 3 lead, a header-style
// signature header padded to 8 bytes, the main header, then a cpio newc
// payload) as rpm itself lays it out, so that tests need no rpm tool.
func BuildRPM(s RPMSpec) ([]byte, error) {
	comp := s.Compressor
	if comp == "" {
		comp = "gzip"
	}
	payload, err := compress(cpioNewc(s.Files), comp)
	if err != nil {
		return nil, err
	}
	var main header
	main.addString(1000, s.Name) // NAME
	main.addString(1001, s.Version)
	main.addString(1002, s.Release)
	main.addString(1004, s.Summary)
	main.addString(1005, s.Description)
	main.addString(1021, "Linux")   // OS
	main.addString(1022, "ppc64le") // ARCH
	main.addString(1124, "cpio")    // PAYLOADFORMAT
	main.addString(1125, comp)      // PAYLOADCOMPRESSOR
	main.addString(1126, "9")       // PAYLOADFLAGS
	for _, t := range s.OmitTags {
		main.remove(t)
	}
	mainBytes := main.bytes()

	var sig header
	sig.addInt32(1000, uint32(len(mainBytes)+len(payload))) // SIGTAG_SIZE
	sigBytes := sig.bytes()

	var out bytes.Buffer
	lead := make([]byte, 96)
	copy(lead, []byte{0xed, 0xab, 0xee, 0xdb, 3, 0})
	binary.BigEndian.PutUint16(lead[6:], 0)  // binary package
	binary.BigEndian.PutUint16(lead[8:], 16) // archnum: ppc64le
	copy(lead[10:76], fmt.Sprintf("%s-%s-%s", s.Name, s.Version, s.Release))
	binary.BigEndian.PutUint16(lead[76:], 1) // osnum: Linux
	binary.BigEndian.PutUint16(lead[78:], 5) // header-style signature
	out.Write(lead)
	out.Write(sigBytes)
	out.Write(make([]byte, (8-len(sigBytes)%8)%8))
	out.Write(mainBytes)
	out.Write(payload)
	return out.Bytes(), nil
}

type entry struct {
	tag   int32
	typ   uint32
	count uint32
	data  []byte
	align int
}

type header struct{ entries []entry }

func (h *header) addString(tag int32, v string) {
	h.entries = append(h.entries, entry{tag: tag, typ: 6, count: 1, data: append([]byte(v), 0), align: 1})
}

func (h *header) addInt32(tag int32, v uint32) {
	b := make([]byte, 4)
	binary.BigEndian.PutUint32(b, v)
	h.entries = append(h.entries, entry{tag: tag, typ: 4, count: 1, data: b, align: 4})
}

func (h *header) remove(tag int32) {
	out := h.entries[:0]
	for _, e := range h.entries {
		if e.tag != tag {
			out = append(out, e)
		}
	}
	h.entries = out
}

// bytes lays the header out: magic, counts, the index sorted by tag, the
// data store.
func (h *header) bytes() []byte {
	es := append([]entry(nil), h.entries...)
	sort.SliceStable(es, func(i, j int) bool { return es[i].tag < es[j].tag })
	var store bytes.Buffer
	index := make([]byte, 0, 16*len(es))
	for _, e := range es {
		for store.Len()%e.align != 0 {
			store.WriteByte(0)
		}
		var ie [16]byte
		binary.BigEndian.PutUint32(ie[0:], uint32(e.tag))
		binary.BigEndian.PutUint32(ie[4:], e.typ)
		binary.BigEndian.PutUint32(ie[8:], uint32(store.Len()))
		binary.BigEndian.PutUint32(ie[12:], e.count)
		index = append(index, ie[:]...)
		store.Write(e.data)
	}
	var out bytes.Buffer
	out.Write([]byte{0x8e, 0xad, 0xe8, 0x01, 0, 0, 0, 0})
	var n [8]byte
	binary.BigEndian.PutUint32(n[0:], uint32(len(es)))
	binary.BigEndian.PutUint32(n[4:], uint32(store.Len()))
	out.Write(n[:])
	out.Write(index)
	out.Write(store.Bytes())
	return out.Bytes()
}

// cpioNewc writes a newc archive with its TRAILER!!! entry.
func cpioNewc(files []RPMFile) []byte {
	var b bytes.Buffer
	write := func(ino int, name string, mode uint32, data []byte) {
		fmt.Fprintf(&b, "070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
			ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name)+1, 0)
		b.WriteString(name)
		b.WriteByte(0)
		for b.Len()%4 != 0 {
			b.WriteByte(0)
		}
		b.Write(data)
		for b.Len()%4 != 0 {
			b.WriteByte(0)
		}
	}
	for i, f := range files {
		mode := f.Mode
		if mode == 0 {
			mode = 0o100644
		}
		write(i+1, f.Path, mode, f.Data)
	}
	write(0, "TRAILER!!!", 0, nil)
	return b.Bytes()
}

func compress(data []byte, comp string) ([]byte, error) {
	var b bytes.Buffer
	var w io.WriteCloser
	var err error
	switch comp {
	case "gzip":
		w = gzip.NewWriter(&b)
	case "xz":
		// A small dictionary keeps test packages cheap to decode.
		w, err = xz.WriterConfig{DictCap: 1 << 16}.NewWriter(&b)
	case "zstd":
		w, err = zstd.NewWriter(&b)
	case "identity":
		return data, nil
	default:
		return nil, fmt.Errorf("fakehost: compressor %q not supported by the builder", comp)
	}
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(data); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
