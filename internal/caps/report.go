// Package caps joins what the host's files say (package hostinfo) and what
// libvirt says (package virtcaps) into one host capabilities report (the
// contract type hostreport.Report), and prints it as a text table, as JSON,
// or in VDSM's getCapabilities + getHardwareInfo vocabulary. The
// architecture rules it needs (vendor marker flags, the POWER CPU model
// ladder, KVM usability, fake-KVM values) come from package archspec.
package caps

// Unavailable is the value printed where a field could not be read.
const Unavailable = "unavailable"
