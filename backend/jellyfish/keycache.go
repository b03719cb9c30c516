package jellyfish

import (
	"errors"
	"os"
	"path/filepath"

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
