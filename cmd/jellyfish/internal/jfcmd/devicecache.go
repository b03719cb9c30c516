package jfcmd

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/account/keyfile"
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
// password.

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
// keeping the device identity of prev when prev is of the same account.
func newDeviceCache(a *account.Account, password string, testKDF bool, prev *keyfile.File, deviceName string, boot []string) (*keyfile.File, error) {
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

// loadDeviceCache reads and checks a cache file (version 1 or 2; the
// identity key must match the account ID). A missing file gives
// errNoCache.
func loadDeviceCache(path string) (*keyfile.File, error) {
	c, err := keyfile.Load(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w (%s)", errNoCache, path)
	}
	if err != nil {
		return nil, fmt.Errorf("device cache: %w", err)
	}
	return c, nil
}
