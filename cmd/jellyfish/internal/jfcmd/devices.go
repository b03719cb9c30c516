package jfcmd

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
)

func init() {
	var remove, dataDir string
	c := &cobra.Command{
		Use:   "devices",
		Short: "List the devices of the account, or remove one",
		Long: `Lists the devices in the account record: its ID, name, when it was last
used, how far its log goes and whether the other devices' checkpoints
hold its changes. "(this device)" marks the device of the login cache,
"(this machine, slot-N)" the device slots of the backend's data dir on this
machine (--data-dir, default the backend's).

Every data dir a remote is written from (a machine, a container, a CI run,
a wiped cache) is a device, listed from its first change; the record lists
at most 32. Sessions retire
devices unused for device_retire_after (180 days) by themselves; --remove
removes one now, by ID (or at least 4 hex digits of it) or name. It is
refused while the device's changes are in no checkpoint the others load:
` + "`jellyfish backend checkpoint REMOTE:`" + ` on another device writes one. A removed
device that is used again goes on as a new device.`,
		Args: cobra.NoArgs,
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			o, err := accountOptionsFrom(cmd)
			if err != nil {
				return err
			}
			return accountDevices(ctx, cmd, o, remove, dataDir)
		}),
	}
	c.Flags().StringVar(&remove, "remove", "", "remove this device (ID, at least 4 hex digits of it, or name) from the account record")
	c.Flags().StringVar(&dataDir, "data-dir", "", "the backend's data dir on this machine, to mark its device slots (default: the backend's default)")
	c.Flags().String("passphrase-file", "", "read the device cache's passphrase, if it has one, from the first line of this file (mode 0600)")
	subcommands["account"] = append(subcommands["account"], c)
}

// accountOptionsFrom reads the account command's persistent flags.
func accountOptionsFrom(cmd *cobra.Command) (*accountOptions, error) {
	var o accountOptions
	f := cmd.Flags()
	var err error
	if o.boot.addrs, err = f.GetStringArray("bootstrap"); err != nil {
		return nil, err
	}
	if o.boot.file, err = f.GetString("bootstrap-file"); err != nil {
		return nil, err
	}
	if o.username, err = f.GetString("username"); err != nil {
		return nil, err
	}
	if o.configDir, err = f.GetString("config-dir"); err != nil {
		return nil, err
	}
	if o.testKDF, err = f.GetBool("insecure-test-kdf"); err != nil {
		return nil, err
	}
	if f.Lookup("passphrase-file") != nil {
		if o.passphraseFile, err = f.GetString("passphrase-file"); err != nil {
			return nil, err
		}
	}
	return &o, nil
}

func accountDevices(ctx context.Context, cmd *cobra.Command, o *accountOptions, remove, dataDir string) error {
	user, err := o.cachedUser()
	if err != nil {
		return err
	}
	path, err := cachePath(o.configDir, user)
	if err != nil {
		return err
	}
	cache, err := unlockDeviceCache(cmd, path, o.passphraseFile)
	if err != nil {
		return err
	}
	a := cache.Account()
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	s, err := openSession(ctx, o, cache.Bootstrap)
	if err != nil {
		return err
	}
	defer s.close()
	devs, err := jellyfish.ListDevices(ctx, s.c, a)
	if err != nil {
		return err
	}
	w := cmd.OutOrStdout()
	if remove != "" {
		d, err := jellyfish.FindDevice(devs, remove)
		if err != nil {
			return err
		}
		if err := jellyfish.RemoveDevice(ctx, s.c, a, d.ID); err != nil {
			return err
		}
		fmt.Fprintf(w, "removed device %x (%s) from the account record\n", d.ID[:], d.Name)
		if !d.Seen.IsZero() && time.Since(d.Seen) < time.Hour {
			fmt.Fprintf(w, "it was used %s ago: if it is still running, it adds itself again\n", time.Since(d.Seen).Round(time.Second))
		}
		return nil
	}
	local := jellyfish.LocalDevices(dataDir, user)
	fmt.Fprintf(w, "account id: %s\n", cache.AccountID)
	fmt.Fprintf(w, "devices:    %d of %d\n", len(devs), account.MaxDevices)
	var table strings.Builder
	tw := tabwriter.NewWriter(&table, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  ID\tNAME\tLAST SEEN\tCHANGES\t")
	for _, d := range devs {
		seen := "never"
		if !d.Seen.IsZero() {
			seen = d.Seen.UTC().Format("2006-01-02 15:04 UTC")
		}
		changes := "none"
		switch {
		case d.Err != nil:
			changes = "unreadable: " + d.Err.Error()
		case d.Batch > 0 && d.Held:
			changes = fmt.Sprintf("up to batch %d, in a checkpoint", d.Batch)
		case d.Batch > 0:
			changes = fmt.Sprintf("up to batch %d, not all in a checkpoint yet", d.Batch)
		}
		mark := ""
		if cache.Device != nil && d.ID == cache.Device.ID {
			mark = "(this device)"
		}
		if slot, ok := local[d.ID]; ok {
			mark = "(this machine, " + slot + ")"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", hex.EncodeToString(d.ID[:]), d.Name, seen, changes, mark)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, l := range strings.Split(strings.TrimSuffix(table.String(), "\n"), "\n") {
		fmt.Fprintln(w, strings.TrimRight(l, " "))
	}
	return nil
}
