package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"polyvirt/internal/api/engineapi"
	"polyvirt/internal/client"
	"polyvirt/internal/hostpath"
)

func sizeText(n int64) string {
	if n <= 0 {
		return "0"
	}
	return humanize.IBytes(uint64(n))
}

func parseSize(flag, s string) (int64, error) {
	n, err := humanize.ParseBytes(s)
	if err != nil || n == 0 || n > 1<<62 {
		return 0, withStatus(2, fmt.Errorf("%s %q: give a size such as 10G or 512MiB", flag, s))
	}
	return int64(n), nil
}

// ----- pools

func newPoolCommand() *cobra.Command {
	return &cobra.Command{Use: "pool", Short: "Storage pools: directories of a cluster's hosts that hold volumes"}
}

func newPoolCreateCommand() *cobra.Command {
	var output string
	var req engineapi.PoolRequest
	create := &cobra.Command{
		Use:   "create NAME --cluster C --path DIR [--kind shared|local --host H]",
		Short: "Add a storage pool to a cluster",
		Long: `Add a storage pool to a cluster. A shared pool is a directory every host of the
cluster sees at the same path (an NFS export or a cluster file system you mount);
a local pool is a directory of one host (--host). The directory must be one the
hosts allow for disk images (host_paths.disk of their agents, default
` + hostpath.ImagesDir + `), or below one. One host writes the pool's marker file
into it; every host is then checked for it (polyvirt pool show): a host that
lacks the pool is marked with the reason, and VMs using the pool do not start
there.

  polyvirt pool create nfs1 --cluster power --path /var/lib/polyvirt/images/nfs1
  polyvirt pool create scratch --cluster power --kind local --host power8-a --path /var/lib/polyvirt/images/scratch`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			req.Name = args[0]
			return apiCall(cmd, func(ctx context.Context, c *client.Client) error {
				p, err := c.CreatePool(ctx, req)
				if err != nil {
					return err
				}
				return printPool(cmd.OutOrStdout(), output, p)
			})
		},
	}
	f := create.Flags()
	f.StringVar(&req.Cluster, "cluster", "", "the pool's cluster (required)")
	f.StringVar(&req.Path, "path", "", "the pool's directory on the hosts (required)")
	f.StringVar(&req.Kind, "kind", "shared", "shared or local")
	f.StringVar(&req.Host, "host", "", "a local pool's host")
	f.StringVar(&req.Description, "description", "", "description")
	_ = create.MarkFlagRequired("cluster")
	_ = create.MarkFlagRequired("path")
	outputFlag(create, &output)
	return create
}

func newPoolListCommand() *cobra.Command {
	var output string
	var cluster string
	list := &cobra.Command{
		Use: "list", Short: "List the pools", Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			return apiCall(cmd, func(ctx context.Context, c *client.Client) error {
				ps, err := c.Pools(ctx, cluster)
				if err != nil {
					return err
				}
				if output == "json" {
					return printJSON(cmd.OutOrStdout(), ps)
				}
				var rows [][]string
				for _, p := range ps {
					rows = append(rows, []string{p.Name, p.Cluster, p.Kind + hostSuffix(p.Host), p.Path, strconv.Itoa(p.Volumes),
						sizeText(p.FreeBytes) + " / " + sizeText(p.CapacityBytes), poolHostsText(p.Hosts)})
				}
				return table(cmd.OutOrStdout(), []string{"NAME", "CLUSTER", "KIND", "PATH", "VOLUMES", "FREE / CAPACITY", "HOSTS"}, rows)
			})
		},
	}
	list.Flags().StringVar(&cluster, "cluster", "", "only the pools of this cluster")
	outputFlag(list, &output)
	return list
}

func newPoolShowCommand() *cobra.Command {
	var output string
	show := &cobra.Command{
		Use: "show NAME", Short: "Show a pool and what each host says of it", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			return apiCall(cmd, func(ctx context.Context, c *client.Client) error {
				p, err := c.Pool(ctx, args[0])
				if err != nil {
					return err
				}
				return printPool(cmd.OutOrStdout(), output, p)
			})
		},
	}
	outputFlag(show, &output)
	return show
}

