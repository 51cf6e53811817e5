package vmspec

import (
	"fmt"
	"path"
	"strings"

	"polyvirt/internal/api"
)

// MaxVolumeName is the longest volume name, in bytes.
const MaxVolumeName = 128

// CheckVolumeName says why s cannot name a volume, or returns nil. A volume
// is a file directly in its pool's directory, so its name is one path
// component that cannot climb out of the pool: 1 to MaxVolumeName letters,
// digits, '.', '_', '-', '+', '@'; it starts with a letter or a digit (no
// hidden files: the pool's marker and the uploads in progress are hidden),
// and it is neither "." nor "..", nor holds "/" or "..".
func CheckVolumeName(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("empty volume name")
	case len(s) > MaxVolumeName:
		return fmt.Errorf("volume name of %d bytes; at most %d", len(s), MaxVolumeName)
	case strings.Contains(s, "/"):
		return fmt.Errorf("%q holds a \"/\": a volume is a file directly in its pool", clip(s))
	case strings.Contains(s, ".."):
		return fmt.Errorf("%q holds \"..\": a volume name cannot climb out of its pool", clip(s))
	}
	for i, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if !ok && i > 0 {
			ok = strings.ContainsRune("._-+@", r)
		}
		if !ok {
			if i == 0 {
				return fmt.Errorf("%q: a volume name starts with a letter or a digit", clip(s))
			}
			return fmt.Errorf("%q: %q is not allowed in a volume name (letters, digits, '.', '_', '-', '+', '@')", clip(s), r)
		}
	}
	return nil
}

// CheckPoolName says why s cannot name a storage pool, or returns nil: 1 to
// 64 letters, digits, '.', '_', '-', starting with a letter or a digit.
func CheckPoolName(s string) error {
	if s == "" || len(s) > 64 {
		return fmt.Errorf("pool name %q: 1 to 64 characters", clip(s))
	}
	for i, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || (i > 0 && strings.ContainsRune("._-", r))
		if !ok {
			return fmt.Errorf("pool name %q: letters, digits, '.', '_' and '-', starting with a letter or a digit", clip(s))
		}
	}
	return nil
}

// checkDiskVolume checks a disk's pool and volume: both or neither, valid
// names, a file, and a source (when the engine filled it) that is the
// volume's file, directly in a directory.
func checkDiskVolume(p string, d Disk, errs *api.Errors) {
	if d.Pool == "" && d.Volume == "" {
		return
	}
	if d.Volume == "" {
		errs.Add(api.CodeDiskPool, p+".volume", "pool %q without a volume; name the volume (or remove pool)", clip(d.Pool))
		return
	}
	if err := CheckVolumeName(d.Volume); err != nil {
		errs.Add(api.CodeDiskVolumeName, p+".volume", "%v", err)
		return
	}
	if d.Pool == "" {
		errs.Add(api.CodeDiskPool, p+".pool", "volume %s needs its pool; give pool", d.Volume)
	} else if err := CheckPoolName(d.Pool); err != nil {
		errs.Add(api.CodeDiskPool, p+".pool", "%v", err)
	}
	if d.Type != "" && d.Type != "file" {
		errs.Add(api.CodeDiskSourceConflict, p+".type", "a volume is a file of its pool; remove type %q", clip(d.Type))
	}
	if d.Source != "" && path.Base(d.Source) != d.Volume {
		errs.Add(api.CodeDiskSourceConflict, p+".source", "%q is not the file of volume %s; give the volume or the source, not both", clip(d.Source), d.Volume)
	}
}
