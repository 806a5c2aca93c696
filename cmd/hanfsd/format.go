package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/hanfs/hanfs/fsstore"
	"github.com/hanfs/hanfs/shareddisk"
)

// defaultImageSize is the size of an image file format creates.
const defaultImageSize = 8 << 30

type formatFlags struct {
	disk        string
	size        int64
	journalSize int64
	label       string
	force       bool
}

func newFormatCmd(e *env) *cobra.Command {
	f := formatFlags{size: defaultImageSize}
	cmd := &cobra.Command{
		Use:   "format --disk PATH [--size 8GiB] [--journal-size SIZE] [--label L] [--force]",
		Short: "Create a new hanfs file system on a disk or image file",
		Long: `Format writes a new, empty hanfs file system to a block device or image file:
two superblock copies, the lease and mailbox areas used for failover, the
journal, the allocation bitmap and the data region.

When PATH does not exist, format creates a sparse image file of --size bytes.
When it exists, format uses it at its current size, and refuses to overwrite a
hanfs file system or a disk whose first MiB holds any data unless --force is
given. Sizes accept binary units (8GiB, 512MiB, 1T = 1TiB), decimal units
(10GB) and plain byte counts.`,
		Example: `  # a new 8 GiB sparse image file
  hanfsd format --disk ./data/hanfs.img

  # a 64 GiB image with a 32 MiB journal and a label
  hanfsd format --disk /srv/hanfs.img --size 64GiB --journal-size 32MiB --label exports

  # re-format an existing disk, destroying what is on it
  hanfsd format --disk /dev/sdb --force`,
		Args: exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runFormat(e, cmd, &f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.disk, "disk", "", "block device or image file to format (required); created as a sparse file if missing")
	fl.Var(sizeValue{&f.size}, "size", "size of the image file to create when PATH does not exist (min 64MiB)")
	fl.Var(sizeValue{&f.journalSize}, "journal-size", "journal length, a multiple of 4KiB (default: 1/64 of the disk, between 4MiB and 64MiB)")
	fl.StringVar(&f.label, "label", "", fmt.Sprintf("free-form name stored in the superblock (at most %d bytes)", shareddisk.MaxLabelLen))
	fl.BoolVar(&f.force, "force", false, "overwrite an existing hanfs file system or other data")
	return cmd
}

func runFormat(e *env, cmd *cobra.Command, f *formatFlags) error {
	if err := requireDisk(f.disk); err != nil {
		return err
	}
	var journalBlocks uint64
	if cmd.Flags().Changed("journal-size") {
		if f.journalSize <= 0 || f.journalSize%shareddisk.BlockSize != 0 {
			return usageError{fmt.Errorf("--journal-size %s: must be a positive multiple of 4KiB", formatSize(f.journalSize))}
		}
		journalBlocks = uint64(f.journalSize / shareddisk.BlockSize)
		if journalBlocks < shareddisk.MinJournalBlocks {
			return usageError{fmt.Errorf("--journal-size %s: the minimum is %s", formatSize(f.journalSize),
				formatSize(shareddisk.MinJournalBlocks*shareddisk.BlockSize))}
		}
	}
	if len(f.label) > shareddisk.MaxLabelLen {
		return usageError{fmt.Errorf("--label: %d bytes is longer than the maximum of %d", len(f.label), shareddisk.MaxLabelLen)}
	}

	created := false
	st, err := os.Stat(f.disk)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if f.size%shareddisk.BlockSize != 0 {
			return usageError{fmt.Errorf("--size %s: must be a multiple of 4KiB", formatSize(f.size))}
		}
		if f.size < shareddisk.MinSize {
			return usageError{fmt.Errorf("--size %s: the minimum disk size is %s", formatSize(f.size), formatSize(shareddisk.MinSize))}
		}
		if err := shareddisk.CreateImage(f.disk, f.size); err != nil {
			return err
		}
		created = true
		fmt.Fprintf(e.stdout, "Created sparse image file %s of %s.\n", f.disk, formatSize(f.size))
	case err != nil:
		return fmt.Errorf("format: %w", err)
	case st.IsDir():
		return fmt.Errorf("format %s: is a directory; --disk names a block device or an image file", f.disk)
	case cmd.Flags().Changed("size") && st.Mode().IsRegular() && st.Size() != f.size:
		return usageError{fmt.Errorf("--size %s: %s already exists with %s; --size only applies when format creates a new image (remove the file, or drop --size)",
			formatSize(f.size), f.disk, formatSize(st.Size()))}
	}
	removeCreated := func() {
		if created {
			os.Remove(f.disk)
		}
	}

	d, err := shareddisk.OpenFile(f.disk, shareddisk.OpenOptions{})
	if err != nil {
		removeCreated()
		return err
	}
	defer d.Close()
	if d.Size() < shareddisk.MinSize {
		removeCreated()
		return fmt.Errorf("format %s: the disk is %s, below the minimum of %s", f.disk, formatSize(d.Size()), formatSize(shareddisk.MinSize))
	}
	if !f.force {
		if err := refuseOverwrite(d); err != nil {
			return err
		}
	}
	sb, err := fsstore.Format(d, fsstore.FormatOptions{JournalBlocks: journalBlocks, Label: f.label, Force: f.force})
	if err != nil {
		removeCreated()
		return err
	}
	printSuperblock(e.stdout, f.disk, sb)
	return nil
}

