package hostinfo

import (
	"bytes"
	"errors"
	"io/fs"
	"strings"
)

// DMIPath is where the root holds /sys/class/dmi/id.
const DMIPath = "sys/class/dmi/id"

// notSpecified is the DMI placeholder for an empty field; it is omitted.
const notSpecified = "Not Specified"

// ReadDMI reads sys/class/dmi/id under fsys: the identity (sys_vendor,
// product_name, product_version, product_serial, product_uuid,
// product_family; Source "dmi") and the BIOS level (bios_version, with
// bios_date) as Firmware component "bios". A missing key or the value "Not
// Specified" is omitted; an unreadable key (product_serial and product_uuid
// are readable by root only) is a Problem. found is false when the directory
// does not exist or holds none of the keys.
func ReadDMI(fsys fs.FS) (id Identity, fw []Firmware, found bool, probs []Problem) {
	var p problems
	if _, err := fs.Stat(fsys, DMIPath); err != nil {
		p.addErr("identity", DMIPath, err, true)
		return Identity{}, nil, false, p.list
	}
	read := func(key string) string {
		name := DMIPath + "/" + key
		data, err := readFile(fsys, name, MaxAttrBytes)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				found = true // the key is there, only unreadable
			}
			p.addErr("identity", name, err, true)
			return ""
		}
		found = true
		return dmiValue(data)
	}
	id = Identity{
		Manufacturer: read("sys_vendor"),
		ProductName:  read("product_name"),
		Version:      read("product_version"),
		SerialNumber: read("product_serial"),
		UUID:         read("product_uuid"),
		Family:       read("product_family"),
	}
	bios := Firmware{Component: "bios", Vendor: read("bios_vendor"), Version: read("bios_version"), Date: read("bios_date")}
	if bios.Version != "" || bios.Date != "" {
		fw = append(fw, bios)
	}
	if found {
		id.Source = "dmi"
	}
	return id, fw, found, p.list
}

// dmiValue trims a DMI attribute and drops the "Not Specified" placeholder
// and binary garbage.
func dmiValue(data []byte) string {
	if bytes.IndexByte(data, 0) >= 0 {
		data = data[:bytes.IndexByte(data, 0)]
	}
	v := strings.TrimSpace(string(data))
	if v == notSpecified {
		return ""
	}
	return strings.ToValidUTF8(v, "\uFFFD")
}

// ParseDmidecode reads the text `dmidecode` prints (the "System Information"
// and "BIOS Information" sections) into the identity and BIOS level that
// sys/class/dmi/id would give on the same machine (Source "dmi"; "Not
// Specified" omitted). It is used for captured dmidecode outputs, where the
// sysfs files are not at hand. It fails when the text holds neither section.
func ParseDmidecode(data []byte) (Identity, []Firmware, error) {
	if bytes.IndexByte(data, 0) >= 0 {
		return Identity{}, nil, errors.New("binary data (NUL bytes), not dmidecode text")
	}
	var id Identity
	var bios Firmware
	section := ""
	seen := false
	set := func(dst *string, v string) {
		if *dst == "" && v != notSpecified {
			*dst = v
		}
	}
	s := string(data)
	for len(s) > 0 {
		line := s
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			line, s = s[:i], s[i+1:]
		} else {
			s = ""
		}
		line = strings.TrimRight(line, "\r")
		if line == "" {
			continue
		}
		if line[0] != '\t' && line[0] != ' ' {
			section = strings.TrimSpace(line)
			if section == "System Information" || section == "BIOS Information" {
				seen = true
			}
			continue
		}
		if strings.HasPrefix(line, "\t\t") {
			continue // a list item of a multi-line field
		}
		key, val, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		switch section {
		case "System Information":
			switch key {
			case "Manufacturer":
				set(&id.Manufacturer, val)
			case "Product Name":
				set(&id.ProductName, val)
			case "Version":
				set(&id.Version, val)
			case "Serial Number":
				set(&id.SerialNumber, val)
			case "UUID":
				set(&id.UUID, val)
			case "Family":
				set(&id.Family, val)
			}
		case "BIOS Information":
			switch key {
			case "Version":
				set(&bios.Version, val)
			case "Release Date":
				set(&bios.Date, val)
			}
		}
	}
	if !seen {
		return Identity{}, nil, errors.New("no System Information or BIOS Information section: not dmidecode output")
	}
	id.Source = "dmi"
	var fw []Firmware
	if bios.Version != "" || bios.Date != "" {
		bios.Component = "bios"
		fw = append(fw, bios)
	}
	return id, fw, nil
}
