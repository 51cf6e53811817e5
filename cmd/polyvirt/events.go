package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"polyvirt/internal/client"
)

func newEventsCommand() *cobra.Command {
	var (
		f      client.EventFilter
		since  string
		output string
	)
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Show the audit log: every state change and action, newest first",
		Long: `Show the engine's audit log, newest first: who did what, when and why, and
every status change of the hosts. --cluster shows the events of the cluster and
of its hosts. --before pages back (the "next" of the previous page, in -o json).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if since != "" {
				if d, err := time.ParseDuration(since); err == nil {
					f.Since = time.Now().Add(-d)
				} else if t, err := time.Parse(time.RFC3339, since); err == nil {
					f.Since = t
				} else {
					return withStatus(2, fmt.Errorf("--since %q: want a duration (1h) or an RFC 3339 time", since))
				}
			}
			return apiCall(cmd, func(ctx context.Context, c *client.Client) error {
				page, err := c.Events(ctx, f)
				if err != nil {
					return err
				}
				if output == "json" {
					return printJSON(cmd.OutOrStdout(), page)
				}
				var rows [][]string
				for _, ev := range page.Events {
					obj := ev.ObjectName
					if ev.ObjectKind != "" && obj != "" {
						obj = ev.ObjectKind + " " + obj
					}
					msg := ev.Message
					if ev.Reason != "" {
						msg += " (" + ev.Reason + ")"
					}
					rows = append(rows, []string{timeText(ev.Time), ev.Severity, ev.User, obj, ev.Code, msg})
				}
				if err := table(cmd.OutOrStdout(), []string{"TIME", "SEVERITY", "USER", "OBJECT", "CODE", "MESSAGE"}, rows); err != nil {
					return err
				}
				if page.Next > 0 {
					fmt.Fprintf(cmd.ErrOrStderr(), "(more: --before %d)\n", page.Next)
				}
				return nil
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.Host, "host", "", "events of this host")
	fl.StringVar(&f.Cluster, "cluster", "", "events of this cluster and its hosts")
	fl.StringVar(&f.Kind, "kind", "", "events of this kind of object (host, cluster, user, engine)")
	fl.StringVar(&f.User, "user", "", "events caused by this user")
	fl.StringVar(&f.Action, "action", "", "events of this action (host.status, host.maintenance, ...)")
	fl.StringVar(&f.Code, "code", "", "events with this code")
	fl.StringVar(&f.Severity, "severity", "", "events of this severity or worse (info, warning, error, alert)")
	fl.StringVar(&since, "since", "", "events since this long ago (1h) or this time (RFC 3339)")
	fl.Int64Var(&f.Before, "before", 0, "events older than this event ID (paging)")
	fl.IntVar(&f.Limit, "limit", 50, "at most this many events (1-1000)")
	outputFlag(cmd, &output)
	return cmd
}
