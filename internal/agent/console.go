package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/sys/unix"
	"libvirt.org/go/libvirtxml"

	"polyvirt/internal/api"
)

// A guest must never depend on anyone reading its serial console: QEMU
// writes what the guest prints to the console's pty with the guest's vCPU
// (and QEMU's main lock) held, so a pty nobody reads fills up (a few KiB)
// and the guest — and its QEMU monitor with it — freezes. The agent
// therefore reads every running VM's console pty all the time (consoleHub),
// into a bounded ring buffer of the latest output, whether or not anyone is
// attached; QEMU itself writes the whole output to the console log
// (libvirt's <log> of the console, see consoleLog). Attaching a websocket
// adds a reader of that log (woken by the drain), detaching removes it; what
// the client types goes to the pty through the drain's file with a write
// time-out, in its own goroutine, so that input never holds output back.

// consoleRing is how much of the latest console output the agent keeps in
// memory per VM.
const consoleRing = 256 << 10

// consoleInputTimeout bounds one write of console input (a guest that does
// not read its input).
const consoleInputTimeout = 5 * time.Second

// consoleHub drains the consoles of the running VMs.
type consoleHub struct {
	a  *Agent
	mu sync.Mutex
	// drains are the running drains by VM id.
	drains map[string]*drain
}

func newConsoleHub(a *Agent) *consoleHub { return &consoleHub{a: a, drains: map[string]*drain{}} }

// drain reads one VM's console pty until QEMU closes it.
type drain struct {
	vm  string
	pty string
	f   *os.File

	writeMu sync.Mutex

	mu    sync.Mutex
	ring  []byte
	total int64 // bytes read since the drain started
	wake  map[chan struct{}]struct{}
	done  chan struct{}
	err   error
}

// ensure makes sure the console pty of VM id is drained; a drain of
// another pty (a new boot) replaces the old one.
func (h *consoleHub) ensure(id, pty string) (*drain, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if d := h.drains[id]; d != nil {
		if d.pty == pty && !isClosed(d.done) {
			return d, nil
		}
		d.close()
		delete(h.drains, id)
	}
	f, err := openPTY(pty)
	if err != nil {
		return nil, err
	}
	d := &drain{vm: id, pty: pty, f: f, wake: map[chan struct{}]struct{}{}, done: make(chan struct{})}
	h.drains[id] = d
	go h.run(d)
	h.a.log.Debug("console drained", "vm", id, "pty", pty)
	return d, nil
}

// openPTY opens a console pty for reading and writing, in raw mode (no
// echo of what QEMU writes back into it, no line editing), and never as
// the agent's controlling terminal.
func openPTY(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, fmt.Errorf("console pty %s: %w", path, err)
	}
	rc, err := f.SyscallConn()
	if err == nil {
		var terr error
		err = rc.Control(func(fd uintptr) {
			var tio *unix.Termios
			if tio, terr = unix.IoctlGetTermios(int(fd), unix.TCGETS); terr != nil {
				return
			}
			tio.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
			tio.Oflag &^= unix.OPOST
			tio.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
			tio.Cflag &^= unix.CSIZE | unix.PARENB
			tio.Cflag |= unix.CS8
			terr = unix.IoctlSetTermios(int(fd), unix.TCSETS, tio)
		})
		if err == nil {
			err = terr
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("console pty %s: raw mode: %w", path, err)
	}
	return f, nil
}

// run reads the pty until it fails (QEMU closed it: the VM stopped).
func (h *consoleHub) run(d *drain) {
	buf := make([]byte, 16<<10)
	for {
		n, err := d.f.Read(buf)
		if n > 0 {
			d.append(buf[:n])
		}
		if err != nil {
			d.mu.Lock()
			if d.err == nil {
				d.err = err
			}
			d.mu.Unlock()
			break
		}
	}
	d.close()
	h.mu.Lock()
	if h.drains[d.vm] == d {
		delete(h.drains, d.vm)
	}
	h.mu.Unlock()
}

// append keeps output in the ring and wakes the readers.
func (d *drain) append(b []byte) {
	d.mu.Lock()
	d.ring = append(d.ring, b...)
	if over := len(d.ring) - consoleRing; over > 0 {
		d.ring = append(d.ring[:0], d.ring[over:]...)
	}
	d.total += int64(len(b))
	for ch := range d.wake {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	d.mu.Unlock()
}

// close ends the drain (idempotent).
func (d *drain) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if isClosed(d.done) {
		return
	}
	close(d.done)
	d.f.Close()
	for ch := range d.wake {
		close(ch)
		delete(d.wake, ch)
	}
}