func newPoolDeleteCommand() *cobra.Command {
	return removeCommand("delete NAME", "Remove a pool that holds no volume (its directory stays)", "Pool %s removed.\n", apiCall, (*client.Client).DeletePool)
}

func hostSuffix(h string) string {
	if h == "" {
		return ""
	}
	return " (" + h + ")"
}

// poolHostsText says which hosts have a pool: "2 ok", "1 ok, p8b: POOL_MARKER_MISSING".
func poolHostsText(hs []engineapi.HostPool) string {
	ok := 0
	var bad []string
	for _, h := range hs {
		if h.OK {
			ok++
		} else {
			bad = append(bad, h.Host+": "+h.Code)
		}
	}
	return strings.Join(append([]string{fmt.Sprintf("%d ok", ok)}, bad...), ", ")
}

func printPool(w io.Writer, output string, p engineapi.Pool) error {
	if output == "json" {
		return printJSON(w, p)
	}
	if err := keyValues(w, [][2]string{
		{"Name", p.Name}, {"ID", p.ID}, {"Cluster", p.Cluster}, {"Kind", p.Kind + hostSuffix(p.Host)}, {"Path", p.Path},
		{"Description", p.Description}, {"Volumes", strconv.Itoa(p.Volumes)},
		{"Free / capacity", sizeText(p.FreeBytes) + " / " + sizeText(p.CapacityBytes)}, {"Created", timeText(p.Created)},
	}); err != nil {
		return err
	}
	var rows [][]string
	for _, h := range p.Hosts {
		status := "ok"
		if !h.OK {
			status = h.Code + ": " + h.Message
		}
		rows = append(rows, []string{h.Host, status, sizeText(h.FreeBytes), timeText(h.Checked)})
	}
	fmt.Fprintln(w)
	return table(w, []string{"HOST", "STATUS", "FREE", "CHECKED"}, rows)
}

// ----- volumes

func newVolumeCommand() *cobra.Command {
	return &cobra.Command{Use: "volume", Short: "Volumes: the image files of storage pools"}
}

func newVolumeCreateCommand() *cobra.Command {
	var output string
	var format, size string
	create := &cobra.Command{
		Use: "create POOL NAME --size SIZE [--format qcow2|raw]", Short: "Create an empty volume", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			n, err := parseSize("--size", size)
			if err != nil {
				return err
			}
			return apiCall(cmd, func(ctx context.Context, c *client.Client) error {
				v, err := c.CreateVolume(ctx, engineapi.VolumeRequest{Pool: args[0], Name: args[1], Format: format, SizeBytes: n})
				if err != nil {
					return err
				}
				return printVolume(cmd.OutOrStdout(), output, v)
			})
		},
	}
	create.Flags().StringVar(&format, "format", "qcow2", "qcow2 or raw")
	create.Flags().StringVar(&size, "size", "", "the volume's size (10G, 512MiB; required)")
	_ = create.MarkFlagRequired("size")
	outputFlag(create, &output)
	return create
}

func newVolumeListCommand() *cobra.Command {
	var output string
	var pool string
	list := &cobra.Command{
		Use: "list", Short: "List volumes", Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			return apiCall(cmd, func(ctx context.Context, c *client.Client) error {
				vs, err := c.Volumes(ctx, pool)
				if err != nil {
					return err
				}
				if output == "json" {
					return printJSON(cmd.OutOrStdout(), vs)
				}
				var rows [][]string
				for _, v := range vs {
					rows = append(rows, []string{v.Pool, v.Name, v.Format, v.State, sizeText(v.VirtualSize), v.Backing, v.OwnerVM, v.Purpose})
				}
				return table(cmd.OutOrStdout(), []string{"POOL", "NAME", "FORMAT", "STATE", "SIZE", "BACKING", "OWNER VM", "PURPOSE"}, rows)
			})
		},
	}
	list.Flags().StringVar(&pool, "pool", "", "only the volumes of this pool")
	outputFlag(list, &output)
	return list
}

