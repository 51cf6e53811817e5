package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"polyvirt/internal/agent"
)

func newAgentJoinCommand() *cobra.Command {
	var (
		engineURL, tokenFile, dataDir, output string
		timeout                               time.Duration
	)
	cmd := &cobra.Command{
		Use:   "join",
		Short: "Enroll this agent with an engine using a one-time join token",
		Long: `Enroll this agent with an engine: polyvirt host add printed a one-time join
token; give it on standard input (--token-file -, the default) or in a file.

The agent makes its key (it never leaves the host) and a certificate request,
checks that the engine's HTTPS certificate chains to the CA named in the token
before sending anything, and receives a certificate signed by the engine CA.
It writes ca.pem (the engine CA: from now on the only CA whose client
certificates the agent accepts), agent.pem, agent-key.pem and enrollment.json
into --data-dir. Restart the agent with that data directory afterwards.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return withStatus(2, fmt.Errorf("-o %q: want text or json", output))
			}
			if engineURL == "" {
				return withStatus(2, fmt.Errorf("--engine is required (https://HOST:PORT)"))
			}
			token, err := readSecret(cmd, tokenFile, "Join token: ")
			if err != nil {
				return err
			}
			e, err := agent.Join(cmd.Context(), engineURL, token, dataDir, timeout)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if output == "json" {
				return printJSON(w, e)
			}
			fmt.Fprintf(w, "Enrolled as host %s (cluster %s) with the engine %s.\n", e.HostName, e.Cluster, e.Engine)
			fmt.Fprintf(w, "Wrote ca.pem, agent.pem, agent-key.pem and %s in %s.\n", agent.EnrollmentFile, dataDir)
			fmt.Fprintf(w, "Start the agent (the engine calls it at %s):\n  polyvirt agent --data-dir %s --host-id %s --listen %s\n",
				e.Address, dataDir, e.HostName, e.Address)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&engineURL, "engine", "", "the engine's URL, https://HOST:PORT (required)")
	f.StringVar(&tokenFile, "token-file", "-", "file holding the join token (- is standard input)")
	f.StringVar(&dataDir, "data-dir", "/var/lib/polyvirt/agent", "the agent's data directory")
	f.DurationVar(&timeout, "timeout", 30*time.Second, "how long to wait for the engine")
	f.StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}