// subscribe returns a channel that receives a token whenever output
// arrived (closed when the drain ends), and its cancel function.
func (d *drain) subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	d.mu.Lock()
	if isClosed(d.done) {
		close(ch)
	} else {
		d.wake[ch] = struct{}{}
	}
	d.mu.Unlock()
	return ch, func() {
		d.mu.Lock()
		if _, ok := d.wake[ch]; ok {
			delete(d.wake, ch)
			close(ch)
		}
		d.mu.Unlock()
	}
}

// since returns the output from byte offset off on (of what was read since
// the drain started; older output than the ring holds is gone) and the
// offset after it.
func (d *drain) since(off int64) ([]byte, int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	first := d.total - int64(len(d.ring))
	if off < first {
		off = first
	}
	return append([]byte(nil), d.ring[off-first:]...), d.total
}

// write types b into the console; a guest that does not take its input
// within consoleInputTimeout makes it fail (output goes on meanwhile).
func (d *drain) write(b []byte) error {
	d.writeMu.Lock()
	defer d.writeMu.Unlock()
	if isClosed(d.done) {
		return errors.New("the console is closed")
	}
	_ = d.f.SetWriteDeadline(time.Now().Add(consoleInputTimeout))
	_, err := d.f.Write(b)
	return err
}

// stop ends the drain of VM id (its VM stopped or went).
func (h *consoleHub) stop(id string) {
	h.mu.Lock()
	d := h.drains[id]
	delete(h.drains, id)
	h.mu.Unlock()
	if d != nil {
		d.close()
	}
}

// draining tells whether VM id's console is drained now.
func (h *consoleHub) draining(id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	d := h.drains[id]
	return d != nil && !isClosed(d.done)
}

// reconcile drains the console of every running VM that has a pty console
// and no drain yet (after a recovery, a missed event, an agent restart).
func (h *consoleHub) reconcile(ctx context.Context) {
	for _, e := range h.a.index.list() {
		if h.draining(e.ID) {
			continue
		}
		h.a.drainConsole(ctx, e)
	}
}

// drainConsole starts draining VM e's console when it runs with a pty
// console.
func (a *Agent) drainConsole(ctx context.Context, e *vmEntry) {
	c, err := a.conn.get()
	if err != nil {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	x, err := c.DomainXML(cctx, e.Domain, false)
	if err != nil {
		return
	}
	pty, running := livePTY(x)
	if !running || pty == "" {
		return
	}
	if _, err := a.consoles.ensure(e.ID, pty); err != nil {
		a.log.Warn("cannot drain a console", "vm", e.ID, "name", e.Name, "err", err)
	}
}

// livePTY reads the pty of the first console from a running domain's live
// XML (a domain that does not run has no id).
func livePTY(x string) (pty string, running bool) {
	var dom libvirtxml.Domain
	if dom.Unmarshal(x) != nil || dom.ID == nil || *dom.ID < 0 {
		return "", false
	}
	if dom.Devices == nil || len(dom.Devices.Consoles) == 0 {
		return "", true
	}
	con := dom.Devices.Consoles[0]
	if con.Source != nil && con.Source.Pty != nil {
		return con.Source.Pty.Path, true
	}
	return "", true
}

// consoleFiles returns where a VM's serial console output is (the agent's
// file: a pty console's log, a file console's file) and, for a running
// pty console, the pty.
func (a *Agent) consoleFiles(ctx context.Context, e *vmEntry) (logPath, ptyPath string, err error) {
	c, err := a.conn.get()
	if err != nil {
		return "", "", err
	}
	x, err := c.DomainXML(ctx, e.Domain, false)
	if err != nil {
		return "", "", err
	}
	var dom libvirtxml.Domain
	if err := dom.Unmarshal(x); err != nil {
		return "", "", err
	}
	if dom.Devices == nil || len(dom.Devices.Consoles) == 0 {
		return "", "", api.NewError(http.StatusConflict, api.CodeVMHasNoConsole, "VM %s has no serial console", e.Name)
	}
	con := dom.Devices.Consoles[0]
	switch {
	// The output is read from the agent's own file, never from a path
	// read back from the domain (consoleLog).
	case con.Source != nil && con.Source.File != nil:
		return a.consoleLog(e.ID), "", nil
	case con.Source != nil && con.Source.Pty != nil:
		return a.consoleLog(e.ID), con.Source.Pty.Path, nil
	}
	return "", "", api.NewError(http.StatusConflict, api.CodeVMHasNoConsole, "VM %s has a console polyvirt cannot attach to", e.Name)
}

// serveConsole bridges a websocket to a VM's serial console: everything
// the console printed since the VM started (its log), then what it prints
// live; text the client sends is typed into the console. The websocket is
// one more reader of the console the agent drains anyway.
func (a *Agent) serveConsole(w http.ResponseWriter, r *http.Request) {
	id, logPath, d, err := a.attachConsole(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, err)
		return
	}
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer ws.CloseNow()
	ws.SetReadLimit(64 << 10)
	ctx, cancelWS := context.WithCancel(r.Context())
	defer cancelWS()
	if d != nil {
		go func() { a.typeInto(ctx, ws, d, id); cancelWS() }()
	} else {
		ws.CloseRead(ctx)
	}
	err = sendConsole(ctx, ws, logPath, d, r.URL.Query().Get("from") == "end")
	if err != nil && !errors.Is(err, context.Canceled) {
		ws.Close(websocket.StatusInternalError, "console: "+err.Error())
		return
	}
	ws.Close(websocket.StatusNormalClosure, "")
}