func newVolumeShowCommand() *cobra.Command {
	var output string
	show := &cobra.Command{
		Use: "show POOL NAME", Short: "Show a volume (and who uses it)", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			return apiCall(cmd, func(ctx context.Context, c *client.Client) error {
				v, err := c.Volume(ctx, args[0], args[1])
				if err != nil {
					return err
				}
				return printVolume(cmd.OutOrStdout(), output, v)
			})
		},
	}
	outputFlag(show, &output)
	return show
}

func newVolumeDeleteCommand() *cobra.Command {
	del := &cobra.Command{
		Use: "delete POOL NAME", Short: "Delete a volume nothing uses", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return vmCall(cmd, func(ctx context.Context, c *client.Client) error {
				if err := c.DeleteVolume(ctx, args[0], args[1]); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Volume %s of pool %s deleted.\n", args[1], args[0])
				return nil
			})
		},
	}
	return del
}

func newVolumeResizeCommand() *cobra.Command {
	resize := &cobra.Command{
		Use: "resize POOL NAME SIZE", Short: "Grow a volume (no VM that uses it may run)", Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := parseSize("SIZE", args[2])
			if err != nil {
				return err
			}
			return apiCall(cmd, func(ctx context.Context, c *client.Client) error {
				v, err := c.ResizeVolume(ctx, args[0], args[1], n)
				if err != nil {
					return err
				}
				return printVolume(cmd.OutOrStdout(), "table", v)
			})
		},
	}
	return resize
}

func newVolumeCloneCommand() *cobra.Command {
	var toPool, toFormat string
	clone := &cobra.Command{
		Use: "clone POOL NAME NEWNAME [--to-pool P] [--format F]", Short: "Copy a volume whole into a new one", Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			return apiCall(cmd, func(ctx context.Context, c *client.Client) error {
				v, err := c.CloneVolume(ctx, args[0], args[1], engineapi.VolumeClone{Name: args[2], Pool: toPool, Format: toFormat})
				if err != nil {
					return err
				}
				return printVolume(cmd.OutOrStdout(), "table", v)
			})
		},
	}
	clone.Flags().StringVar(&toPool, "to-pool", "", "the copy's pool (default: the same)")
	clone.Flags().StringVar(&toFormat, "format", "", "the copy's format (default: the same)")
	return clone
}

func newVolumeCancelUploadCommand() *cobra.Command {
	cancel := &cobra.Command{
		Use: "cancel-upload POOL NAME", Short: "Cancel an upload (its data is removed)", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return apiCall(cmd, func(ctx context.Context, c *client.Client) error {
				if err := c.CancelUpload(ctx, args[0], args[1]); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Upload of %s to pool %s cancelled.\n", args[1], args[0])
				return nil
			})
		},
	}
	return cancel
}

func newVolumeUploadCommand() *cobra.Command {
	var format, virtual, sha string
	var retries int
	var quiet bool
	cmd := &cobra.Command{
		Use:   "upload POOL NAME FILE [--format qcow2|raw]",
		Short: "Upload an image file as a volume (resumable)",
		Long: `Upload an image file as a new volume, through the engine to the agent of a host
that has the pool. Its SHA-256 and size are declared first; the data is sent from
where the upload stands, and an interruption is resumed (--retries times, or by
running the same command again). When the data is complete it is checked — the
checksum, the format and size with qemu-img, a qcow2 image's metadata, its
backing file inside the pool — and refused whole, with a code, when anything is
wrong. The format is read from the file (qcow2 header) unless given.`,
		Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := uploadFile(cmd, args[0], args[1], args[2], format, virtual, sha, retries, quiet)
			if err != nil {
				return err
			}
			return printVolume(cmd.OutOrStdout(), "table", v)
		},
	}
	f := cmd.Flags()
	f.StringVar(&format, "format", "", "qcow2 or raw (default: read from the file)")
	f.StringVar(&virtual, "virtual-size", "", "the virtual size the image must have (refused otherwise)")
	f.StringVar(&sha, "sha256", "", "the file's SHA-256 (default: computed)")
	f.IntVar(&retries, "retries", 5, "how many times an interrupted transfer is resumed")
	f.BoolVarP(&quiet, "quiet", "q", false, "no progress on standard error")
	return cmd
}

