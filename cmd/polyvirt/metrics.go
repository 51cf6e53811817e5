package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"polyvirt/internal/client"
	"polyvirt/internal/pki"
)

func newMetricsCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "metrics", Short: "Prometheus: the agents to scrape, scrape certificates",
		Long: `The engine serves its metrics at GET /metrics (a token of any role; the
metrics role reads nothing else), each agent at GET /metrics on its HTTPS port
(a client certificate of the engine CA: the engine's, or a scrape certificate,
which reads nothing else). docs/prometheus/polyvirt.yml is a ready Prometheus
configuration and docs/grafana/polyvirt-dashboard.json a dashboard
(docs/operations.md).`}
	var out, csrFile string
	var makeCSR bool
	cert := &cobra.Command{
		Use:   "scrape-cert NAME",
		Short: "Issue a scrape certificate and write scrape.pem, scrape-key.pem and ca.pem into a directory",
		Long: `Issue a scrape certificate (admin): a client certificate of the engine CA with
which a scraper such as Prometheus reads the agents' GET /metrics, and nothing
else of theirs. The files go into --out (created; the key mode 0600):
scrape.pem, scrape-key.pem and ca.pem (the engine CA, which signs the agents'
certificates). With --csr, the key is made here and never leaves this machine.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var csr, key []byte
			switch {
			case csrFile != "":
				b, err := os.ReadFile(csrFile)
				if err != nil {
					return err
				}
				csr = b
			case makeCSR:
				c, k, err := pki.NewCSR(args[0])
				if err != nil {
					return err
				}
				csr, key = c, k
			}
			return apiCall(cmd, func(ctx context.Context, c *client.Client) error {
				sc, err := c.ScrapeCertificate(ctx, args[0], string(csr))
				if err != nil {
					return err
				}
				if sc.Key != "" {
					key = []byte(sc.Key)
				}
				files := []struct {
					name string
					data []byte
					mode os.FileMode
				}{{"scrape.pem", []byte(sc.Certificate), 0o644}, {"ca.pem", []byte(sc.CA), 0o644}}
				if key != nil {
					files = append(files, struct {
						name string
						data []byte
						mode os.FileMode
					}{"scrape-key.pem", key, 0o600})
				}
				for _, f := range files {
					if err := pki.WriteFile(filepath.Join(out, f.name), f.data, f.mode); err != nil {
						return err
					}
				}
				fmt.Fprintf(cmd.OutOrStdout(), "scrape certificate %s (serial %s, SHA-256 %s) valid until %s written to %s\n",
					sc.Name, sc.Serial, sc.Fingerprint, sc.Expires.Format("2006-01-02"), out)
				return nil
			})
		},
	}
	cert.Flags().StringVar(&out, "out", ".", "the directory to write scrape.pem, scrape-key.pem and ca.pem into")
	cert.Flags().StringVar(&csrFile, "csr", "", "a PEM certificate request to sign (its key stays with you: no scrape-key.pem is written)")
	cert.Flags().BoolVar(&makeCSR, "local-key", false, "make the key here (a certificate request goes to the engine, the key never does)")
	targets := &cobra.Command{
		Use:   "targets",
		Short: "The agents to scrape, as Prometheus's file or HTTP service discovery reads them (JSON)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return apiCall(cmd, func(ctx context.Context, c *client.Client) error {
				ts, err := c.ScrapeTargets(ctx)
				if err != nil {
					return err
				}
				return printJSON(cmd.OutOrStdout(), ts)
			})
		},
	}
	cmd.AddCommand(cert, targets)
	return cmd
}
