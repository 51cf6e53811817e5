package main

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"

	"github.com/spf13/cobra"

	"polyvirt/internal/agent"
	"polyvirt/internal/libvirttls"
)

func newAgentLibvirtTLSCommand() *cobra.Command {
	var dataDir, etc, address, listen string
	cmd := &cobra.Command{
		Use:   "libvirt-tls --address HOST:PORT [--data-dir DIR] [--etc /etc/libvirt]",
		Short: "Configure this host's libvirtd for TLS with the certificate the engine gave at join (for migrations)",
		Long: `Configure this host's libvirtd so that the other hosts' libvirtd can send it
VMs: over TLS only (never plain TCP), with the libvirt certificate the
engine's CA signed when the agent joined (DATA_DIR/libvirt-pki), accepting
the libvirt certificates of the other hosts only. It writes a block of its
own into libvirtd.conf (listen_tls, tls_port, key_file, cert_file, ca_file,
tls_allowed_dn_list) and qemu.conf (the x509 directory for encrypted
migration streams), and prints what is left to do: restart libvirtd
listening (libvirtd --listen, or systemctl enable --now libvirtd-tls.socket)
and set migration.address in the agent's configuration.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			host, portText, err := net.SplitHostPort(address)
			if err != nil || host == "" {
				return withStatus(2, fmt.Errorf("--address %q: want HOST:PORT as the other hosts reach this host", address))
			}
			port, err := strconv.Atoi(portText)
			if err != nil || port < 1 || port > 65535 {
				return withStatus(2, fmt.Errorf("--address %q: the port is not a port", address))
			}
			files := libvirttls.Files{Dir: filepath.Join(dataDir, agent.LibvirtPKIDir)}
			if !files.Exists() {
				return fmt.Errorf("%s has no libvirt certificate: join the engine first (polyvirt agent join; an agent that joined before polyvirt set up libvirt's TLS joins again)", files.Dir)
			}
			w := cmd.OutOrStdout()
			for _, c := range []struct {
				file     string
				settings []libvirttls.Setting
			}{
				{"libvirtd.conf", libvirttls.DaemonSettings(files, libvirttls.Listen{Addr: listen, Port: port})},
				{"qemu.conf", libvirttls.QEMUSettings(files)},
			} {
				path := filepath.Join(etc, c.file)
				changed, err := libvirttls.Configure(path, c.settings)
				if err != nil {
					return err
				}
				if changed {
					fmt.Fprintf(w, "%s: libvirt's TLS configured\n", path)
				} else {
					fmt.Fprintf(w, "%s: unchanged\n", path)
				}
			}
			fmt.Fprintf(w, `Now:
  1. restart libvirtd listening for TLS: libvirtd --listen (or: systemctl enable --now libvirtd-tls.socket; systemctl restart libvirtd)
  2. set in the agent's configuration:   migration: {address: %q}
     (or run it with --migration-address %s), and restart the agent
`, address, address)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dataDir, "data-dir", "/var/lib/polyvirt/agent", "the agent's data directory (its libvirt-pki)")
	f.StringVar(&etc, "etc", "/etc/libvirt", "libvirt's configuration directory")
	f.StringVar(&address, "address", "", "HOST:PORT where the other hosts reach this host's libvirtd (port 16514 is libvirt's)")
	f.StringVar(&listen, "listen-addr", "", "the address libvirtd listens on (default: every address)")
	_ = cmd.MarkFlagRequired("address")
	return cmd
}
