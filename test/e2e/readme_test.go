package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"mvdan.cc/sh/v3/syntax"

	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/client"
	"polyvirt/internal/libvirtns"
)

// readmeCommand is one command of a README code block.
type readmeCommand struct {
	// Line is its line in the README.
	Line int
	// Text is the command as written.
	Text string
	// Args are its words, the program first.
	Args []string
}

// readmeSection finds, in a Markdown document, the first ```sh block after
// the heading that starts with heading ("## Next"), and returns its text
// and the line of its first line.
func readmeSection(doc, heading string) (string, int, error) {
	lines := strings.Split(doc, "\n")
	in, start := false, -1
	var block []string
	for i, l := range lines {
		switch {
		case !in && start < 0 && strings.HasPrefix(l, heading):
			in = true
		case in && start < 0 && strings.HasPrefix(l, "## "):
			return "", 0, fmt.Errorf("section %q has no ```sh block", heading)
		case in && start < 0 && strings.TrimSpace(l) == "```sh":
			start = i + 2 // the next line, counted from 1
		case start >= 0 && strings.TrimSpace(l) == "```":
			return strings.Join(block, "\n") + "\n", start, nil
		case start >= 0:
			block = append(block, l)
		}
	}
	if !in {
		return "", 0, fmt.Errorf("no section %q", heading)
	}
	return "", 0, fmt.Errorf("section %q: its ```sh block is not closed", heading)
}

// parseCommands reads a shell code block (firstLine is the line of its
// first line in the document): simple commands of literal words (quotes
// allowed), separated by new lines or ';', comments aside. Anything a
// test cannot run as it is written (variables, pipes, redirections,
// substitutions) is an error that names the line.
func parseCommands(block string, firstLine int) ([]readmeCommand, error) {
	f, err := syntax.NewParser(syntax.KeepComments(false)).Parse(strings.NewReader(block), "README")
	if err != nil {
		return nil, err
	}
	var out []readmeCommand
	for _, st := range f.Stmts {
		line := firstLine + int(st.Pos().Line()) - 1
		call, ok := st.Cmd.(*syntax.CallExpr)
		if !ok || st.Negated || st.Background || st.Coprocess || len(st.Redirs) > 0 || len(call.Assigns) > 0 || len(call.Args) == 0 {
			return nil, fmt.Errorf("line %d: not a simple command", line)
		}
		var args []string
		for _, w := range call.Args {
			s, err := literal(w)
			if err != nil {
				return nil, fmt.Errorf("line %d: %v", line, err)
			}
			args = append(args, s)
		}
		var text bytes.Buffer
		if err := syntax.NewPrinter().Print(&text, st); err != nil {
			return nil, err
		}
		out = append(out, readmeCommand{Line: line, Text: strings.TrimSpace(text.String()), Args: args})
	}
	return out, nil
}

// literal is a word made of literal text and quotes only.
func literal(w *syntax.Word) (string, error) {
	var b strings.Builder
	for _, p := range w.Parts {
		switch x := p.(type) {
		case *syntax.Lit:
			b.WriteString(x.Value)
		case *syntax.SglQuoted:
			b.WriteString(x.Value)
		case *syntax.DblQuoted:
			for _, q := range x.Parts {
				l, ok := q.(*syntax.Lit)
				if !ok {
					return "", fmt.Errorf("%q: only literal text in double quotes", w.Lit())
				}
				b.WriteString(l.Value)
			}
		default:
			return "", fmt.Errorf("a word that is not literal text (%T)", p)
		}
	}
	return b.String(), nil
}

