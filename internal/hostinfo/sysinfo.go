package hostinfo

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
)

// SysinfoPath is where the root holds the s390x /proc/sysinfo.
const SysinfoPath = "proc/sysinfo"

// Sysinfo is what the s390x /proc/sysinfo says of the machine and the LPAR.
type Sysinfo struct {
	// Manufacturer is "IBM".
	Manufacturer string
	// Type is the machine type ("2817").
	Type string
	// Model is the model line with its runs of blanks collapsed ("703
	// M66": model capacity identifier, then the hardware model).
	Model string
	// SequenceCode is the machine serial ("0000000000012345").
	SequenceCode string
	// Plant is the plant of manufacture ("02").
	Plant string
	// LPARName and LPARNumber identify the LPAR this system runs in.
	LPARName string
	// LPARNumber is the LPAR's number.
	LPARNumber string
	// TopologySW is the "CPU Topology SW:" line (six numbers; the last four
	// are drawers, books per drawer, sockets per book and cores per
	// socket); nil when absent or malformed.
	TopologySW []int
}

// ReadSysinfo reads and parses proc/sysinfo under fsys (at most
// MaxProcFileBytes). The error names the file; a missing file gives an error
// satisfying errors.Is(err, fs.ErrNotExist).
func ReadSysinfo(fsys fs.FS) (Sysinfo, error) {
	data, err := readFile(fsys, SysinfoPath, MaxProcFileBytes)
	if err != nil {
		return Sysinfo{}, fmt.Errorf("%s: %w", SysinfoPath, err)
	}
	si, err := ParseSysinfo(data)
	if err != nil {
		return si, fmt.Errorf("%s: %w", SysinfoPath, err)
	}
	return si, nil
}

// ParseSysinfo parses /proc/sysinfo text ("Key:  value" lines; the first
// occurrence of a key wins). It fails on binary data and on text without a
// Manufacturer, Type or "CPU Topology" line.
func ParseSysinfo(data []byte) (Sysinfo, error) {
	if bytes.IndexByte(data, 0) >= 0 {
		return Sysinfo{}, errors.New("binary data (NUL bytes), not sysinfo text")
	}
	var si Sysinfo
	set := func(dst *string, v string) {
		if *dst == "" {
			*dst = strings.Join(strings.Fields(v), " ")
		}
	}
	known := false
	s := string(data)
	for len(s) > 0 {
		line := s
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			line, s = s[:i], s[i+1:]
		} else {
			s = ""
		}
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(key) {
		case "Manufacturer":
			set(&si.Manufacturer, val)
			known = true
		case "Type":
			set(&si.Type, val)
			known = true
		case "Model":
			set(&si.Model, val)
		case "Sequence Code":
			set(&si.SequenceCode, val)
		case "Plant":
			set(&si.Plant, val)
		case "LPAR Name":
			set(&si.LPARName, val)
		case "LPAR Number":
			set(&si.LPARNumber, val)
		case "CPU Topology SW":
			known = true
			if si.TopologySW != nil {
				continue
			}
			f := strings.Fields(val)
			if len(f) < 6 {
				continue
			}
			nums := make([]int, 6)
			good := true
			for i := range nums {
				n, err := strconv.Atoi(f[i])
				if err != nil || n < 0 || n > 1<<16 {
					good = false
					break
				}
				nums[i] = n
			}
			if good {
				si.TopologySW = nums
			}
		case "CPU Topology HW":
			known = true
		}
	}
	if !known {
		return si, errors.New("no Manufacturer, Type or CPU Topology line: not an s390 sysinfo")
	}
	return si, nil
}
