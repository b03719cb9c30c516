package jellyfish

import (
	"crypto/sha256"
	"encoding/json"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/atomicfile"
)

// keyCacheFile holds, in a device slot, the keys of the account that last
// used it, so later processes skip the password's Argon2id derivation and
// the login record lookup. It is as secret as the account itself (mode
// 0600 in a 0700 folder), like the cache `jellyfish account login` keeps.
const keyCacheFile = "account.json"

type keyCache struct {
	Version   int    `json:"version"`
	Username  string `json:"username"`
	Identity  []byte `json:"identity_key"`
	Root      []byte `json:"root_key"`
	Login     []byte `json:"login_key"`
	KDF       uint8  `json:"kdf_version"`
	TestKDF   bool   `json:"insecure_test_kdf,omitempty"`
	PassCheck []byte `json:"password_check"`
}

// passCheck binds the cache to the configured password, so a remote whose
// password was edited does not open with keys cached under the old one.
// It adds nothing an attacker with the file lacks: the file holds the keys.
func passCheck(user account.Username, password string) []byte {
	h := sha256.New()
	h.Write([]byte("jellyfish/backend/v1/password-check\x00"))
	h.Write([]byte(user))
	h.Write([]byte{0})
	h.Write([]byte(password))
	return h.Sum(nil)
}

// loadKeyCache returns the cached account of slot for user and password,
// or nil when there is none that matches.
func loadKeyCache(slot string, user account.Username, password string, testKDF bool) *account.Account {
	b, err := os.ReadFile(filepath.Join(slot, keyCacheFile))
	if err != nil {
		return nil
	}
	var c keyCache
	if json.Unmarshal(b, &c) != nil || c.Version != 1 || c.Username != string(user) || c.TestKDF != testKDF ||
		string(c.PassCheck) != string(passCheck(user, password)) || len(c.Root) != len(account.RootKey{}) {
		return nil
	}
	id, err := crypto.UnmarshalPrivateKey(c.Identity)
	if err != nil {
		return nil
	}
	var login crypto.PrivKey
	if len(c.Login) > 0 {
		if login, err = crypto.UnmarshalPrivateKey(c.Login); err != nil {
			return nil
		}
	}
	var root account.RootKey
	copy(root[:], c.Root)
	return account.Restore(user, id, root, c.KDF, login)
}

// saveKeyCache writes the account's keys to slot, atomically.
func saveKeyCache(slot string, a *account.Account, password string, testKDF bool) error {
	id, err := crypto.MarshalPrivateKey(a.Identity)
	if err != nil {
		return err
	}
	c := keyCache{Version: 1, Username: string(a.User), Identity: id, Root: a.Root[:], KDF: a.Version, TestKDF: testKDF, PassCheck: passCheck(a.User, password)}
	if lk := a.LoginKey(); lk != nil {
		if c.Login, err = crypto.MarshalPrivateKey(lk); err != nil {
			return err
		}
	}
	b, err := json.Marshal(&c)
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(slot, keyCacheFile), b, 0o600)
}
