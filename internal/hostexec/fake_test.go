package hostexec

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestFake(t *testing.T) {
	f := NewFake()
	f.MaxOutput = 5
	f.Handle("lsmcode", Reply("Version of System Firmware is SV810_133 (t) SV810_081 (p) SV810_133 (b)\n"))
	f.Handle("update_flash", ReplyExit(8, "", "update_flash: Invalid candidate image for this platform.\n"))
	f.Handle("hang", Hang())
	f.Handle("broken", func(ctx context.Context, cmd Command) (Result, error) {
		return Result{}, errors.New("fork failed")
	})
	tests := []struct {
		name string
		cmd  Command
		want outcome
	}{
		{"reply", Command{Name: "lsmcode"}, outcome{Stdout: "Versi", StdoutTruncated: true}},
		{"path matched by base name", Command{Name: "/usr/sbin/lsmcode"}, outcome{Stdout: "Versi", StdoutTruncated: true}},
		{"exit status", Command{Name: "update_flash", Args: []string{"-v", "-f", "x.img"}},
			outcome{Stderr: "updat", ExitCode: 8, Kind: ErrExit.Error()}},
		{"hang times out", Command{Name: "hang", Timeout: 50 * time.Millisecond},
			outcome{ExitCode: -1, Kind: ErrTimeout.Error()}},
		{"unknown program", Command{Name: "reboot"}, outcome{ExitCode: -1, Kind: ErrNotFound.Error()}},
		{"handler error", Command{Name: "broken"}, outcome{Kind: ErrStart.Error()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := f.Run(context.Background(), tt.cmd)
			got := outcome{Stdout: string(res.Stdout), Stderr: string(res.Stderr), ExitCode: res.ExitCode,
				StdoutTruncated: res.StdoutTruncated, Kind: kindOf(err)}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s\nerror: %v", diff, err)
			}
		})
	}
}

func TestFakeRecordsCalls(t *testing.T) {
	f := NewFake()
	f.Handle("cat", func(ctx context.Context, cmd Command) (Result, error) {
		var b strings.Builder
		if cmd.Stdin != nil {
			buf := make([]byte, 100)
			n, _ := cmd.Stdin.Read(buf)
			b.Write(buf[:n])
		}
		return Result{ExitCode: 0, Stdout: []byte(b.String())}, nil
	})
	res, err := f.Run(context.Background(), Command{Name: "cat", Args: []string{"-"}, Env: []string{"A=1"},
		Timeout: time.Second, Stdin: strings.NewReader("hello")})
	if err != nil {
		t.Fatal(err)
	}
	if string(res.Stdout) != "hello" {
		t.Errorf("stdout = %q, want the stdin back", res.Stdout)
	}
	want := []Call{{Name: "cat", Args: []string{"-"}, Env: []string{"A=1"}, Timeout: time.Second, Stdin: []byte("hello")}}
	if diff := cmp.Diff(want, f.Calls()); diff != "" {
		t.Errorf("Calls (-want +got):\n%s", diff)
	}
}

func TestFakeCanceled(t *testing.T) {
	f := NewFake()
	f.Handle("hang", Hang())
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	_, err := f.Run(ctx, Command{Name: "hang", Timeout: time.Minute})
	if !errors.Is(err, ErrCanceled) {
		t.Fatalf("err = %v, want ErrCanceled", err)
	}
}