// readmeCommands are the commands of the README's walkthrough under the
// heading that starts with heading.
func readmeCommands(t *testing.T, heading string) []readmeCommand {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join(moduleRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	block, first, err := readmeSection(string(doc), heading)
	if err != nil {
		t.Fatalf("README.md: %v", err)
	}
	cmds, err := parseCommands(block, first)
	if err != nil {
		t.Fatalf("README.md: %v", err)
	}
	return cmds
}

// readmeNext is the README's "Next" walkthrough.
func readmeNext(t *testing.T) []readmeCommand { return readmeCommands(t, "## Next") }

// TestREADMENextParses: the README's walkthrough is commands of polyvirt
// the walkthrough test can run (no engine needed to check that).
func TestREADMENextParses(t *testing.T) {
	cmds := readmeNext(t)
	if len(cmds) < 5 {
		t.Fatalf("the README's Next section has %d commands", len(cmds))
	}
	for _, c := range cmds {
		if c.Args[0] != "polyvirt" {
			t.Errorf("README.md:%d: %q is not a polyvirt command", c.Line, c.Text)
		}
	}
}

func TestParseCommands(t *testing.T) {
	tests := []struct {
		name, block string
		want        [][]string
		err         string
	}{
		{"comments and separators", "polyvirt host list   # a comment\n#   output shown\npolyvirt vm stop web1; polyvirt vm delete --force 'a b' \"c\"\n",
			[][]string{{"polyvirt", "host", "list"}, {"polyvirt", "vm", "stop", "web1"}, {"polyvirt", "vm", "delete", "--force", "a b", "c"}}, ""},
		{"a variable", "polyvirt vm start $VM\n", nil, "line 11: a word that is not literal text"},
		{"a pipe", "polyvirt vm list | grep Up\n", nil, "line 11: not a simple command"},
		{"a redirection", "polyvirt caps -o json > host.json\n", nil, "line 11: not a simple command"},
		{"broken quotes", "polyvirt 'vm\n", nil, "reached EOF"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmds, err := parseCommands(tc.block, 11)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got [][]string
			for _, c := range cmds {
				got = append(got, c.Args)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if cmds[1].Line != 13 || cmds[2].Line != 13 || cmds[1].Text != "polyvirt vm stop web1" {
				t.Errorf("lines and texts: %+v", cmds)
			}
		})
	}
	if _, _, err := readmeSection("# x\n## Next\ntext\n## Other\n```sh\nls\n```\n", "## Next"); err == nil {
		t.Errorf("a block of another section was taken")
	}
}

func FuzzParseCommands(f *testing.F) {
	f.Add("polyvirt host list  # c\npolyvirt vm stop web1; polyvirt events\n")
	f.Add("a 'b' \"c\" $d | e > f\n")
	f.Fuzz(func(t *testing.T, block string) {
		cmds, err := parseCommands(block, 1)
		if err != nil {
			return
		}
		for _, c := range cmds {
			if len(c.Args) == 0 || c.Line < 1 {
				t.Fatalf("command %+v", c)
			}
		}
	})
}

// upProc is one `polyvirt up` process, run as a user runs it.
type upProc struct {
	t      *testing.T
	args   []string
	env    []string
	cmd    *exec.Cmd
	exited chan struct{}
	out    *lockedBuffer
}

// start runs polyvirt up and waits until it printed what to do next.
func (u *upProc) start() {
	u.t.Helper()
	u.out = &lockedBuffer{}
	u.cmd = exec.Command(polyvirtBin(u.t), u.args...)
	u.cmd.Env = append(os.Environ(), u.env...)
	u.cmd.Stdout, u.cmd.Stderr = u.out, u.out
	if err := u.cmd.Start(); err != nil {
		u.t.Fatal(err)
	}
	exited := make(chan struct{})
	u.exited = exited
	go func() { u.cmd.Wait(); close(exited) }()
	deadline := time.After(3 * time.Minute)
	for !strings.Contains(u.out.String(), "\nNext:\n") {
		select {
		case <-exited:
			u.t.Fatalf("polyvirt up exited:\n%s", u.out.String())
		case <-deadline:
			u.stop()
			u.t.Fatalf("polyvirt up did not get ready:\n%s", u.out.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stop sends SIGTERM (Ctrl-C's effect) and waits for the exit; it tells
// whether polyvirt up ended by itself with status 0.
func (u *upProc) stop() bool {
	if u.cmd == nil || u.cmd.Process == nil {
		return false
	}
	u.cmd.Process.Signal(syscall.SIGTERM)
	clean := true
	select {
	case <-u.exited:
	case <-time.After(30 * time.Second):
		u.cmd.Process.Kill()
		<-u.exited
		clean = false
	}
	clean = clean && u.cmd.ProcessState.Success()
	if u.t.Failed() {
		u.t.Logf("polyvirt up:\n%s", u.out.String())
	}
	u.cmd = nil
	return clean
}

// walkthroughTimeout bounds one README command (vm create --start of a
// POWER guest under TCG, vm stop's time-out).
const walkthroughTimeout = 5 * time.Minute

// screenWait bounds the wait for a screenshot that is not blank.
const screenWait = 2 * time.Minute

// stopWait bounds the wait for a VM to be Down after vm stop answered
// (the guest asked first, powered off after the stop's time-out).
const stopWait = 3 * time.Minute

// The walkthrough stays on the POWER guest's console while it boots, as
// the README says ("the kernel boots, then the installer asks for a
// language"): until the installer shows its first question
// (installerAsks on the console), for consoleBootWait at most. Migrated
// before that (vm migrate comes next), in the middle of SLOF or of the
// kernel unpacking the installer's 30 MB initramfs, the guest (QEMU 7.2,
// TCG, pseries) was seen to crash on its new host with corrupted memory
// on a loaded machine; a fixed 20 s on the console was not always enough
// for the boot there, and migrated seconds after its kernel had booted
// (kernelBooted), as the installer's init started, it crashed once more
// (on an idle machine).
const (
	kernelBooted    = "Run /init as init process"
	installerAsks   = "Select a language"
	consoleBootWait = 5 * time.Minute
)

// TestREADMEWalkthrough runs the README's "Next" section exactly as it is
// written, command by command (the code block is read from README.md, so
// the test changes with the README), as a user does: `polyvirt up` running
// as a process on the real libvirtd, the commands in another "terminal",
// in a directory with the repository's examples/. Every command must
// succeed, and some are checked further: vm console is attached to the
// POWER guest during its boot, until its kernel has booted, on a terminal
// and detached with ctrl-]; vm screenshot writes a PNG that is not blank; vm create --start
// leaves the VM Up; vm stop leaves it Down (after its time-out when the
// guest ignores the request); vm delete --force removes the VM and its
// domain; host show prints recent statistics without a deleted VM. Before
// the commands, what the README says of the web UI: polyvirt up prints its
// address and the administrator's password file, and that password signs
// in there.
func TestREADMEWalkthrough(t *testing.T) {
	requireMigratingQEMU(t)
	requirePPCKernel(t)
	cmds := readmeNext(t)
	dir := t.TempDir()
	domPrefix := "rdm" + randomSuffix()[:5] + "-"
	removeDomainsAtCleanup(t, domPrefix)
	cfg := filepath.Join(dir, "cli.json")
	env := []string{client.EnvConfig + "=" + cfg, client.EnvEngine + "=", client.EnvTokenFile + "=", client.EnvCAFile + "="}
	// The README's names as they are (clusters power and x86_64, hosts
	// power8-a and x86_64-a) in an engine of this test; the libvirt
	// domains of its own prefix.
	// power8-b's libvirtd (the lab's own) and its domains outlive polyvirt
	// up: stopped after it, as polyvirt up --down does.
	t.Cleanup(func() { downLab(t, filepath.Join(dir, "lab")) })
	up := &upProc{t: t, env: env, args: []string{"up", "--data-dir", filepath.Join(dir, "lab"), "--listen", "127.0.0.1:0",
		"--domain-prefix", domPrefix}}
	up.start()
	t.Cleanup(func() { up.stop() })
	out := up.out.String()
	for _, want := range []string{"a new engine was created", "host    power8-a", "IBM POWER8  (fake KVM, profile s822l-power8e)",
		"Logged in as admin: the CLI's configuration is " + cfg} {
		if !strings.Contains(out, want) {
			t.Errorf("polyvirt up lacks %q:\n%s", want, out)
		}
	}
	checkWebUIAddress(t, out, cfg, filepath.Join(dir, "lab", "admin.password"))
	work := filepath.Join(dir, "work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(moduleRoot(t), "examples"), filepath.Join(work, "examples")); err != nil {
		t.Fatal(err)
	}
	c := &cli{t: t, env: env}
	w := &walkthrough{t: t, c: c, env: env, dir: work, domPrefix: domPrefix, deleted: map[string]bool{}}
	var report []string
	for i, cmd := range cmds {
		t0 := time.Now()
		problems := w.step(cmd)
		verdict := "ok"
		if len(problems) > 0 {
			verdict = "FAILED: " + strings.Join(problems, "; ")
			t.Errorf("README.md:%d %s: %s", cmd.Line, cmd.Text, strings.Join(problems, "; "))
		}
		report = append(report, fmt.Sprintf("%2d. README.md:%d  %s  (%.1fs)  %s", i+1, cmd.Line, cmd.Text, time.Since(t0).Seconds(), verdict))
	}
	t.Logf("the README's walkthrough, step by step:\n%s", strings.Join(report, "\n"))
	// After the walkthrough: a host's statistics are recent and list no
	// deleted VM (within a statistics interval, 2 s, and a reading).
	time.Sleep(3 * time.Second)
	for _, h := range []string{"power8-a", "x86_64-a"} {
		out := c.run("", "host", "show", h)
		if age, ok := statsAge(out); !ok || age > 10*time.Second {
			t.Errorf("host show %s: statistics not recent (%s, %v):\n%s", h, age, ok, out)
		}
		for name := range w.deleted {
			if regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` `).MatchString(out) {
				t.Errorf("host show %s: the deleted VM %s is in its statistics:\n%s", h, name, out)
			}
		}
	}
	if !up.stop() {
		t.Errorf("polyvirt up did not end cleanly on SIGTERM")
	}
	if !strings.Contains(up.out.String(), "polyvirt up: stopping the agents and the engine (the VMs keep running)") {
		t.Errorf("polyvirt up did not say it stopped:\n%s", up.out.String())
	}
}

// webUILine is polyvirt up's line with the web UI's address and the file
// of the administrator's password.
var webUILine = regexp.MustCompile(`(?m)^  web UI  (https://\S+)/   \(sign in as admin, password in (\S+)\)$`)

// checkWebUIAddress checks what the README says of the web UI: polyvirt up
// prints its address (the engine's) and the file of the administrator's
// password; the address serves the UI's page, and the password signs in
// (a session cookie Secure, HttpOnly, SameSite=Strict).
func checkWebUIAddress(t *testing.T, upOut, cliConfig, passwordFile string) {
	t.Helper()
	m := webUILine.FindStringSubmatch(upOut)
	if m == nil {
		t.Errorf("polyvirt up does not print the web UI's address:\n%s", upOut)
		return
	}
	url, file := m[1], m[2]
	if file != passwordFile {
		t.Errorf("polyvirt up names the password file %s; want %s", file, passwordFile)
	}
	cfg, err := client.LoadConfig(cliConfig)
	if err != nil {
		t.Fatal(err)
	}
	if url != cfg.Engine {
		t.Errorf("the web UI is at %s, the engine at %s", url, cfg.Engine)
	}
	pw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(cfg.CA)) {
		t.Fatalf("the CLI's configuration has no CA")
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	resp, err := hc.Get(url + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), `<script type="module"`) {
		t.Errorf("GET %s/: %d, no web UI in the binary (scripts/build-ui.sh, then build polyvirt again):\n%.300s", url, resp.StatusCode, page)
	}
	body, _ := json.Marshal(engineapi.SignInRequest{Name: "admin", Password: strings.TrimSpace(string(pw))})
	resp, err = hc.Post(url+"/api/v1/session", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("signing in as admin with the password of %s: %d %s", file, resp.StatusCode, answer)
		return
	}
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "__Host-polyvirt-session" {
			cookie = c
		}
	}
	if cookie == nil || !cookie.Secure || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode {
		t.Errorf("the sign-in's session cookie: %+v", cookie)
	}
}

// walkthrough runs the README's commands and checks what each did.
type walkthrough struct {
	t         *testing.T
	c         *cli
	env       []string
	dir       string
	domPrefix string
	// deleted are the VMs the walkthrough deleted.
	deleted map[string]bool
}

// run runs one command in the walkthrough's directory; it returns the
// output and the problems (an exit status other than 0).
func (w *walkthrough) run(args []string) (stdout, stderr string, problems []string) {
	cmd := exec.Command(args[0], args[1:]...)
	if args[0] == "polyvirt" {
		cmd = exec.Command(polyvirtBin(w.t), args[1:]...)
	}
	cmd.Dir = w.dir
	cmd.Env = append(os.Environ(), w.env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Start(); err != nil {
		return "", "", []string{err.Error()}
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(walkthroughTimeout):
		cmd.Process.Kill()
		err = <-done
		problems = append(problems, fmt.Sprintf("still running after %s", walkthroughTimeout))
	}
	if err != nil {
		problems = append(problems, fmt.Sprintf("%v\n%s%s", err, o.String(), e.String()))
	}
	return o.String(), e.String(), problems
}

// step runs one README command and checks it.
func (w *walkthrough) step(cmd readmeCommand) []string {
	args := cmd.Args
	sub := strings.Join(args[1:min(3, len(args))], " ")
	switch sub {
	case "vm console":
		return w.console(args)
	case "vm migrate":
		return w.migrate(args)
	}
	out, errOut, problems := w.run(args)
	if len(problems) > 0 {
		return problems
	}
	check := func(ok bool, format string, a ...any) {
		if !ok {
			problems = append(problems, fmt.Sprintf(format, a...))
		}
	}
	switch sub {
	case "host list":
		var hosts []engineapi.Host
		w.c.json(&hosts, "host", "list")
		for _, h := range hosts {
			check(h.Status == "Up", "host %s is %s", h.Name, h.Status)
			check(strings.Contains(out, h.Name), "host %s not listed:\n%s", h.Name, out)
		}
		// power8-b, on a libvirtd of the lab's own, when this machine
		// can run one.
		want := 2
		if libvirtns.Require() == "" {
			want = 3
		}
		check(len(hosts) == want, "%d hosts, want %d", len(hosts), want)
	case "vm create":
		name := vmNameOf(w.t, args, w.dir)
		v := w.c.vm(name)
		if hasFlag(args, "--start") {
			check(strings.Contains(out, "running ("), "vm create --start did not say the VM runs:\n%s", out)
			check(v.State == "Up", "VM %s is %s, not Up", name, v.State)
			check(domainRunning(w.t, w.domPrefix+v.Host+"-"+name), "the domain of VM %s does not run", name)
		}
	case "vm screenshot":
		file := filepath.Join(w.dir, args[3]+".png")
		if len(args) > 4 && !strings.HasPrefix(args[4], "-") {
			file = filepath.Join(w.dir, args[4])
		}
		check(strings.Contains(errOut, "wrote "+args[len(args)-1]), "vm screenshot did not say what it wrote: %q", errOut)
		// A guest's screen is blank for moments (the installer clears
		// it as it starts): the same command again, as a user would,
		// until the screen shows something; each run must succeed.
		deadline := time.Now().Add(screenWait)
		for attempt := 1; ; attempt++ {
			b, err := os.ReadFile(file)
			if err != nil {
				return append(problems, err.Error())
			}
			img, err := png.Decode(bytes.NewReader(b))
			if err != nil {
				return append(problems, fmt.Sprintf("%s is not a PNG: %v", file, err))
			}
			if colours(img) > 1 {
				w.t.Logf("vm screenshot: %dx%d, not blank, at attempt %d", img.Bounds().Dx(), img.Bounds().Dy(), attempt)
				break
			}
			if time.Now().After(deadline) {
				return append(problems, fmt.Sprintf("the screenshot %s (%dx%d) stayed blank for %s (%d attempts)", file,
					img.Bounds().Dx(), img.Bounds().Dy(), screenWait, attempt))
			}
			time.Sleep(2 * time.Second)
			if _, _, p := w.run(args); len(p) > 0 {
				return append(problems, p...)
			}
		}
	case "vm list":
		var vms []engineapi.VM
		w.c.json(&vms, "vm", "list")
		for _, v := range vms {
			check(strings.Contains(out, v.Name), "VM %s not listed:\n%s", v.Name, out)
			check(v.State == "Up", "VM %s is %s", v.Name, v.State)
		}
	case "host show":
		check(!strings.Contains(out, "{"), "raw JSON in host show:\n%s", out)
		age, ok := statsAge(out)
		// The statistics interval of polyvirt up is 2 s (engine and
		// agents): a reading is a few seconds old at most.
		check(ok && age <= 10*time.Second, "statistics not recent (%s, %v):\n%s", age, ok, out)
		for name := range w.deleted {
			check(!regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(name)+` `).MatchString(out), "the deleted VM %s is in the statistics:\n%s", name, out)
		}
		var vms []engineapi.VM
		w.c.json(&vms, "vm", "list", "--host", args[3])
		// A VM that arrived a moment ago (the maintenance's evacuation
		// just before) is in the host's next statistics, taken every 2 s:
		// the same command again, as a user would, until it is there.
		missing := func() string {
			for _, v := range vms {
				if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(v.Name) + ` +running`).MatchString(out) {
					return v.Name
				}
			}
			return ""
		}
		deadline := time.Now().Add(statsWait)
		for missing() != "" && time.Now().Before(deadline) {
			time.Sleep(time.Second)
			var p []string
			if out, _, p = w.run(args); len(p) > 0 {
				return append(problems, p...)
			}
		}
		if name := missing(); name != "" {
			check(false, "VM %s of the host is not in its statistics after %s:\n%s", name, statsWait, out)
		}
	case "vm stop":
		name := args[3]
		v := w.c.vm(name)
		if v.State != "Down" {
			// vm stop may answer before the time-out: it ends Down.
			deadline := time.Now().Add(stopWait)
			for v.State != "Down" && time.Now().Before(deadline) {
				time.Sleep(time.Second)
				v = w.c.vm(name)
			}
		}
		check(v.State == "Down", "VM %s is %s after vm stop, not Down", name, v.State)
		if v.State == "Down" {
			time.Sleep(5 * time.Second) // it stays Down
			v = w.c.vm(name)
			check(v.State == "Down", "VM %s went back to %s after vm stop", name, v.State)
		}
	case "vm delete":
		for _, name := range args[3:] {
			if strings.HasPrefix(name, "-") {
				continue
			}
			w.deleted[name] = true
			var vms []engineapi.VM
			w.c.json(&vms, "vm", "list")
			for _, v := range vms {
				check(v.Name != name, "VM %s is still listed (%s)", name, v.State)
			}
			for _, h := range []string{"power8-a", "x86_64-a"} {
				check(!domainExists(w.t, w.domPrefix+h+"-"+name), "the domain of VM %s is still on %s", name, h)
			}
		}
	case "host maintenance":
		host := args[3]
		check(strings.Contains(out, "Host "+host+" is in Maintenance."), "host maintenance did not say the host is in Maintenance:\n%s", out)
		var h engineapi.Host
		w.c.json(&h, "host", "show", host)
		check(h.Status == "Maintenance", "host %s is %s, not Maintenance", host, h.Status)
		var vms []engineapi.VM
		w.c.json(&vms, "vm", "list")
		for _, v := range vms {
			check(v.Host != host, "VM %s is still on %s (%s)", v.Name, host, v.State)
			check(v.State == "Up" || v.State == "Down", "VM %s is %s after the evacuation", v.Name, v.State)
			if v.State == "Up" && v.Host == "power8-a" {
				check(domainRunning(w.t, w.domPrefix+v.Host+"-"+v.Name), "the domain of VM %s does not run on %s", v.Name, v.Host)
			}
		}
	case "host activate":
		host := args[3]
		deadline := time.Now().Add(time.Minute)
		var h engineapi.Host
		for w.c.json(&h, "host", "show", host); h.Status != "Up" && time.Now().Before(deadline); w.c.json(&h, "host", "show", host) {
			time.Sleep(time.Second)
		}
		check(h.Status == "Up", "host %s is %s after host activate, not Up", host, h.Status)
	case "events":
		check(strings.Contains(out, "debian-installer-ppc64el"), "the events do not speak of the POWER VM:\n%s", out)
	}
	return problems
}

// migrate runs vm migrate with the VM's console attached on a terminal
// meanwhile (as in another terminal): the migration must end on the
// destination given, with its time and downtime, the domain gone from the
// source, and the console still attached afterwards (ctrl-] detaches it).
func (w *walkthrough) migrate(args []string) []string {
	name, to := args[3], ""
	for i, a := range args {
		if a == "--to" && i+1 < len(args) {
			to = args[i+1]
		}
	}
	from := w.c.vm(name).Host
	master, slave := openPTY(w.t)
	con := exec.Command(polyvirtBin(w.t), "vm", "console", name)
	con.Dir = w.dir
	con.Env = append(os.Environ(), w.env...)
	conOut := &lockedBuffer{}
	con.Stdin, con.Stdout, con.Stderr = slave, conOut, conOut
	if err := con.Start(); err != nil {
		return []string{err.Error()}
	}
	conDone := make(chan error, 1)
	go func() { conDone <- con.Wait() }()
	defer func() {
		if con.ProcessState == nil {
			con.Process.Kill()
		}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(conOut.String(), "Connected to the serial console of VM "+name) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	out, _, problems := w.run(args)
	if len(problems) > 0 {
		return problems
	}
	check := func(ok bool, format string, a ...any) {
		if !ok {
			problems = append(problems, fmt.Sprintf(format, a...))
		}
	}
	m := regexp.MustCompile(`Migrated VM (\S+) to (\S+) in \S+ \(downtime (\d+) ms`).FindStringSubmatch(out)
	check(m != nil && m[1] == name && (to == "" || m[2] == to), "vm migrate did not say it migrated %s to %s:\n%s", name, to, out)
	check(strings.Contains(out, "copying-memory"), "vm migrate showed no progress:\n%s", out)
	v := w.c.vm(name)
	check(v.State == "Up" && v.Host != from && (to == "" || v.Host == to), "VM %s is %s on %s after the migration from %s", name, v.State, v.Host, from)
	check(!domainExists(w.t, w.domPrefix+from+"-"+name), "the domain of VM %s is still on %s", name, from)
	select {
	case err := <-conDone:
		return append(problems, fmt.Sprintf("the console did not stay attached during the migration (%v):\n%s", err, tailString(conOut.String(), 2000)))
	case <-time.After(3 * time.Second):
	}
	if _, err := master.Write([]byte{0x1d}); err != nil {
		return append(problems, err.Error())
	}
	select {
	case err := <-conDone:
		check(err == nil && strings.Contains(conOut.String(), "Detached from VM "+name), "ctrl-] after the migration: %v\n%s", err, tailString(conOut.String(), 500))
	case <-time.After(30 * time.Second):
		problems = append(problems, "ctrl-] did not detach within 30 s after the migration")
	}
	w.t.Logf("vm migrate:\n%s", out)
	return problems
}

// console attaches the console on a terminal until the guest's installer
// asks its first question (installerAsks shown; consoleBootWait at most),
// then types ctrl-]: it must detach with status 0, having shown the
// guest's boot.
func (w *walkthrough) console(args []string) []string {
	master, slave := openPTY(w.t)
	cmd := exec.Command(polyvirtBin(w.t), args[1:]...)
	cmd.Dir = w.dir
	cmd.Env = append(os.Environ(), w.env...)
	out := &lockedBuffer{}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, out, out
	if err := cmd.Start(); err != nil {
		return []string{err.Error()}
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var problems []string
	t0 := time.Now()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(consoleBootWait)
wait:
	for !strings.Contains(out.String(), installerAsks) {
		select {
		case err := <-done:
			return []string{fmt.Sprintf("vm console ended by itself (%v):\n%s", err, tailString(out.String(), 2000))}
		case <-timeout:
			stage := "its kernel did not boot (no " + strconv.Quote(kernelBooted) + ")"
			if strings.Contains(out.String(), kernelBooted) {
				stage = "its kernel booted, but its installer did not ask"
			}
			problems = append(problems, fmt.Sprintf("the guest's installer did not ask %q on its console within %s: %s", installerAsks, consoleBootWait, stage))
			break wait
		case <-tick.C:
		}
	}
	attached := time.Since(t0).Round(time.Second)
	seen := out.String()
	banner := "Connected to the serial console of VM " + args[3]
	i := strings.Index(seen, banner)
	if i < 0 {
		problems = append(problems, "no connection message:\n"+tailString(seen, 2000))
	} else if guest := strings.TrimSpace(seen[i+len(banner):]); len(guest) < 40 {
		// The guest's firmware and kernel print from the start: what the
		// console showed is theirs, beyond the banner.
		problems = append(problems, fmt.Sprintf("the console showed no output of the guest in %s:\n%s", attached, seen))
	}
	if _, err := master.Write([]byte{0x1d}); err != nil {
		return append(problems, err.Error())
	}
	select {
	case err := <-done:
		if err != nil {
			problems = append(problems, fmt.Sprintf("ctrl-]: %v", err))
		}
		if !strings.Contains(out.String(), "Detached from VM "+args[3]) {
			problems = append(problems, "no detach message:\n"+tailString(out.String(), 500))
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		problems = append(problems, "ctrl-] did not detach within 30 s")
	}
	w.t.Logf("vm console showed %d bytes in %s, the last:\n%s", len(seen), attached, tailString(seen, 600))
	return problems
}

// statsAge reads "Statistics, taken 1.2s ago" of host show.
// statsWait is how long host show may take to list a VM that has just
// arrived on the host: a few statistics intervals of polyvirt up (2 s).
const statsWait = 10 * time.Second

func statsAge(out string) (time.Duration, bool) {
	m := regexp.MustCompile(`Statistics, taken (\S+) ago`).FindStringSubmatch(out)
	if m == nil {
		return 0, false
	}
	d, err := time.ParseDuration(m[1])
	return d, err == nil
}

// hasFlag tells whether args hold the flag.
func hasFlag(args []string, flag string) bool {
	for _, a := range args {
		if a == flag {
			return true
		}
	}
	return false
}

// vmNameOf is the name of the VM a vm create command makes: its first
// argument that is not a flag (nor a flag's value), else --name, else the
// name in its definition file.
func vmNameOf(t *testing.T, args []string, dir string) string {
	t.Helper()
	valued := map[string]bool{"--cluster": true, "-f": true, "--file": true, "--name": true, "--memory": true, "--cpus": true, "--arch": true,
		"--host": true, "--cpu-model": true, "--machine": true, "--kernel": true, "--initrd": true, "--cmdline": true, "--disk": true,
		"--display": true, "-o": true, "--output": true, "--timeout": true}
	var file, name string
	for i := 3; i < len(args); i++ {
		a := args[i]
		switch {
		case valued[a] && i+1 < len(args):
			switch a {
			case "-f", "--file":
				file = args[i+1]
			case "--name":
				name = args[i+1]
			}
			i++
		case !strings.HasPrefix(a, "-"):
			return a
		}
	}
	if name != "" {
		return name
	}
	if file == "" {
		t.Fatalf("%v: no VM name", args)
	}
	out, errOut, code := runCLI(t, nil, "", "vm", "validate", "-o", "json", filepath.Join(dir, file))
	var res struct{ VM struct{ Name string } }
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.VM.Name == "" {
		t.Fatalf("the VM name in %s: %v (exit %d) %s", file, errors.Join(err), code, errOut)
	}
	return res.VM.Name
}
