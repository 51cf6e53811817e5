// Package cpuset reads and writes the kernel's CPU list format ("0-3,8,10-11"),
// used by /sys/devices/system/cpu/online, node cpulists, libvirt and lscpu.
package cpuset

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// MaxCPU is the largest CPU number accepted; larger numbers in input are
// refused so that a hostile list ("0-4294967295") cannot exhaust memory.
const MaxCPU = 1 << 16

// maxExpanded bounds the CPUs all ranges of one list may name together,
// repeats included, so that parsing stays cheap on hostile input.
const maxExpanded = 2 * (MaxCPU + 1)

// Set is a sorted list of distinct CPU numbers.
type Set []int

// Parse reads a CPU list such as "0-3,8,16-31:4" (a range may carry a
// ":stride", as lscpu prints). An empty or blank string is the empty set.
func Parse(s string) (Set, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Set{}, nil
	}
	seen := make(map[int]bool)
	expanded := 0
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			return nil, fmt.Errorf("cpu list %q: empty element", clip(s))
		}
		stride := 1
		if i := strings.IndexByte(part, ':'); i >= 0 {
			n, err := strconv.Atoi(part[i+1:])
			if err != nil || n <= 0 {
				return nil, fmt.Errorf("cpu list %q: bad stride in %q", clip(s), clip(part))
			}
			stride = n
			part = part[:i]
		}
		lo, hi := part, part
		if i := strings.IndexByte(part, '-'); i >= 0 {
			lo, hi = part[:i], part[i+1:]
		}
		a, err1 := number(lo)
		b, err2 := number(hi)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("cpu list %q: %q is not a CPU number or range", clip(s), clip(part))
		}
		if b < a {
			return nil, fmt.Errorf("cpu list %q: range %q runs backwards", clip(s), clip(part))
		}
		// The kernel never repeats a CPU; a list whose ranges add up to
		// more than twice every possible CPU is hostile (a 64 KiB list of
		// "0-65536," would otherwise cost seconds).
		expanded += (b-a)/stride + 1
		if expanded > maxExpanded {
			return nil, fmt.Errorf("cpu list %q: ranges name more than %d CPUs in all", clip(s), maxExpanded)
		}
		for c := a; c <= b; c += stride {
			seen[c] = true
		}
	}
	out := make(Set, 0, len(seen))
	for c := range seen {
		out = append(out, c)
	}
	sort.Ints(out)
	return out, nil
}

func number(s string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return 0, err
	}
	if n < 0 || n > MaxCPU {
		return 0, fmt.Errorf("CPU number %d out of range 0..%d", n, MaxCPU)
	}
	return n, nil
}

// Of returns the set of the given CPUs, sorted and without duplicates.
func Of(cpus ...int) Set {
	m := make(map[int]bool, len(cpus))
	out := make(Set, 0, len(cpus))
	for _, c := range cpus {
		if !m[c] {
			m[c] = true
			out = append(out, c)
		}
	}
	sort.Ints(out)
	return out
}

// Contains reports whether c is in s.
func (s Set) Contains(c int) bool {
	i := sort.SearchInts(s, c)
	return i < len(s) && s[i] == c
}

// Len is the number of CPUs in s.
func (s Set) Len() int { return len(s) }

// String prints s in the kernel's compact form: "0-3,8,10-11".
func (s Set) String() string {
	var b strings.Builder
	for i := 0; i < len(s); {
		j := i
		for j+1 < len(s) && s[j+1] == s[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(s[i]))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(s[j]))
		}
		i = j + 1
	}
	return b.String()
}

// Commas prints s as a plain comma list, "0,8,16", as VDSM's onlineCpus does.
func (s Set) Commas() string {
	parts := make([]string, len(s))
	for i, c := range s {
		parts[i] = strconv.Itoa(c)
	}
	return strings.Join(parts, ",")
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// ParseMask reads a kernel CPU mask such as "00000000,000000f0" (comma
// separated 32-bit hexadecimal words, most significant first, as in
// /sys/devices/system/cpu/cpu0/topology/thread_siblings). A mask that would
// name a CPU above MaxCPU is refused.
func ParseMask(s string) (Set, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Set{}, nil
	}
	// Count the hex digits first: the position of a digit gives its CPUs.
	digits := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ',':
		case hexValue(c) >= 0:
			digits++
		default:
			return nil, fmt.Errorf("cpu mask %q: %q is not a hexadecimal digit", clip(s), c)
		}
	}
	out := Set{}
	pos := digits // digits left to read, the current one included
	for i := 0; i < len(s); i++ {
		v := hexValue(s[i])
		if v < 0 {
			continue
		}
		pos--
		if v == 0 {
			continue
		}
		base := pos * 4
		for b := 3; b >= 0; b-- {
			if v&(1<<uint(b)) == 0 {
				continue
			}
			if base+b > MaxCPU {
				return nil, fmt.Errorf("cpu mask %q names CPU %d, above %d", clip(s), base+b, MaxCPU)
			}
			out = append(out, base+b)
		}
	}
	sort.Ints(out)
	return out, nil
}

func hexValue(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}
