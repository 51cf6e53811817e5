package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"polyvirt/internal/client"
)

// detachKey is ctrl-] (as virsh console and telnet).
const detachKey = 0x1d

func newVMConsoleCommand() *cobra.Command {
	var (
		fromEnd bool
		until   string
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "console NAME",
		Short: "Attach the terminal to a running VM's serial console (ctrl-] detaches)",
		Long: `Attach to a running VM's serial console through the engine: what the console
printed since the VM started is shown first (--from-end skips it), then what it
prints. Keys typed go to the console (the terminal is in raw mode; ctrl-]
detaches). Readonly users watch without typing.

For scripts: --until TEXT ends with status 0 as soon as the console has printed
TEXT, --timeout ends with status 1 when it has not by then; standard input that
is not a terminal is typed into the console.

  polyvirt vm console debian-installer-ppc64el
  polyvirt vm console web1 --until 'login:' --timeout 5m`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return vmCall(cmd, func(ctx context.Context, c *client.Client) error {
				return runConsole(ctx, cmd, c, args[0], fromEnd, until, timeout)
			})
		},
	}
	f := cmd.Flags()
	f.BoolVar(&fromEnd, "from-end", false, "only what the console prints from now on")
	f.StringVar(&until, "until", "", "detach (status 0) once the console has printed this text")
	f.DurationVar(&timeout, "timeout", 0, "detach (status 1) after this long (0: never)")
	return cmd
}

// errUntilTimeout: --until's text did not come in time.
var errUntilTimeout = errors.New("timeout")

func runConsole(ctx context.Context, cmd *cobra.Command, c *client.Client, name string, fromEnd bool, until string, timeout time.Duration) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, timeout, errUntilTimeout)
		defer cancel()
	}
	ws, err := c.Console(ctx, name, fromEnd)
	if err != nil {
		return err
	}
	defer ws.CloseNow()
	out := cmd.OutOrStdout()
	errOut := cmd.ErrOrStderr()
	in := cmd.InOrStdin()
	stdin, _ := in.(*os.File)
	tty := stdin != nil && isatty.IsTerminal(stdin.Fd())
	if tty {
		restore, err := rawTerminal(int(stdin.Fd()))
		if err == nil {
			defer restore()
		}
		fmt.Fprintf(errOut, "Connected to the serial console of VM %s (ctrl-] detaches).\r\n", name)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	detached := errors.New("detached")
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := in.Read(buf)
			if n > 0 {
				b := buf[:n]
				if tty {
					if i := bytes.IndexByte(b, detachKey); i >= 0 {
						if i > 0 {
							_ = ws.Write(ctx, websocket.MessageBinary, b[:i])
						}
						cancel(detached)
						return
					}
				}
				if werr := ws.Write(ctx, websocket.MessageBinary, append([]byte(nil), b...)); werr != nil {
					return
				}
			}
			if err != nil {
				// End of input: keep showing the console.
				return
			}
		}
	}()
	var tail []byte
	for {
		_, b, err := ws.Read(ctx)
		if err != nil {
			cause := context.Cause(ctx)
			switch {
			case errors.Is(cause, detached):
				fmt.Fprintf(errOut, "\r\nDetached from VM %s.\r\n", name)
				return nil
			case errors.Is(cause, errUntilTimeout):
				if until != "" {
					return withStatus(1, fmt.Errorf("the console of VM %s did not print %q within %s", name, until, timeout))
				}
				return nil
			case ctx.Err() != nil:
				return nil
			}
			if s := websocket.CloseStatus(err); s == websocket.StatusNormalClosure || s == websocket.StatusGoingAway {
				fmt.Fprintf(errOut, "\r\nThe console of VM %s closed.\r\n", name)
				if until != "" {
					return withStatus(1, fmt.Errorf("the console of VM %s closed before printing %q", name, until))
				}
				return nil
			}
			return fmt.Errorf("console of VM %s: %w", name, err)
		}
		if _, err := out.Write(b); err != nil {
			return err
		}
		if until != "" {
			tail = append(tail, b...)
			if bytes.Contains(tail, []byte(until)) {
				if tty {
					fmt.Fprintf(errOut, "\r\n")
				}
				return nil
			}
			if keep := len(until) - 1; len(tail) > keep {
				tail = append(tail[:0], tail[len(tail)-keep:]...)
			}
		}
	}
}

// rawTerminal puts a terminal in raw mode (as cfmakeraw) and returns how
// to restore it.
func rawTerminal(fd int) (func(), error) {
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, err
	}
	raw := *old
	raw.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	raw.Oflag &^= unix.OPOST
	raw.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	raw.Cflag &^= unix.CSIZE | unix.PARENB
	raw.Cflag |= unix.CS8
	raw.Cc[unix.VMIN] = 1
	raw.Cc[unix.VTIME] = 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &raw); err != nil {
		return nil, err
	}
	return func() { _ = unix.IoctlSetTermios(fd, unix.TCSETS, old) }, nil
}
