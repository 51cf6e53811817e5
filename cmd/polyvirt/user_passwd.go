package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"polyvirt/internal/client"
	"polyvirt/internal/password"
)

// newUserPasswdCommand is `polyvirt user passwd [NAME]`: a user's web UI
// password.
func newUserPasswdCommand() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "passwd [NAME]",
		Short: "Set a user's password for the web UI (yours without NAME; an admin sets anyone's)",
		Long: `Set the password a user signs in to the engine's web UI with (the API keeps
using tokens). Without NAME it is your own. The password is asked twice on a
terminal, without echo; otherwise it is the first line of standard input or of
--password-file. At least 10 characters. Every browser signed in as the user
has to sign in again.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return apiCall(cmd, func(ctx context.Context, c *client.Client) error {
				name := ""
				if len(args) == 1 {
					name = args[0]
				} else {
					s, err := c.Session(ctx)
					if err != nil {
						return err
					}
					name = s.User.Name
				}
				pw, err := readNewPassword(cmd, file, name)
				if err != nil {
					return withStatus(2, err)
				}
				if err := c.SetPassword(ctx, name, pw); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "the web UI password of %s is set\n", name)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&file, "password-file", "", "read the password from this file's first line (- for standard input)")
	return cmd
}

// readNewPassword reads a new password: twice from a terminal without
// echo, else one line of the file or of standard input.
func readNewPassword(cmd *cobra.Command, file, name string) (string, error) {
	var in io.Reader = cmd.InOrStdin()
	if file != "" && file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return "", err
		}
		defer f.Close()
		in = f
	} else if f, ok := in.(*os.File); ok && file == "" && isatty.IsTerminal(f.Fd()) {
		fmt.Fprintf(cmd.ErrOrStderr(), "New web UI password for %s: ", name)
		a, err := readNoEcho(f)
		fmt.Fprintln(cmd.ErrOrStderr())
		if err != nil {
			return "", err
		}
		fmt.Fprint(cmd.ErrOrStderr(), "The same again: ")
		b, err := readNoEcho(f)
		fmt.Fprintln(cmd.ErrOrStderr())
		if err != nil {
			return "", err
		}
		a, b = strings.TrimRight(a, "\r\n"), strings.TrimRight(b, "\r\n")
		if a != b {
			return "", errors.New("the two passwords differ")
		}
		return a, password.Check(a)
	}
	line, err := bufio.NewReader(io.LimitReader(in, password.MaxBytes+2)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("no password given (on standard input, or --password-file)")
	}
	return line, password.Check(line)
}
