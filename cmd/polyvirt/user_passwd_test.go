package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func TestReadNewPassword(t *testing.T) {
	file := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(file, []byte("from a file, long enough\nsecond line\n"), 0o600)
	for _, tc := range []struct {
		name, stdin, file, want, err string
	}{
		{"stdin", "a long enough password\n", "", "a long enough password", ""},
		{"stdin without newline", "a long enough password", "-", "a long enough password", ""},
		{"CRLF", "a long enough password\r\n", "", "a long enough password", ""},
		{"file", "", file, "from a file, long enough", ""},
		{"empty", "", "", "", "no password given"},
		{"short", "short\n", "", "", "fewer than 10 characters"},
		{"missing file", "", filepath.Join(t.TempDir(), "none"), "", "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := &cobra.Command{}
			cmd.SetIn(strings.NewReader(tc.stdin))
			got, err := readNewPassword(cmd, tc.file, "alice")
			if tc.err == "" && (err != nil || got != tc.want) || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("readNewPassword = %q, %v; want %q, %q", got, err, tc.want, tc.err)
			}
		})
	}
}
