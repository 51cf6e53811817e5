package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"polyvirt/internal/api"
	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/client"
	"polyvirt/internal/libvirtconn"
)

// TestHostPathPolicy: an administrator and a vm-manager try, through the
// engine and straight at the agent (the last line), to give a VM
// /etc/shadow, the host's own disk, a file behind a link out of an allowed
// directory, a console file and a console log of their choosing, and a
// kernel outside the allowed places; a link swapped after the VM was
// created is caught at its next start. Everything is refused with
// PATH_NOT_ALLOWED naming the field, a decoy file the attacks aim at stays
// intact byte for byte, and nothing is defined in libvirt but the one VM
// whose disk was allowed. A host path inside the allowed directories is
// an administrator's exception: the vm-manager's is refused at once with
// DISK_HOST_PATH_ADMIN_ONLY.
func TestHostPathPolicy(t *testing.T) {
	t.Parallel() // side by side with the package's other light tests (its doc)
	requireLibvirt(t)
	ctx := context.Background()
	sfx := randomSuffix()
	dir := t.TempDir()
	images := filepath.Join(dir, "images")
	if err := os.MkdirAll(images, 0o755); err != nil {
		t.Fatal(err)
	}
	decoy := filepath.Join(dir, "decoy")
	secret := make([]byte, 4096)
	rand.Read(secret)
	if err := os.WriteFile(decoy, secret, 0o600); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(images, "good.img")
	if err := os.WriteFile(good, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(decoy, filepath.Join(images, "out.img")); err != nil {
		t.Fatal(err)
	}
	current := filepath.Join(images, "current.img")
	if err := os.Symlink("good.img", current); err != nil {
		t.Fatal(err)
	}
	shadowBefore := fileHash(t, "/etc/shadow")

	// An engine, and this machine's agent whose images are in the test's
	// directory.
	eng := initEngine(t, "engine-paths", nil)
	eng.start()
	c := newCLI(t)
	c.run(eng.token+"\n", "login", "--engine", eng.url, "--ca-file", eng.caFile)
	c.run("", "cluster", "create", "x86", "--arch", "x86_64")
	cfg := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(cfg, []byte("host_paths:\n  disk: ["+images+"]\n  cdrom: ["+images+"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	host := "paths-" + sfx
	prefix := "e2e-" + host + "-"
	removeDomainsAtCleanup(t, prefix)
	agent := joinAgent(t, c, eng, host, "x86", "--config", cfg)
	waitHost(t, eng.api, host, 90*time.Second, hostStatus("Up"))
	var op engineapi.UserToken
	c.json(&op, "user", "add", "op-"+sfx, "--role", "vm-manager")
	ca, err := os.ReadFile(eng.caFile)
	if err != nil {
		t.Fatal(err)
	}
	opAPI, err := client.New(client.Options{Engine: eng.url, Token: op.Token, CAPEM: ca, Timeout: 60 * time.Second})
	if err != nil {
		t.Fatal(err)
	}

	def := func(name, extra string) json.RawMessage {
		return json.RawMessage(`{"name": "` + name + `", "arch": "x86_64", "memory": {"sizeMiB": 256}, "display": {"type": "none"}` + extra + `}`)
	}
	attacks := []struct {
		name, extra, field string
		// viaLink: the path is inside an allowed directory as written; only
		// the agent, following the link, sees where it leads.
		viaLink bool
	}{
		{"/etc/shadow as a disk", `, "disks": [{"source": "/etc/shadow"}]`, "disks[0].source", false},
		{"the host's disk", `, "disks": [{"source": "/dev/vda", "readOnly": true}]`, "disks[0].source", false},
		{"a link out of the images directory", `, "disks": [{"source": "` + filepath.Join(images, "out.img") + `"}]`, "disks[0].source", true},
		{"a console file of their choosing", `, "console": {"type": "file", "path": "` + decoy + `"}`, "console.path", false},
		{"a console log of their choosing", `, "console": {"type": "pty", "log": "` + decoy + `"}`, "console.log", false},
		{"a kernel of their choosing", `, "kernel": {"path": "` + decoy + `"}`, "kernel.path", false},
	}
	for who, cl := range map[string]*client.Client{"admin": eng.api, "vm-manager": opAPI} {
		for i, a := range attacks {
			name := strings.ReplaceAll(who, "-", "") + "-attack-" + string(rune('a'+i))
			_, err := cl.CreateVM(ctx, engineapi.VMRequest{Cluster: "x86", Definition: def(name, a.extra)})
			if a.viaLink && who == "vm-manager" {
				// A host path inside the allowed directories is an
				// administrator's exception: refused before any link is
				// looked at.
				if ce := asClientError(err); ce == nil || ce.Status != 403 || ce.Code != api.CodeDiskHostPathAdminOnly || ce.Field != a.field {
					t.Errorf("%s, %s: %v; want 403 %s at %s", who, a.name, err, api.CodeDiskHostPathAdminOnly, a.field)
				}
				continue
			}
			if a.viaLink {
				// The engine cannot see the link: the agent refuses when the
				// VM is started.
				if err != nil {
					t.Fatalf("%s, %s: create: %v", who, a.name, err)
				}
				_, err = cl.VMAction(ctx, name, "start", "")
			}
			if ce := asClientError(err); ce == nil || ce.Status != 422 || ce.Code != "PATH_NOT_ALLOWED" || !errorsName(ce, a.field) {
				t.Errorf("%s, %s: %v; want 422 PATH_NOT_ALLOWED naming %s", who, a.name, err, a.field)
			}
			if a.viaLink || err == nil {
				if err := cl.DeleteVM(ctx, name, true); err != nil {
					t.Errorf("%s: delete %s: %v", who, name, err)
				}
			}
		}
	}

	// Straight at the agent, with the engine's certificate: the same
	// definitions are refused at create, links followed.
	for i, a := range attacks {
		var e api.ErrorBody
		st := agent.do("POST", "/v1/vms", def("direct-"+string(rune('a'+i)), a.extra), &e)
		if st != 422 || e.Error.Code != "PATH_NOT_ALLOWED" || len(e.Errors) != 1 || e.Errors[0].Field != a.field {
			t.Errorf("agent, %s: %d %+v; want 422 PATH_NOT_ALLOWED at %s", a.name, st, e, a.field)
		}
	}
	if doms := domainsWithPrefix(t, prefix); len(doms) != 0 {
		t.Errorf("refused VMs were defined in libvirt: %v", doms)
	}

	// A link into the images directory runs (a host path: the
	// administrator's VM, which the vm-manager runs); swapped after, the
	// next start is refused before QEMU opens anything.
	if _, err := eng.api.CreateVM(ctx, engineapi.VMRequest{Cluster: "x86", Definition: def("linked", `, "disks": [{"source": "`+current+`"}]`)}); err != nil {
		t.Fatal(err)
	}
	if r, err := opAPI.VMAction(ctx, "linked", "start", ""); err != nil || r.Host != host {
		t.Fatalf("start with the link into the images directory: %+v %v", r, err)
	}
	if !domainRunning(t, prefix+"linked") {
		t.Errorf("the VM whose disk is allowed does not run")
	}
	if _, err := opAPI.VMAction(ctx, "linked", "destroy", ""); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(current); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(decoy, current); err != nil {
		t.Fatal(err)
	}
	_, err = opAPI.VMAction(ctx, "linked", "start", "")
	if ce := asClientError(err); ce == nil || ce.Code != "PATH_NOT_ALLOWED" || !errorsName(ce, "disks[0].source") || !strings.Contains(err.Error(), decoy) {
		t.Errorf("start after the link was swapped: %v; want PATH_NOT_ALLOWED naming disks[0].source and the decoy", err)
	}
	if st, ok := domainState(t, prefix+"linked"); !ok || st != libvirtconn.StateShutoff {
		t.Errorf("after the refused start the domain is %v (exists %v); want shut off", st, ok)
	}
	if v, err := opAPI.VM(ctx, "linked"); err != nil || v.State != "Down" {
		t.Errorf("after the refused start: %+v %v", v, err)
	}
	if doms := domainsWithPrefix(t, prefix); len(doms) != 1 || doms[0] != prefix+"linked" {
		t.Errorf("libvirt domains: %v; want only %slinked", doms, prefix)
	}

	// The decoy and the host's shadow file are as they were.
	if b, err := os.ReadFile(decoy); err != nil || !bytes.Equal(b, secret) {
		t.Errorf("the decoy changed (%d bytes, %v)", len(b), err)
	}
	if fileHash(t, "/etc/shadow") != shadowBefore {
		t.Errorf("/etc/shadow changed")
	}
}

// asClientError is the engine's error answer of a client call.
func asClientError(err error) *api.Error {
	var ce *api.Error
	if errors.As(err, &ce) {
		return ce
	}
	return nil
}

// errorsName tells whether an error answer names field (its own field or
// one of its details').
func errorsName(ce *api.Error, field string) bool {
	if ce.Field == field {
		return true
	}
	for _, d := range ce.Details {
		if d.Field == field {
			return true
		}
	}
	return false
}

// domainsWithPrefix lists the libvirt domains whose name starts with
// prefix.
func domainsWithPrefix(t *testing.T, prefix string) []string {
	t.Helper()
	c, err := libvirtconn.DialDomains(libvirtURI(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	doms, err := c.ListDomains(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range doms {
		if strings.HasPrefix(d.Name, prefix) {
			out = append(out, d.Name)
		}
	}
	return out
}

func fileHash(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}