// uploadFile uploads a file as a volume, with progress on standard error.
func uploadFile(cmd *cobra.Command, pool, name, file, format, virtual, sha string, retries int, quiet bool) (engineapi.Volume, error) {
	f, err := os.Open(file)
	if err != nil {
		return engineapi.Volume{}, withStatus(2, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return engineapi.Volume{}, withStatus(2, err)
	}
	if format == "" {
		head := make([]byte, 4)
		n, _ := f.ReadAt(head, 0)
		format = "raw"
		if hostpath.IsQCOW2(head[:n]) {
			format = "qcow2"
		}
	}
	o := client.UploadOptions{SHA256: sha, Retries: retries}
	if virtual != "" {
		if o.VirtualSize, err = parseSize("--virtual-size", virtual); err != nil {
			return engineapi.Volume{}, err
		}
	}
	errw := cmd.ErrOrStderr()
	start := time.Now()
	if !quiet {
		fmt.Fprintf(errw, "Uploading %s (%s, %s) to pool %s as %s\n", file, format, sizeText(fi.Size()), pool, name)
		o.Progress = func(off, size int64) {
			el := time.Since(start).Seconds()
			rate := ""
			if el > 0 {
				rate = humanize.IBytes(uint64(float64(off)/el)) + "/s"
			}
			fmt.Fprintf(errw, "\r  %5.1f%%  %s of %s  %s   ", float64(off)*100/float64(max(size, 1)), sizeText(off), sizeText(size), rate)
		}
	}
	var v engineapi.Volume
	err = vmCall(cmd, func(ctx context.Context, c *client.Client) error {
		var err error
		v, err = c.UploadVolume(ctx, pool, name, format, f, fi.Size(), o)
		return err
	})
	if !quiet {
		fmt.Fprintln(errw)
	}
	return v, err
}

func printVolume(w io.Writer, output string, v engineapi.Volume) error {
	if output == "json" {
		return printJSON(w, v)
	}
	kv := [][2]string{{"Pool", v.Pool}, {"Name", v.Name}, {"ID", v.ID}, {"Format", v.Format}, {"State", v.State},
		{"Virtual size", sizeText(v.VirtualSize) + " (" + strconv.FormatInt(v.VirtualSize, 10) + " bytes)"}, {"Actual size", sizeText(v.ActualSize)},
		{"SHA-256", v.SHA256}, {"Backing volume", v.Backing}, {"Owner VM", v.OwnerVM}, {"Purpose", v.Purpose}}
	if u := v.UsedBy; u != nil {
		kv = append(kv, [2]string{"Used by", strings.Join(append(append(append(prefixed("VM ", u.VMs), prefixed("image ", u.Images)...),
			prefixed("template ", u.Templates)...), prefixed("overlay ", u.Overlays)...), ", ")})
	}
	if up := v.Upload; up != nil {
		kv = append(kv, [2]string{"Upload", fmt.Sprintf("%.1f%% (%d of %d bytes)", up.Percent, up.Offset, up.SizeBytes)})
	}
	kv = append(kv, [2]string{"Created", timeText(v.Created)})
	return keyValues(w, kv)
}

func prefixed(p string, l []string) []string {
	out := make([]string, len(l))
	for i, s := range l {
		out[i] = p + s
	}
	return out
}

// ----- images

func newImageCommand() *cobra.Command {
	return &cobra.Command{Use: "image", Short: "The image library: volumes with their architecture, to make VMs from"}
}

func newImageAddCommand() *cobra.Command {
	var output string
	var req engineapi.ImageRequest
	add := &cobra.Command{
		Use: "add NAME --pool P --volume V --arch A [--os OS]", Short: "Add a volume to the library", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Name = args[0]
			return apiCall(cmd, func(ctx context.Context, c *client.Client) error {
				im, err := c.CreateImage(ctx, req)
				if err != nil {
					return err
				}
				return printImage(cmd.OutOrStdout(), output, im)
			})
		},
	}
	imageFlags(add, &req, &output, true)
	return add
}

