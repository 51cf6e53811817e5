package main

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/client"
)

// This file holds `polyvirt login` and `polyvirt user`, and the helpers of
// the commands that call the engine (cluster, host, events): the client
// from the login configuration, -o table|json, and tables.

// outputFlag adds -o table|json.
func outputFlag(cmd *cobra.Command, dst *string) {
	cmd.Flags().StringVarP(dst, "output", "o", "table", "output format: table or json")
}

func checkOutput(o string) error {
	if o != "table" && o != "json" {
		return withStatus(2, fmt.Errorf("-o %q: want table or json", o))
	}
	return nil
}

// engineClient is the client of the logged-in engine (POLYVIRT_ENGINE,
// POLYVIRT_TOKEN_FILE, POLYVIRT_CA_FILE and POLYVIRT_CONFIG override the
// login).
func engineClient() (*client.Client, error) {
	o, err := client.FromEnvironment()
	if err != nil {
		return nil, err
	}
	if o.Token == "" {
		return nil, errors.New("no API token: run polyvirt login (or set POLYVIRT_TOKEN_FILE)")
	}
	return client.New(o)
}

// apiCall runs f with a client and a context that ends with the command;
// a request the engine did not answer (it went away) is worded the same
// for every command: what may have happened, and what tells
// (lostConnection).
func apiCall(cmd *cobra.Command, f func(ctx context.Context, c *client.Client) error) error {
	c, err := engineClient()
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	return lostConnection(f(ctx, c))
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table prints rows under a header, aligned.
func table(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		for i := range r {
			r[i] = strings.NewReplacer("\t", " ", "\n", " ").Replace(r[i])
			if r[i] == "" {
				r[i] = "-"
			}
		}
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// keyValues prints "key: value" lines, aligned.
func keyValues(w io.Writer, kv [][2]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	for _, p := range kv {
		if p[1] == "" {
			continue
		}
		fmt.Fprintf(tw, "%s:\t%s\n", p[0], p[1])
	}
	return tw.Flush()
}

func timeText(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

// readSecret reads a secret from a file ("-" is stdin), or from a prompt
// without echo when stdin is a terminal.
func readSecret(cmd *cobra.Command, file, prompt string) (string, error) {
	if file != "" && file != "-" {
		return client.ReadTokenFile(file)
	}
	in := cmd.InOrStdin()
	if f, ok := in.(*os.File); ok && file == "" && isatty.IsTerminal(f.Fd()) {
		fmt.Fprint(cmd.ErrOrStderr(), prompt)
		s, err := readNoEcho(f)
		fmt.Fprintln(cmd.ErrOrStderr())
		return strings.TrimSpace(s), err
	}
	line, err := bufio.NewReader(io.LimitReader(in, 64<<10)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	line = strings.TrimSpace(line)
	if line == "" {
		return "", errors.New("no token on standard input")
	}
	return line, nil
}

// readNoEcho reads a line from a terminal with echo off.
func readNoEcho(f *os.File) (string, error) {
	fd := int(f.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err == nil {
		noEcho := *old
		noEcho.Lflag &^= unix.ECHO
		if unix.IoctlSetTermios(fd, unix.TCSETS, &noEcho) == nil {
			defer unix.IoctlSetTermios(fd, unix.TCSETS, old)
		}
	}
	line, err := bufio.NewReader(f).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return line, nil
}

func newLoginCommand() *cobra.Command {
	var engine, caFile, fingerprint, tokenFile string
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Log in to an engine: keep its URL, how to trust it, and your API token",
		Long: `Log in to a polyvirt engine. The API token is read from standard input, or
asked for when standard input is a terminal (never from a flag: flags end up
in the shell history); --token-file reads it from a file.

Trust the engine with --ca-file (the engine's ca.pem), or pin the SHA-256
fingerprint of its CA (printed by polyvirt engine init) with
--insecure-fingerprint; without either the system's roots are used.

The login is kept in ~/.config/polyvirt/config.json (mode 0600; POLYVIRT_CONFIG
names another file). POLYVIRT_ENGINE, POLYVIRT_TOKEN_FILE and POLYVIRT_CA_FILE
override it for scripts.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if engine == "" {
				engine = os.Getenv(client.EnvEngine)
			}
			base, err := client.EngineURL(engine)
			if err != nil {
				return withStatus(2, err)
			}
			if caFile != "" && fingerprint != "" {
				return withStatus(2, errors.New("give --ca-file or --insecure-fingerprint, not both"))
			}
			cfg := client.Config{Engine: base}
			if caFile != "" {
				b, err := os.ReadFile(caFile)
				if err != nil {
					return err
				}
				cfg.CA = string(b)
			}
			if fingerprint != "" {
				fp, err := client.NormalizeFingerprint(fingerprint)
				if err != nil {
					return withStatus(2, err)
				}
				cfg.Fingerprint = fp
			}
			if tokenFile == "" {
				tokenFile = os.Getenv(client.EnvTokenFile)
			}
			token, err := readSecret(cmd, tokenFile, "API token: ")
			if err != nil {
				return err
			}
			c, err := client.New(client.Options{Engine: base, Token: token, CAPEM: []byte(cfg.CA), Fingerprint: cfg.Fingerprint})
			if err != nil {
				return err
			}
			u, err := c.WhoAmI(cmd.Context())
			if err != nil {
				var x509err x509.UnknownAuthorityError
				if errors.As(err, &x509err) || strings.Contains(err.Error(), "certificate") {
					return fmt.Errorf("%v%s", err, chainHint(cmd.Context(), base))
				}
				return err
			}
			cfg.Token, cfg.User = token, u.Name
			path, err := client.ConfigPath()
			if err != nil {
				return err
			}
			if err := client.SaveConfig(path, cfg); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Logged in to %s as %s (%s); the login is kept in %s\n", base, u.Name, u.Role, path)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&engine, "engine", "", "the engine's URL, https://HOST:PORT (default $POLYVIRT_ENGINE)")
	f.StringVar(&caFile, "ca-file", "", "the engine CA certificate (the engine's ca.pem)")
	f.StringVar(&fingerprint, "insecure-fingerprint", "", "trust the engine whose chain holds a certificate with this SHA-256 fingerprint")
	f.StringVar(&tokenFile, "token-file", "", "read the API token from this file (default: standard input or a prompt)")
	return cmd
}

// chainHint shows the fingerprints an untrusted engine presents.
func chainHint(ctx context.Context, engine string) string {
	chain, err := client.PeerChain(ctx, engine)
	if err != nil || len(chain) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("\nThe engine presents:")
	for _, c := range chain {
		kind := "certificate"
		if c.IsCA {
			kind = "CA"
		}
		fmt.Fprintf(&b, "\n  %s %q SHA-256 %s", kind, c.Subject.CommonName, client.Fingerprint(c))
	}
	b.WriteString("\nCheck the CA's fingerprint with the engine's administrator (polyvirt engine init printed it), then log in with --insecure-fingerprint FINGERPRINT or --ca-file ca.pem.")
	return b.String()
}

func newUserCommand() *cobra.Command {
	return &cobra.Command{Use: "user", Short: "Manage the engine's API users (admin, vm-manager, readonly or metrics)",
		Long: `Manage the engine's API users. A user has one role:

  readonly    reads everything and watches VM consoles
  vm-manager  also creates, changes, starts, stops and deletes VMs and
              types on their consoles; not hosts, clusters, users or firmware
  admin       also manages users, clusters, hosts and POWER firmware
  metrics     reads the engine's metrics (GET /metrics) and the agents to
              scrape, nothing else: the token of a Prometheus server

No role makes a VM open a host file the host's agent does not allow
(host_paths in its configuration; PATH_NOT_ALLOWED).`}
}

func newUserAddCommand() *cobra.Command {
	var output, role string
	add := &cobra.Command{
		Use:   "add NAME",
		Short: "Add a user and print its API token (shown once)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			return apiCall(cmd, func(ctx context.Context, c *client.Client) error {
				ut, err := c.CreateUser(ctx, args[0], role)
				if err != nil {
					return err
				}
				return printUserToken(cmd.OutOrStdout(), output, ut)
			})
		},
	}
	add.Flags().StringVar(&role, "role", "readonly", "readonly, vm-manager (manages VMs), admin, or metrics (reads the metrics only: a Prometheus token)")
	outputFlag(add, &output)
	return add
}

func newUserListCommand() *cobra.Command {
	var output string
	list := &cobra.Command{
		Use:   "list",
		Short: "List the users",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			return apiCall(cmd, func(ctx context.Context, c *client.Client) error {
				us, err := c.Users(ctx)
				if err != nil {
					return err
				}
				if output == "json" {
					return printJSON(cmd.OutOrStdout(), us)
				}
				var rows [][]string
				for _, u := range us {
					rows = append(rows, []string{u.Name, u.Role, timeText(u.Created)})
				}
				return table(cmd.OutOrStdout(), []string{"NAME", "ROLE", "CREATED"}, rows)
			})
		},
	}
	outputFlag(list, &output)
	return list
}

func newUserRemoveCommand() *cobra.Command {
	return removeCommand("remove NAME", "Remove a user (its token stops working)", "user %s removed\n", apiCall, (*client.Client).DeleteUser)
}

func newUserTokenCommand() *cobra.Command {
	var output string
	token := &cobra.Command{
		Use:   "token NAME",
		Short: "Give a user a new API token (printed once; the old one stops working)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			return apiCall(cmd, func(ctx context.Context, c *client.Client) error {
				ut, err := c.RotateToken(ctx, args[0])
				if err != nil {
					return err
				}
				return printUserToken(cmd.OutOrStdout(), output, ut)
			})
		},
	}
	outputFlag(token, &output)
	return token
}

func printUserToken(w io.Writer, output string, ut engineapi.UserToken) error {
	if output == "json" {
		return printJSON(w, ut)
	}
	fmt.Fprintf(w, "User %s (%s). Its API token, shown once:\n%s\n", ut.User.Name, ut.User.Role, ut.Token)
	return nil
}
