// Package livetest holds the tests of VM definitions and domain XML against
// a real libvirtd with real QEMU: define, start, read back, look at the
// screen and the serial console, destroy and undefine, leaving nothing
// behind.
//
// The tests dial POLYVIRT_LIBVIRT_URI (default qemu:///system). When
// libvirt cannot be reached they skip, unless POLYVIRT_REQUIRE_LIBVIRT=1,
// when they fail. VMs run under TCG (fake-KVM mode), so the tests need no
// usable KVM; their domains are named polyvirt-test-*.
package livetest