// attachConsole finds a VM's console: its log, and the drain of its pty
// (nil when it has none, or it cannot be drained).
func (a *Agent) attachConsole(ctx context.Context, id string) (vm, logPath string, d *drain, err error) {
	e, err := a.entry(id)
	if err != nil {
		return "", "", nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, a.cfg.RequestTimeout.Duration)
	logPath, ptyPath, err := a.consoleFiles(cctx, e)
	cancel()
	if err != nil {
		return "", "", nil, err
	}
	if ptyPath != "" {
		if d, err = a.consoles.ensure(e.ID, ptyPath); err != nil {
			a.log.Warn("cannot drain a console", "vm", e.ID, "err", err)
			d = nil
		}
	}
	return e.ID, logPath, d, nil
}

// typeInto types what the websocket receives into the console (through
// its drain) until the websocket closes; input that cannot be written is
// lost, output goes on.
func (a *Agent) typeInto(ctx context.Context, ws *websocket.Conn, d *drain, vm string) {
	for {
		_, msg, err := ws.Read(ctx)
		if err != nil {
			return
		}
		if err := d.write(msg); err != nil {
			a.log.Debug("console input dropped", "vm", vm, "err", err)
		}
	}
}

// sendConsole sends the console's output to the websocket: its log from
// the start (or, fromEnd, from now on), else what the drain keeps, until
// ctx ends.
func sendConsole(ctx context.Context, ws *websocket.Conn, logPath string, d *drain, fromEnd bool) error {
	var wake <-chan struct{}
	if d != nil {
		ch, unsubscribe := d.subscribe()
		defer unsubscribe()
		wake = ch
	}
	send := func(b []byte) error { return ws.Write(ctx, websocket.MessageBinary, b) }
	switch {
	case logPath != "":
		from := int64(0)
		if fromEnd {
			if st, err := os.Stat(logPath); err == nil {
				from = st.Size()
			}
		}
		return tail(ctx, logPath, from, wake, send)
	case d != nil:
		// A pty console without a log: what the drain keeps.
		return d.follow(ctx, fromEnd, wake, send)
	}
	return errors.New("the console has neither a log nor a pty")
}

// follow sends the drain's output (what the ring holds, or with fromEnd
// only what comes) until ctx ends or the console closes.
func (d *drain) follow(ctx context.Context, fromEnd bool, wake <-chan struct{}, send func([]byte) error) error {
	off := int64(0)
	if fromEnd {
		_, off = d.since(1 << 62)
	}
	for {
		b, next := d.since(off)
		off = next
		if len(b) > 0 {
			if err := send(b); err != nil {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case _, ok := <-wake:
			if !ok {
				return nil
			}
		}
	}
}

// tail follows a file from offset, sending what is appended until ctx
// ends; a file that does not exist yet is waited for, one that shrinks
// (a new boot rewrote it) is read again from its start. It looks again
// whenever wake receives (new console output) and at least every 250 ms.
func tail(ctx context.Context, path string, off int64, wake <-chan struct{}, send func([]byte) error) error {
	buf := make([]byte, 32*1024)
	var f *os.File
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		if f == nil {
			var err error
			if f, err = os.Open(path); err != nil {
				f = nil
			}
		}
		if f != nil {
			st, err := f.Stat()
			if now, err2 := os.Stat(path); err == nil && err2 == nil && !os.SameFile(st, now) {
				// A new boot replaced the log: follow the new one.
				f.Close()
				if f, err = os.Open(path); err != nil {
					f = nil
					goto wait
				}
				st, err = f.Stat()
				off = 0
			}
			if err == nil && st.Size() < off {
				off = 0
			}
			for {
				n, err := f.ReadAt(buf, off)
				if n > 0 {
					off += int64(n)
					if err := send(append([]byte(nil), buf[:n]...)); err != nil {
						return err
					}
				}
				if err == io.EOF || n == 0 {
					break
				}
				if err != nil {
					return err
				}
			}
		}
	wait:
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		case _, ok := <-wake:
			if !ok {
				// The drain ended (the VM stopped): keep following the log
				// on the ticker (a new boot writes it again).
				wake = nil
			}
		}
	}
}
