package firmware

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"path"
	"polyvirt/internal/api"
	"polyvirt/internal/api/agentapi"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"github.com/ulikunitz/xz/lzma"
)

// Limits bound what ExtractImage accepts.
type Limits struct {
	// MaxImageBytes bounds the extracted image; zero means
	// DefaultMaxImageBytes.
	MaxImageBytes int64
}

// DefaultMaxImageBytes bounds a firmware image: 1 GiB, ten times the
// largest system firmware image IBM ships.
const DefaultMaxImageBytes = 1 << 30

// RPM format limits (rpm's own are larger; a firmware package is far below
// these).
const (
	rpmLeadSize      = 96
	rpmMaxIndex      = 1 << 16
	rpmMaxHeaderData = 64 << 20
	cpioMaxName      = 4096
	cpioMaxEntries   = 100000
	cpioHeaderSize   = 110
)

// payloadLimit bounds the decompressed payload: the image, as much again
// for other files, and 1 MiB of archive headers (a decompression bomb
// stops there).
func payloadLimit(maxImage int64) int64 { return 2*maxImage + 1<<20 }

var (
	rpmLeadMagic   = []byte{0xed, 0xab, 0xee, 0xdb}
	rpmHeaderMagic = []byte{0x8e, 0xad, 0xe8, 0x01}
)

// RPM header tags read here.
const (
	tagName              = 1000
	tagVersion           = 1001
	tagRelease           = 1002
	tagSummary           = 1004
	tagDescription       = 1005
	tagArch              = 1022
	tagPayloadFormat     = 1124
	tagPayloadCompressor = 1125
)

// RPM header data types.
const (
	typeString      = 6
	typeStringArray = 8
	typeI18NString  = 9
)

// IsRPM tells whether data starts with the RPM lead magic.
func IsRPM(data []byte) bool { return bytes.HasPrefix(data, rpmLeadMagic) }

// ExtractImage reads a firmware upload from r — the vendor's RPM as users
// download it, or a bare .img — and writes the image bytes to w. An RPM is
// read without the rpm tool: the lead, the signature header (padded to 8
// bytes), the main header (name, version, payload format and compressor),
// then the payload, a cpio "newc" archive compressed with gzip, bzip2, xz,
// lzma or zstd (or not compressed), which must hold exactly one regular
// file named *.img. A corrupt or truncated RPM, one without an image or
// with several, an image larger than the limit, or an upload that is an
// archive but not an RPM are errors with code CodeImageInvalid,
// CodeRPMNoImage or CodeImageTooLarge; on error, what was written to w must
// be discarded.
func ExtractImage(r io.Reader, fileName string, w io.Writer, lim Limits) (agentapi.FirmwareImage, error) {
	max := lim.MaxImageBytes
	if max <= 0 {
		max = DefaultMaxImageBytes
	}
	br := bufio.NewReaderSize(r, 64<<10)
	head, _ := br.Peek(8)
	info := agentapi.FirmwareImage{FileName: path.Base(strings.ReplaceAll(fileName, "\\", "/"))}
	if fileName == "" {
		info.FileName = ""
	}
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(w, h)}
	if len(head) < len(rpmLeadMagic) && len(head) > 0 && bytes.HasPrefix(rpmLeadMagic, head) {
		return agentapi.FirmwareImage{}, rpmErr("lead", "the file is truncated (it ends inside the lead)")
	}
	if !IsRPM(head) && strings.HasSuffix(strings.ToLower(info.FileName), ".rpm") {
		return agentapi.FirmwareImage{}, rpmErr("lead", "%s is named like an RPM but does not start with the RPM magic ed ab ee db", info.FileName)
	}
	if IsRPM(head) {
		info.Format = "rpm"
		pkg, name, err := extractRPM(br, cw, max)
		if err != nil {
			return agentapi.FirmwareImage{}, err
		}
		info.Package = pkg
		info.ImageName = name
	} else {
		info.Format = "img"
		info.ImageName = info.FileName
		if kind := sniffArchive(head); kind != "" {
			return agentapi.FirmwareImage{}, &api.Error{Code: api.CodeFirmwareImageInvalid, Field: "image",
				Message: fmt.Sprintf("the upload is a %s stream, not an RPM or a firmware image: upload the vendor's .rpm or the .img it holds", kind)}
		}
		n, err := io.Copy(cw, io.LimitReader(br, max+1))
		if err != nil {
			return agentapi.FirmwareImage{}, &api.Error{Code: api.CodeFirmwareImageInvalid, Field: "image", Message: "reading the image: " + err.Error(), Err: err}
		}
		if n > max {
			return agentapi.FirmwareImage{}, api.FieldError(api.CodeFirmwareImageTooLarge, "image", "the image is larger than %d bytes", max)
		}
		if n == 0 {
			return agentapi.FirmwareImage{}, api.FieldError(api.CodeFirmwareImageInvalid, "image", "the image is empty")
		}
	}
	info.Size = cw.n
	info.SHA256 = hex.EncodeToString(h.Sum(nil))
	names := []string{info.ImageName, info.FileName}
	if info.Package != nil {
		names = append([]string{info.Package.Name}, names...)
		info.MachineTypes = machineTypesIn(info.Package.Summary + "\n" + info.Package.Description)
	}
	for _, n := range names {
		if lvl, old, ok := LevelsFromPackageName(n); ok {
			info.Level, info.Replaces = lvl, old
			break
		}
	}
	return info, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

