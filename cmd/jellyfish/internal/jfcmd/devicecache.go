package jfcmd

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/account/keyfile"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/atomicfile"
)

// defaultConfigDir is where the device cache lives unless --config-dir
// says otherwise; accounts are in its "accounts" folder.
const defaultConfigDir = "~/.config/jellyfish"

// The device cache is what a device keeps after `jellyfish account login`:
// the unlocked account keys, so later commands need no password, in the
// account key file format (package keyfile) with its optional device
// fields (this device's ID and name in the account record, and the
// bootstrap addresses login reached the network through). One file per
// username, mode 0600 in a 0700 folder:
//
//	<config dir>/accounts/<username>.json
//
// Whoever reads this file holds the account: it is as secret as the
// password. `account login --passphrase` and `account passphrase` seal
// its keys under a passphrase (keyfile version 3); its header (username,
// account ID, device, bootstrap) stays readable without it, which is all
// show, recovery-key and the bootstrap fallback need.

// errBadPassphrase: the passphrase given does not open the key file.
var errBadPassphrase = errors.New("wrong passphrase for the account key file")

// errNoCache means the device has no cached login for the account.
var errNoCache = errors.New("this device is not logged in to that account: run `jellyfish account login` first")

// accountsDir returns <configDir>/accounts.
func accountsDir(configDir string) (string, error) {
	dir, err := expandHome(configDir)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "accounts"), nil
}

// cachePath returns the cache file of user under configDir.
func cachePath(configDir string, user account.Username) (string, error) {
	dir, err := accountsDir(configDir)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, string(user)+".json"), nil
}

// newDeviceCache fills a cache from an account unlocked with password,
// keeping the device identity of prev (the previous cache's header) when
// prev is of the same account.
func newDeviceCache(a *account.Account, password string, testKDF bool, prev *keyfile.Header, deviceName string, boot []string) (*keyfile.File, error) {
	c, err := keyfile.New(a, password, testKDF)
	if err != nil {
		return nil, err
	}
	c.Bootstrap = boot
	if prev != nil && prev.AccountID == c.AccountID && prev.Device != nil {
		d := *prev.Device
		if host, _ := os.Hostname(); deviceName == "" && host != "" && strings.HasPrefix(host, d.Name) {
			// Named after the host by an older version: the account
			// record is public.
			deviceName = fmt.Sprintf("device-%x", d.ID[:3])
		}
		if deviceName != "" {
			d.Name = deviceName
		}
		c.Device = &d
		return c, nil
	}
	c.Device = &account.Device{Name: deviceName}
	if _, err := rand.Read(c.Device.ID[:]); err != nil {
		return nil, err
	}
	if c.Device.Name == "" {
		// The account record is public: never the host name.
		c.Device.Name = fmt.Sprintf("device-%x", c.Device.ID[:3])
	}
	return c, nil
}

// saveDeviceCache writes the cache atomically, mode 0600 in a 0700 folder.
func saveDeviceCache(c *keyfile.File, path string) error {
	if err := c.Save(path); err != nil {
		return fmt.Errorf("device cache: %w", err)
	}
	return nil
}

// loadDeviceHeader reads what a cache file says in the clear (all of it
// checked for a file without a passphrase). A missing file gives
// errNoCache.
func loadDeviceHeader(path string) (*keyfile.Header, error) {
	h, err := keyfile.LoadHeader(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w (%s)", errNoCache, path)
	}
	if err != nil {
		return nil, fmt.Errorf("device cache: %w", err)
	}
	return h, nil
}

// openDeviceCache reads and checks a cache file (version 1 to 3; the
// identity key must match the account ID), opening an encrypted one with
// passphrase. A missing file gives errNoCache; a wrong passphrase says so
// and names the file.
func openDeviceCache(path, passphrase string) (*keyfile.File, error) {
	c, err := keyfile.LoadWithPassphrase(path, passphrase)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("%w (%s)", errNoCache, path)
	case errors.Is(err, keyfile.ErrBadPassphrase):
		return nil, fmt.Errorf("%w %s", errBadPassphrase, path)
	case err != nil:
		return nil, fmt.Errorf("device cache: %w", err)
	}
	return c, nil
}

// unlockDeviceCache opens a cache file, asking for its passphrase
// (passphraseFile, else JELLYFISH_ACCOUNT_PASSPHRASE, else the terminal)
// only when it has one.
func unlockDeviceCache(cmd *cobra.Command, path, passphraseFile string) (*keyfile.File, error) {
	h, err := loadDeviceHeader(path)
	if err != nil {
		return nil, err
	}
	if !h.Encrypted {
		return openDeviceCache(path, "")
	}
	pass, err := readPassphrase(cmd, passphraseFile, envAccountPassphrase, "Passphrase of "+path, false)
	if err != nil {
		return nil, err
	}
	return openDeviceCache(path, pass)
}

// rewriteKeyFile replaces an existing key file with f, mode 0600, through
// atomicfile, leaving its folder as it is (unlike keyfile's Save, which
// makes the folder 0700: right for the device cache's own folder, not for
// one the user chose).
func rewriteKeyFile(f *keyfile.File, path string) error {
	b, err := f.Marshal()
	if err != nil {
		return err
	}
	return atomicfile.Write(path, b, 0o600)
}