// imageFlags are the flags of image add and image upload.
func imageFlags(cmd *cobra.Command, req *engineapi.ImageRequest, output *string, withVolume bool) {
	f := cmd.Flags()
	f.StringVar(&req.Pool, "pool", "", "the image's pool (required)")
	if withVolume {
		f.StringVar(&req.Volume, "volume", "", "the image's volume (required)")
		_ = cmd.MarkFlagRequired("volume")
	}
	f.StringVar(&req.Arch, "arch", "", "the guest architecture it runs: ppc64le, x86_64, ... (required)")
	f.StringVar(&req.OS, "os", "", "its OS (debian12, ...)")
	f.StringVar(&req.Description, "description", "", "description")
	_ = cmd.MarkFlagRequired("pool")
	_ = cmd.MarkFlagRequired("arch")
	outputFlag(cmd, output)
}

func newImageUploadCommand() *cobra.Command {
	var output string
	var req engineapi.ImageRequest
	var format string
	var quiet bool
	upload := &cobra.Command{
		Use: "upload NAME FILE --pool P --arch A [--os OS]", Short: "Upload an image file and add it to the library", Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			req.Name = args[0]
			req.Volume = args[0] + "." + strings.TrimPrefix(strings.ToLower(extOf(args[1], format)), ".")
			if _, err := uploadFile(cmd, req.Pool, req.Volume, args[1], format, "", "", 5, quiet); err != nil {
				return err
			}
			return apiCall(cmd, func(ctx context.Context, c *client.Client) error {
				im, err := c.CreateImage(ctx, req)
				if err != nil {
					return err
				}
				return printImage(cmd.OutOrStdout(), output, im)
			})
		},
	}
	imageFlags(upload, &req, &output, false)
	upload.Flags().StringVar(&format, "format", "", "qcow2 or raw (default: read from the file)")
	upload.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress on standard error")
	return upload
}

func newImageListCommand() *cobra.Command {
	var output string
	var arch string
	list := &cobra.Command{
		Use: "list [--arch A]", Short: "List the library", Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			return apiCall(cmd, func(ctx context.Context, c *client.Client) error {
				ims, err := c.Images(ctx, arch)
				if err != nil {
					return err
				}
				if output == "json" {
					return printJSON(cmd.OutOrStdout(), ims)
				}
				var rows [][]string
				for _, im := range ims {
					rows = append(rows, []string{im.Name, im.Arch, im.OS, im.Format, sizeText(im.SizeBytes), im.Pool + "/" + im.Volume, im.Cluster})
				}
				return table(cmd.OutOrStdout(), []string{"NAME", "ARCH", "OS", "FORMAT", "SIZE", "VOLUME", "CLUSTER"}, rows)
			})
		},
	}
	list.Flags().StringVar(&arch, "arch", "", "only the images of this architecture")
	outputFlag(list, &output)
	return list
}

func newImageShowCommand() *cobra.Command {
	var output string
	show := &cobra.Command{
		Use: "show NAME", Short: "Show an image", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return apiCall(cmd, func(ctx context.Context, c *client.Client) error {
				im, err := c.Image(ctx, args[0])
				if err != nil {
					return err
				}
				return printImage(cmd.OutOrStdout(), output, im)
			})
		},
	}
	outputFlag(show, &output)
	return show
}

func newImageDeleteCommand() *cobra.Command {
	return removeCommand("delete NAME", "Remove an image and its volume (not while VMs' disks are overlays on it)", "Image %s removed.\n",
		apiCall, (*client.Client).DeleteImage)
}