// Write counts and passes on.
func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

var packageName = regexp.MustCompile(`^01([A-Z]{2}[0-9]{3})_([0-9]{3})_([0-9]{3})(?:[._-]|$)`)

// LevelsFromPackageName reads IBM's firmware package naming, "01" + new
// level + the fix level it replaces ("01SV810_133_081" or
// "01SV810_133_081.img": SV810_133 replacing SV810_081).
func LevelsFromPackageName(name string) (level, replaces string, ok bool) {
	m := packageName.FindStringSubmatch(path.Base(name))
	if m == nil {
		return "", "", false
	}
	return m[1] + "_" + m[2], m[1] + "_" + m[3], true
}

var typeModelRE = regexp.MustCompile(`\b[0-9]{4}-[0-9A-Z]{3}\b`)

// machineTypesIn lists the type-models named in text, sorted, at most 64.
func machineTypesIn(text string) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range typeModelRE.FindAllString(text, 256) {
		if !seen[m] && len(out) < 64 {
			seen[m] = true
			out = append(out, m)
		}
	}
	sort.Strings(out)
	return out
}

// sniffArchive names the compression or archive format data starts with,
// "" when none is recognised.
func sniffArchive(b []byte) string {
	switch {
	case bytes.HasPrefix(b, []byte{0x1f, 0x8b}):
		return "gzip"
	case bytes.HasPrefix(b, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}):
		return "xz"
	case bytes.HasPrefix(b, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return "zstd"
	case bytes.HasPrefix(b, []byte("BZh")):
		return "bzip2"
	case bytes.HasPrefix(b, []byte("07070")):
		return "cpio"
	case bytes.HasPrefix(b, rpmHeaderMagic):
		return "RPM header"
	}
	return ""
}

func rpmErr(field, format string, args ...any) error {
	pe := parseErr("rpm", field, format, args...)
	return &api.Error{Code: api.CodeFirmwareImageInvalid, Field: "rpm " + field, Message: pe.Reason, Err: pe}
}

// truncated turns a short read into a "truncated" message.
func truncated(field string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return rpmErr(field, "the file is truncated (it ends inside the %s)", field)
	}
	return rpmErr(field, "%v", err)
}

