// Package firmware is the agent side of POWER system firmware management:
// the firmware inventory of a host and the update workflow
// (upload → validate → flash → reboot → commit or reject) that IBM's
// procedure runs by hand with lsmcode, rpm and update_flash.
//
// # Inventory
//
// ReadInventory reads the machine identity (type-model, serial) and every
// firmware level the host shows: lsmcode's temporary, permanent and booted
// levels on architectures whose archspec mechanism is "update_flash", the
// device tree's ibm,opal/firmware and ibm,firmware-versions on OpenPOWER
// hosts, the DMI BIOS vendor, version and date elsewhere. The parsers
// (ParseLsmcode, ParseLsmcodeA, ParseValidation, ParseFlash, ParseManage,
// ParseUpdateFlashFailure) read the tools' real output; bad output is a
// *ParseError naming the field and the reason.
//
// # Images
//
// ExtractImage accepts the vendor's RPM as downloaded (01SV810_133_081.rpm)
// and extracts its .img in Go — lead, signature header, header, then the
// cpio payload compressed with gzip, bzip2, xz, lzma or zstd — or takes a
// bare .img.
//
// # The workflow
//
// A Manager drives one host's operation and persists it in
// DATADIR/firmware/state.json (written atomically: temporary file, fsync,
// rename, fsync of the directory), with the uploaded image in
// DATADIR/firmware/images/ID.img. The states:
//
//	idle ──Upload──▶ uploaded ──Validate──▶ validating ──▶ validated
//	                                             └──▶ failed
//	validated ──Flash (maintenance, no VM)──▶ flashing ──▶ rebooting
//	                                              └──▶ failed
//	rebooting ──(host rebooted) Resume──▶ awaiting-decision
//	awaiting-decision ──Commit──▶ committing ──▶ committed
//	awaiting-decision ──Reject──▶ rejecting  ──▶ rejected
//	uploaded, validated, rebooting (not rebooted) ──Cancel──▶ cancelled
//
// committed, rejected, failed and cancelled end an operation; Upload then
// starts the next one. A refused step (flash outside maintenance, commit of
// an image that did not boot) leaves the state as it is and sets
// LastError; a commit or reject whose update_flash fails goes back to
// awaiting-decision. Every step appends a Step (time, step, result,
// state, from level, to level, who, message) to the operation's step log,
// which the engine copies into its audit log. Operation.Since is when the
// current state was entered: the engine decides from it that a host did
// not come back from its reboot.
//
// # Interrupted operations
//
// The agent may be killed at any point, and update_flash -f reboots the
// host by design. The kernel boot id (proc/sys/kernel/random/boot_id),
// recorded when the flash starts, tells a reboot from an agent restart:
//
//   - validating when the agent starts: failed, CodeInterrupted (Open).
//     Validation changes nothing on the host, so it is not re-run behind
//     the operator's back; the image is kept and Validate may be asked
//     again.
//   - flashing or rebooting, new boot id: the host rebooted; Resume reads
//     lsmcode and moves to awaiting-decision when the temporary side holds
//     the projected level (failed, CodeFlashNotApplied, otherwise).
//   - flashing, same boot id: the agent restarted while update_flash -f
//     ran; failed, CodeInterrupted, with the warning that a staged image
//     is applied at the next reboot (a later Resume after a reboot still
//     notices it).
//   - committing or rejecting: Resume reads lsmcode; the banks tell whether
//     the step happened (committed or rejected) or not (awaiting-decision
//     again, LastError CodeInterrupted).
//
// Architecture questions go to archspec (HostRules.FirmwareUpdate): on an
// architecture without a mechanism every action answers
// NOT_SUPPORTED_ON_ARCH.
package firmware
