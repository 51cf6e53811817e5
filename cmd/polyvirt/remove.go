package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"polyvirt/internal/client"
)

// removeCommand is a command that removes the object its one argument
// names through remove (a method of the client, as (*client.Client).DeleteUser), called by call (apiCall, or vmCall for the VMs'
// error codes), and then prints done (a format taking the name).
func removeCommand(use, short, done string, call func(*cobra.Command, func(context.Context, *client.Client) error) error,
	remove func(c *client.Client, ctx context.Context, name string) error) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(cmd, func(ctx context.Context, c *client.Client) error {
				if err := remove(c, ctx, args[0]); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), done, args[0])
				return nil
			})
		},
	}
}