func extractRPM(br *bufio.Reader, w io.Writer, max int64) (*agentapi.FirmwareRPM, string, error) {
	lead := make([]byte, rpmLeadSize)
	if _, err := io.ReadFull(br, lead); err != nil {
		return nil, "", truncated("lead", err)
	}
	if major := lead[4]; major < 3 || major > 4 {
		return nil, "", rpmErr("lead", "format version %d, want 3 or 4", major)
	}
	if typ := binary.BigEndian.Uint16(lead[6:8]); typ != 0 {
		return nil, "", rpmErr("lead", "type %d is a source package, not a binary firmware package", typ)
	}
	if st := binary.BigEndian.Uint16(lead[78:80]); st != 5 {
		return nil, "", rpmErr("lead", "signature type %d, want 5 (header-style signature)", st)
	}
	if _, n, err := readHeader(br, "signature header"); err != nil {
		return nil, "", err
	} else if pad := (8 - n%8) % 8; pad > 0 {
		if _, err := io.CopyN(io.Discard, br, pad); err != nil {
			return nil, "", truncated("signature header", err)
		}
	}
	hdr, _, err := readHeader(br, "header")
	if err != nil {
		return nil, "", err
	}
	info := &agentapi.FirmwareRPM{}
	for _, f := range []struct {
		tag      int32
		dst      *string
		name     string
		required bool
	}{
		{tagName, &info.Name, "NAME", true},
		{tagVersion, &info.Version, "VERSION", true},
		{tagRelease, &info.Release, "RELEASE", true},
		{tagArch, &info.Arch, "ARCH", false},
		{tagSummary, &info.Summary, "SUMMARY", false},
		{tagDescription, &info.Description, "DESCRIPTION", false},
		{tagPayloadFormat, &info.PayloadFormat, "PAYLOADFORMAT", false},
		{tagPayloadCompressor, &info.PayloadCompressor, "PAYLOADCOMPRESSOR", false},
	} {
		v, found, err := hdr.str(f.tag, f.name)
		if err != nil {
			return nil, "", err
		}
		if !found && f.required {
			return nil, "", rpmErr("header", "tag %s (%d) is missing", f.name, f.tag)
		}
		*f.dst = clipLong(v, 4096)
	}
	if info.PayloadFormat == "" {
		info.PayloadFormat = "cpio"
	}
	if info.PayloadFormat != "cpio" {
		return nil, "", rpmErr("header", "payload format %q is not supported (want cpio)", clip(info.PayloadFormat))
	}
	if info.PayloadCompressor == "" {
		info.PayloadCompressor = "gzip" // rpm's default when the tag is absent
	}
	raw := &tailReader{r: br}
	payload, closeFn, err := decompressor(raw, info.PayloadCompressor)
	if err != nil {
		return nil, "", err
	}
	defer closeFn()
	limited := &limitReader{r: payload, left: payloadLimit(max)}
	name, err := extractCPIO(limited, w, max)
	if err != nil {
		return nil, "", err
	}
	if info.PayloadCompressor == "xz" && !xzFooterOK(raw.tail) {
		// The xz reader accepts a stream cut right after its last block;
		// the stream footer must be there.
		return nil, "", rpmErr("payload", "the xz stream has no valid footer: the file is truncated")
	}
	return info, name, nil
}

// tailReader remembers the last bytes read through it.
type tailReader struct {
	r    io.Reader
	tail []byte
}

const tailKeep = 64

// Read passes on and keeps the last tailKeep bytes.
func (t *tailReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 {
		t.tail = append(t.tail, p[:n]...)
		if len(t.tail) > tailKeep {
			t.tail = append(t.tail[:0:0], t.tail[len(t.tail)-tailKeep:]...)
		}
	}
	return n, err
}

// xzFooterOK checks the xz stream footer at the end of tail (after any
// stream padding): CRC32 of backward size and flags, then "YZ".
func xzFooterOK(tail []byte) bool {
	for len(tail) >= 4 && bytes.Equal(tail[len(tail)-4:], []byte{0, 0, 0, 0}) {
		tail = tail[:len(tail)-4]
	}
	if len(tail) < 12 {
		return false
	}
	f := tail[len(tail)-12:]
	if f[10] != 'Y' || f[11] != 'Z' {
		return false
	}
	return crc32.ChecksumIEEE(f[4:10]) == binary.LittleEndian.Uint32(f[0:4])
}

// rpmHeader is one parsed header structure: its index and data store.
type rpmHeader struct {
	what    string
	entries []rpmEntry
	data    []byte
}

type rpmEntry struct {
	tag    int32
	typ    uint32
	offset int32
	count  uint32
}

// readHeader reads a header structure and returns it with its size in
// bytes.
func readHeader(r io.Reader, what string) (*rpmHeader, int64, error) {
	pre := make([]byte, 16)
	if _, err := io.ReadFull(r, pre); err != nil {
		return nil, 0, truncated(what, err)
	}
	if !bytes.Equal(pre[:4], rpmHeaderMagic) {
		return nil, 0, rpmErr(what, "bad magic % x, want 8e ad e8 01", pre[:4])
	}
	nindex := binary.BigEndian.Uint32(pre[8:12])
	hsize := binary.BigEndian.Uint32(pre[12:16])
	if nindex == 0 || nindex > rpmMaxIndex {
		return nil, 0, rpmErr(what, "%d index entries, want 1 to %d", nindex, rpmMaxIndex)
	}
	if hsize > rpmMaxHeaderData {
		return nil, 0, rpmErr(what, "data store of %d bytes, more than %d", hsize, rpmMaxHeaderData)
	}
	// Read in chunks so that a lying size on a short file fails before
	// allocating it all.
	body, err := readN(r, int64(nindex)*16+int64(hsize))
	if err != nil {
		return nil, 0, truncated(what, err)
	}
	h := &rpmHeader{what: what, data: body[nindex*16:]}
	h.entries = make([]rpmEntry, nindex)
	for i := range h.entries {
		e := body[i*16 : i*16+16]
		h.entries[i] = rpmEntry{
			tag:    int32(binary.BigEndian.Uint32(e[0:4])),
			typ:    binary.BigEndian.Uint32(e[4:8]),
			offset: int32(binary.BigEndian.Uint32(e[8:12])),
			count:  binary.BigEndian.Uint32(e[12:16]),
		}
	}
	return h, 16 + int64(len(body)), nil
}

