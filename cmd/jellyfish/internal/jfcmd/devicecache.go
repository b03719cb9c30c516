package jfcmd

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/atomicfile"
)

// deviceCacheVersion is the "version" of the device cache files written
// by this binary.
const deviceCacheVersion = 1

// defaultConfigDir is where the device cache lives unless --config-dir
// says otherwise; accounts are in its "accounts" folder.
const defaultConfigDir = "~/.config/jellyfish"

// deviceCache is what a device keeps after `jellyfish account login`: the
// unlocked account keys, so later commands need no password. The file is
// JSON, mode 0600 in a 0700 folder, one per username:
//
//	<config dir>/accounts/<username>.json
//	{
//	  "version": 1,
//	  "username": "alice",
//	  "account_id": "12D3KooW…",          // peer ID of the identity key
//	  "identity_key": "<base64 of the libp2p-marshalled Ed25519 private key>",
//	  "root_key": "<base64 of 32 bytes>",
//	  "kdf_version": 1,
//	  "device_id": "<32 hex digits>",     // this device in the account record
//	  "device_name": "laptop",
//	  "bootstrap": ["/ip4/…/p2p/…", …]    // where login reached the network
//	}
//
// Whoever reads this file holds the account: it is as secret as the
// password.
type deviceCache struct {
	Version     int      `json:"version"`
	Username    string   `json:"username"`
	AccountID   string   `json:"account_id"`
	IdentityKey []byte   `json:"identity_key"`
	RootKey     []byte   `json:"root_key"`
	KDFVersion  uint8    `json:"kdf_version"`
	DeviceID    string   `json:"device_id"`
	DeviceName  string   `json:"device_name"`
	Bootstrap   []string `json:"bootstrap,omitempty"`
}

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

// newDeviceCache fills a cache from an unlocked account, keeping device
// identity from prev if there is one.
func newDeviceCache(a *account.Account, prev *deviceCache, deviceName string, boot []string) (*deviceCache, error) {
	ik, err := crypto.MarshalPrivateKey(a.Identity)
	if err != nil {
		return nil, err
	}
	c := &deviceCache{
		Version: deviceCacheVersion, Username: string(a.User), AccountID: a.ID().String(),
		IdentityKey: ik, RootKey: append([]byte(nil), a.Root[:]...), KDFVersion: a.Version,
		DeviceName: deviceName, Bootstrap: boot,
	}
	if prev != nil && prev.AccountID == c.AccountID && prev.DeviceID != "" {
		c.DeviceID = prev.DeviceID
		if deviceName == "" {
			c.DeviceName = prev.DeviceName
		}
	} else {
		var id account.DeviceID
		if _, err := rand.Read(id[:]); err != nil {
			return nil, err
		}
		c.DeviceID = hex.EncodeToString(id[:])
	}
	return c, nil
}

// save writes the cache atomically with mode 0600 in a 0700 folder.
func (c *deviceCache) save(path string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("device cache: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("device cache: %w", err)
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("device cache: %w", err)
	}
	return nil
}

// loadDeviceCache reads and checks a cache file. A missing file gives
// errNoCache.
func loadDeviceCache(path string) (*deviceCache, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w (%s)", errNoCache, path)
	}
	if err != nil {
		return nil, fmt.Errorf("device cache: %w", err)
	}
	var c deviceCache
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("device cache %s: %w", path, err)
	}
	if c.Version != deviceCacheVersion {
		return nil, fmt.Errorf("device cache %s: version %d, this binary reads %d", path, c.Version, deviceCacheVersion)
	}
	if _, err := c.account(); err != nil {
		return nil, fmt.Errorf("device cache %s: %w", path, err)
	}
	return &c, nil
}

// account rebuilds the unlocked account from the cache and checks that
// the identity key matches the cached account ID.
func (c *deviceCache) account() (*account.Account, error) {
	user, err := account.NormalizeUsername(c.Username)
	if err != nil {
		return nil, err
	}
	ik, err := crypto.UnmarshalPrivateKey(c.IdentityKey)
	if err != nil {
		return nil, fmt.Errorf("identity key: %w", err)
	}
	id, err := peer.IDFromPrivateKey(ik)
	if err != nil || id.String() != c.AccountID {
		return nil, fmt.Errorf("identity key does not match account %s", c.AccountID)
	}
	a := &account.Account{User: user, Identity: ik, Version: c.KDFVersion}
	if len(c.RootKey) != len(a.Root) {
		return nil, fmt.Errorf("root key of %d bytes", len(c.RootKey))
	}
	copy(a.Root[:], c.RootKey)
	return a, nil
}

// deviceID returns the cached device ID.
func (c *deviceCache) deviceID() (account.DeviceID, error) {
	var id account.DeviceID
	b, err := hex.DecodeString(c.DeviceID)
	if err != nil || len(b) != len(id) {
		return id, fmt.Errorf("device cache: bad device id %q", c.DeviceID)
	}
	copy(id[:], b)
	return id, nil
}
