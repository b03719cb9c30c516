package jellyfish

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/rclone/rclone/fs"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/account/keyfile"
)

// keyCacheFile holds, in a device slot, the keys of the account that last
// used it (a keyfile, like the cache `jellyfish account login` keeps), so
// later processes skip the password's Argon2id derivation and the login
// record lookup. It is as secret as the account itself (mode 0600 in a
// 0700 folder). Its password verifier binds it to the configured
// password, so a remote whose password was edited does not open with keys
// cached under the old one.
const keyCacheFile = "account.json"

// loadKeyCache returns the cached account of slot for user and password,
// or nil when there is none that matches. A version 1 cache that matches
// is rewritten in the current format, with a salted verifier in place of
// its SHA-256 password check.
func loadKeyCache(slot string, user account.Username, password string, testKDF bool) *account.Account {
	path := filepath.Join(slot, keyCacheFile)
	f, err := keyfile.Load(path)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			fs.Debugf(nil, "jellyfish: ignoring key cache: %v", err)
		}
		return nil
	}
	if f.Username != user || f.InsecureTestKDF != testKDF || !f.CheckPassword(password) {
		return nil
	}
	if f.FormatVersion() < keyfile.Version {
		if err := f.SetPassword(password); err == nil {
			err = f.Save(path)
		}
		if err != nil {
			fs.Debugf(nil, "jellyfish: rewrite key cache: %v", err)
		}
	}
	return f.Account()
}

// saveKeyCache writes the account's keys to slot, atomically.
func saveKeyCache(slot string, a *account.Account, password string, testKDF bool) error {
	f, err := keyfile.New(a, password, testKDF)
	if err != nil {
		return err
	}
	return f.Save(filepath.Join(slot, keyCacheFile))
}

// cachedAccountID returns the account whose keys the slot's key cache
// holds, whatever password they were cached under; "" when none.
func cachedAccountID(slot string) peer.ID {
	f, err := keyfile.Load(filepath.Join(slot, keyCacheFile))
	if err != nil {
		return ""
	}
	return f.AccountID
}

// formerDir is the folder of a slot where retireSlot moves what the slot
// held for another account.
const formerDir = "former"

// retireSlot moves everything the slot holds for account other (its key
// cache, device ID, head copy, journal, log cache, caretaker copies and
// maintenance state) into former/<other>-<unix time>/ inside the slot,
// so the account now logging in starts the slot afresh: a new device,
// nothing of the other account's written under this one's keys. This
// happens after a rotation (the remote's password now opens the new
// account). Nothing is deleted: changes the other account's journal still
// held, which no other process stored, stay there.
func retireSlot(slot string, other peer.ID, now time.Time) (string, error) {
	dest := filepath.Join(slot, formerDir, fmt.Sprintf("%s-%d", other, now.Unix()))
	if err := os.MkdirAll(dest, 0o700); err != nil {
		return "", err
	}
	entries, err := os.ReadDir(slot)
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		// The lock and the network node's folder (open, and no
		// account's) stay.
		if e.Name() == "lock" || e.Name() == "node" || e.Name() == formerDir {
			continue
		}
		if err := os.Rename(filepath.Join(slot, e.Name()), filepath.Join(dest, e.Name())); err != nil {
			return "", err
		}
	}
	return dest, nil
}