// readN reads exactly n bytes, growing the buffer as data arrives.
func readN(r io.Reader, n int64) ([]byte, error) {
	var buf bytes.Buffer
	got, err := io.Copy(&buf, io.LimitReader(r, n))
	if err != nil {
		return nil, err
	}
	if got < n {
		return nil, io.ErrUnexpectedEOF
	}
	return buf.Bytes(), nil
}

// str returns the string value of a tag (the first string of an array).
func (h *rpmHeader) str(tag int32, name string) (string, bool, error) {
	for _, e := range h.entries {
		if e.tag != tag {
			continue
		}
		switch e.typ {
		case typeString, typeStringArray, typeI18NString:
		default:
			return "", true, rpmErr(h.what, "tag %s has type %d, want a string", name, e.typ)
		}
		if e.offset < 0 || int(e.offset) >= len(h.data) {
			return "", true, rpmErr(h.what, "tag %s points at offset %d outside the %d-byte data store", name, e.offset, len(h.data))
		}
		rest := h.data[e.offset:]
		end := bytes.IndexByte(rest, 0)
		if end < 0 {
			return "", true, rpmErr(h.what, "tag %s: string not terminated inside the data store", name)
		}
		s := string(rest[:end])
		if !utfValid(s) {
			s = strings.ToValidUTF8(s, "?")
		}
		return s, true, nil
	}
	return "", false, nil
}

func utfValid(s string) bool { return strings.ToValidUTF8(s, "") == s }

// decompressor opens the payload stream for the header's compressor and
// checks it against the stream's own magic.
func decompressor(raw io.Reader, comp string) (io.Reader, func(), error) {
	br := bufio.NewReader(raw)
	magic, err := br.Peek(6)
	if err != nil && len(magic) == 0 {
		return nil, nil, truncated("payload", io.ErrUnexpectedEOF)
	}
	got := sniffArchive(magic)
	want := comp
	switch comp {
	case "identity", "none", "":
		want = "cpio"
	case "lzma":
		want = "" // the legacy .lzma format has no reliable magic
	}
	if want != "" && got != want {
		if got == "" {
			got = "unrecognised bytes"
		}
		return nil, nil, rpmErr("payload", "the header says the payload is %s, but it starts with %s (% x)", comp, got, magic)
	}
	nop := func() {}
	switch comp {
	case "gzip":
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, rpmErr("payload", "gzip: %v", err)
		}
		return zr, func() { zr.Close() }, nil
	case "bzip2":
		return bzip2.NewReader(br), nop, nil
	case "xz":
		zr, err := xz.NewReader(br)
		if err != nil {
			return nil, nil, rpmErr("payload", "xz: %v", err)
		}
		return zr, nop, nil
	case "lzma":
		zr, err := lzma.ReaderConfig{DictCap: 256 << 20}.NewReader(br)
		if err != nil {
			return nil, nil, rpmErr("payload", "lzma: %v", err)
		}
		return zr, nop, nil
	case "zstd":
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(1<<30),
			zstd.WithDecoderMaxWindow(128<<20))
		if err != nil {
			return nil, nil, rpmErr("payload", "zstd: %v", err)
		}
		return zr, zr.Close, nil
	case "identity", "none":
		return br, nop, nil
	}
	return nil, nil, rpmErr("header", "payload compressor %q is not supported (gzip, bzip2, xz, lzma, zstd)", clip(comp))
}

// limitReader fails once more than left bytes were read: a decompression
// bomb stops here.
type limitReader struct {
	r    io.Reader
	left int64
}

var errPayloadTooLarge = errors.New("payload too large")

// Read passes on until the limit, then fails.
func (l *limitReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, errPayloadTooLarge
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}