// refuseOverwrite explains why a disk must not be formatted without --force.
func refuseOverwrite(d shareddisk.Disk) error {
	status, err := shareddisk.Probe(d)
	if err != nil {
		return err
	}
	switch status {
	case shareddisk.StatusHanfs:
		sb, err := shareddisk.ReadSuperblock(d)
		if err != nil {
			return err
		}
		label := ""
		if sb.Label != "" {
			label = fmt.Sprintf(", label %q", sb.Label)
		}
		return fmt.Errorf("refusing to format %s: it holds hanfs file system %s%s, formatted %s; pass --force to destroy it",
			d.Name(), sb.UUIDString(), label, sb.CreatedTime().Format("2006-01-02 15:04:05 MST"))
	case shareddisk.StatusDamaged:
		return fmt.Errorf("refusing to format %s: it holds a damaged hanfs superblock (try 'hanfsd fsck --disk %s'); pass --force to destroy it",
			d.Name(), d.Name())
	case shareddisk.StatusOther:
		return fmt.Errorf("refusing to format %s: it is not empty (its first MiB holds data that is not hanfs); pass --force to destroy it",
			d.Name())
	}
	return nil
}

// printSuperblock prints the identity and region map of a disk.
func printSuperblock(w io.Writer, path string, sb *shareddisk.Superblock) {
	l := sb.Layout
	fmt.Fprintf(w, "Formatted %s: hanfs format version %d\n", path, sb.Version)
	fmt.Fprintf(w, "  UUID:        %s\n", sb.UUIDString())
	if sb.Label != "" {
		fmt.Fprintf(w, "  Label:       %s\n", sb.Label)
	}
	fmt.Fprintf(w, "  Size:        %s (%d blocks of %d bytes)\n", formatSize(shareddisk.Bytes(l.TotalBlocks)), l.TotalBlocks, sb.BlockSize)
	fmt.Fprintf(w, "  Data:        %s\n", formatSize(shareddisk.Bytes(l.DataBlocks)))
	fmt.Fprintf(w, "  Journal:     %s\n", formatSize(shareddisk.Bytes(l.JournalBlocks)))
	fmt.Fprintf(w, "  Regions:\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "    region\tfirst block\tblocks\tsize\n")
	for _, r := range []struct {
		name         string
		start, count uint64
	}{
		{"superblock A", l.SuperblockA, 1},
		{"superblock B", l.SuperblockB, 1},
		{"lease", l.LeaseStart, l.LeaseBlocks},
		{fmt.Sprintf("mailbox (%d nodes)", sb.MaxNodes), l.MailboxStart, l.MailboxBlocks},
		{"fsinfo", l.FSInfo, 1},
		{"journal", l.JournalStart, l.JournalBlocks},
		{"bitmap", l.BitmapStart, l.BitmapBlocks},
		{"data", l.DataStart, l.DataBlocks},
	} {
		fmt.Fprintf(tw, "    %s\t%d\t%d\t%s\n", r.name, r.start, r.count, formatSize(shareddisk.Bytes(r.count)))
	}
	tw.Flush()
}
