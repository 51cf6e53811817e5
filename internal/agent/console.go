package agent

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"polyvirt/internal/api"
	"time"

	"github.com/coder/websocket"
	"libvirt.org/go/libvirtxml"
)

// consoleFiles returns where a VM's serial console output is (the agent's
// file: a pty console's log, a file console's file) and, for a running
// pty console, the pty to write input to.
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
// the console printed since the VM started (from its log), then what it
// prints live; text the client sends is typed into the console.
func (a *Agent) serveConsole(w http.ResponseWriter, r *http.Request, id string) {
	e, err := a.entry(id)
	if err != nil {
		writeError(w, err)
		return
	}
	logPath, ptyPath, err := a.consoleFiles(r.Context(), e)
	if err != nil {
		writeError(w, err)
		return
	}
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer ws.CloseNow()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()

	if ptyPath != "" {
		go func() {
			defer cancel()
			pty, err := os.OpenFile(ptyPath, os.O_WRONLY, 0)
			if err != nil {
				// No input then; keep reading to notice the close.
				pty = nil
			}
			if pty != nil {
				defer pty.Close()
			}
			for {
				_, msg, err := ws.Read(ctx)
				if err != nil {
					return
				}
				if pty != nil {
					if _, err := pty.Write(msg); err != nil {
						return
					}
				}
			}
		}()
	} else {
		ws.CloseRead(ctx)
	}

	from := int64(0)
	if r.URL.Query().Get("from") == "end" {
		if st, err := os.Stat(logPath); err == nil {
			from = st.Size()
		}
	}
	if err := tail(ctx, logPath, from, func(b []byte) error {
		return ws.Write(ctx, websocket.MessageBinary, b)
	}); err != nil && !errors.Is(err, context.Canceled) {
		ws.Close(websocket.StatusInternalError, "console: "+err.Error())
		return
	}
	ws.Close(websocket.StatusNormalClosure, "")
}

// tail follows a file from offset, sending what is appended until ctx
// ends; a file that does not exist yet is waited for, one that shrinks
// (a new boot rewrote it) is read again from its start.
func tail(ctx context.Context, path string, off int64, send func([]byte) error) error {
	buf := make([]byte, 32*1024)
	var f *os.File
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	tick := time.NewTicker(100 * time.Millisecond)
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
		}
	}
}