// payloadErr names a payload read failure.
func payloadErr(field string, err error) error {
	if errors.Is(err, errPayloadTooLarge) {
		return api.FieldError(api.CodeFirmwareImageTooLarge, "rpm payload", "the decompressed payload is larger than the image limit allows")
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return rpmErr(field, "the payload is truncated (it ends inside the %s)", field)
	}
	return rpmErr(field, "the payload is corrupt: %v", err)
}

var cpioFieldNames = [13]string{"ino", "mode", "uid", "gid", "nlink", "mtime", "filesize",
	"devmajor", "devminor", "rdevmajor", "rdevminor", "namesize", "check"}

// extractCPIO walks a newc archive and copies the one *.img regular file
// to w.
func extractCPIO(r io.Reader, w io.Writer, max int64) (string, error) {
	var found string
	var others []string
	hdr := make([]byte, cpioHeaderSize)
	for i := 0; ; i++ {
		if i >= cpioMaxEntries {
			return "", rpmErr("payload", "more than %d archive entries", cpioMaxEntries)
		}
		field := fmt.Sprintf("cpio entry %d", i)
		if _, err := io.ReadFull(r, hdr); err != nil {
			if errors.Is(err, io.EOF) && i > 0 {
				return "", rpmErr("payload", "the archive ends without its TRAILER!!! entry (truncated)")
			}
			return "", payloadErr(field, err)
		}
		if m := string(hdr[:6]); m != "070701" && m != "070702" {
			return "", rpmErr(field, "bad magic %q, want 070701 (cpio newc)", clip(strings.ToValidUTF8(m, "?")))
		}
		var v [13]uint64
		for k := range v {
			s := string(hdr[6+8*k : 14+8*k])
			n, err := strconv.ParseUint(s, 16, 32)
			if err != nil {
				return "", rpmErr(field, "field %s %q is not 8 hex digits", cpioFieldNames[k], strings.ToValidUTF8(s, "?"))
			}
			v[k] = n
		}
		mode, size, nameSize := v[1], int64(v[6]), v[11]
		if nameSize == 0 || nameSize > cpioMaxName {
			return "", rpmErr(field, "name size %d, want 1 to %d", nameSize, cpioMaxName)
		}
		nameBuf := make([]byte, nameSize+uint64(pad4(cpioHeaderSize+int64(nameSize))))
		if _, err := io.ReadFull(r, nameBuf); err != nil {
			return "", payloadErr(field, err)
		}
		if nameBuf[nameSize-1] != 0 {
			return "", rpmErr(field, "name is not NUL-terminated")
		}
		name := string(nameBuf[:nameSize-1])
		if name == "TRAILER!!!" {
			break
		}
		isImg := mode&0o170000 == 0o100000 && strings.HasSuffix(strings.ToLower(name), ".img")
		if isImg && size > max {
			return "", api.FieldError(api.CodeFirmwareImageTooLarge, "rpm "+field, "%s is %d bytes, more than the %d allowed", clip(name), size, max)
		}
		if isImg {
			if found != "" {
				return "", api.FieldError(api.CodeFirmwareImageInvalid, "rpm payload", "the package holds more than one image (%s and %s); which one to flash is ambiguous", found, path.Base(name))
			}
			found = path.Base(name)
			if _, err := io.CopyN(w, r, size); err != nil {
				return "", payloadErr(field+" ("+clip(name)+")", err)
			}
		} else {
			if len(others) < 5 && name != "." && mode&0o170000 != 0o040000 {
				others = append(others, name)
			}
			if _, err := io.CopyN(io.Discard, r, size); err != nil {
				return "", payloadErr(field+" ("+clip(name)+")", err)
			}
		}
		if p := pad4(size); p > 0 {
			if _, err := io.CopyN(io.Discard, r, p); err != nil {
				return "", payloadErr(field, err)
			}
		}
	}
	// Read to the end of the compressed stream so that its checksum is
	// verified and a truncated file is noticed.
	if _, err := io.Copy(io.Discard, r); err != nil {
		return "", payloadErr("payload end", err)
	}
	if found == "" {
		msg := "the package holds no *.img file"
		if len(others) > 0 {
			msg += " (it holds " + strings.Join(others, ", ") + ")"
		}
		return "", api.FieldError(api.CodeFirmwareRPMNoImage, "rpm payload", "%s", msg)
	}
	return found, nil
}

func pad4(n int64) int64 { return (4 - n%4) % 4 }