// extOf is an image volume's extension: its format's.
func extOf(file, format string) string {
	if format != "" {
		return format
	}
	f, err := os.Open(file)
	if err != nil {
		return "raw"
	}
	defer f.Close()
	head := make([]byte, 4)
	n, _ := f.ReadAt(head, 0)
	if hostpath.IsQCOW2(head[:n]) {
		return "qcow2"
	}
	return "raw"
}

func printImage(w io.Writer, output string, im engineapi.Image) error {
	if output == "json" {
		return printJSON(w, im)
	}
	return keyValues(w, [][2]string{{"Name", im.Name}, {"ID", im.ID}, {"Architecture", im.Arch}, {"OS", im.OS},
		{"Volume", im.Pool + "/" + im.Volume}, {"Cluster", im.Cluster}, {"Format", im.Format}, {"Size", sizeText(im.SizeBytes)},
		{"SHA-256", im.SHA256}, {"Description", im.Description}, {"Created", timeText(im.Created)}})
}

// ----- templates

func newTemplateCommand() *cobra.Command {
	return &cobra.Command{Use: "template", Short: "Templates: a VM's definition and disks, to make VMs from (vm create --template)"}
}

func newTemplateCreateCommand() *cobra.Command {
	var output, from, description string
	create := &cobra.Command{
		Use: "create NAME --from VM", Short: "Make a template of a VM that is Down (its volumes are copied)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return vmCall(cmd, func(ctx context.Context, c *client.Client) error {
				t, err := c.CreateTemplate(ctx, engineapi.TemplateRequest{Name: args[0], VM: from, Description: description})
				if err != nil {
					return err
				}
				return printTemplate(cmd.OutOrStdout(), output, t)
			})
		},
	}
	create.Flags().StringVar(&from, "from", "", "the VM (Down) to make it of (required)")
	create.Flags().StringVar(&description, "description", "", "description")
	_ = create.MarkFlagRequired("from")
	outputFlag(create, &output)
	return create
}

func newTemplateListCommand() *cobra.Command {
	var output string
	list := &cobra.Command{
		Use: "list", Short: "List the templates", Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			return apiCall(cmd, func(ctx context.Context, c *client.Client) error {
				ts, err := c.Templates(ctx)
				if err != nil {
					return err
				}
				if output == "json" {
					return printJSON(cmd.OutOrStdout(), ts)
				}
				var rows [][]string
				for _, t := range ts {
					rows = append(rows, []string{t.Name, t.Cluster, t.Arch, strings.Join(t.Volumes, ", "), t.Description})
				}
				return table(cmd.OutOrStdout(), []string{"NAME", "CLUSTER", "ARCH", "VOLUMES", "DESCRIPTION"}, rows)
			})
		},
	}
	outputFlag(list, &output)
	return list
}

func newTemplateShowCommand() *cobra.Command {
	var output string
	show := &cobra.Command{
		Use: "show NAME", Short: "Show a template", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return apiCall(cmd, func(ctx context.Context, c *client.Client) error {
				t, err := c.Template(ctx, args[0])
				if err != nil {
					return err
				}
				return printTemplate(cmd.OutOrStdout(), output, t)
			})
		},
	}
	outputFlag(show, &output)
	return show
}

func newTemplateDeleteCommand() *cobra.Command {
	return removeCommand("delete NAME", "Remove a template and its volumes", "Template %s removed.\n", vmCall, (*client.Client).DeleteTemplate)
}

func printTemplate(w io.Writer, output string, t engineapi.Template) error {
	if output == "json" {
		return printJSON(w, t)
	}
	return keyValues(w, [][2]string{{"Name", t.Name}, {"ID", t.ID}, {"Cluster", t.Cluster}, {"Architecture", t.Arch},
		{"Volumes", strings.Join(t.Volumes, ", ")}, {"Description", t.Description}, {"Created", timeText(t.Created)}})
}
