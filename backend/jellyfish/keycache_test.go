package jellyfish

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/account/keyfile"
)

const cachePassword = "orbit lantern gravel mosaic"

func testAccount(t *testing.T) *account.Account {
	t.Helper()
	id, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	login, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var root account.RootKey
	rand.Read(root[:])
	return account.Restore("alice", id, root, account.VersionV1, login)
}

func sameAccount(t *testing.T, got, want *account.Account) {
	t.Helper()
	if got == nil {
		t.Fatal("no cached account")
	}
	if got.User != want.User || got.Root != want.Root || got.Version != want.Version ||
		!got.Identity.Equals(want.Identity) || got.LoginKey() == nil || !got.LoginKey().Equals(want.LoginKey()) {
		t.Fatal("cached account differs")
	}
}

// writeV1KeyCache writes slot/account.json as the version 1 backend did:
// compact JSON with an unsalted SHA-256 of username and password.
func writeV1KeyCache(t *testing.T, slot string, a *account.Account, password string) {
	t.Helper()
	id, _ := crypto.MarshalPrivateKey(a.Identity)
	login, _ := crypto.MarshalPrivateKey(a.LoginKey())
	h := sha256.New()
	h.Write([]byte("jellyfish/backend/v1/password-check\x00"))
	h.Write([]byte(a.User))
	h.Write([]byte{0})
	h.Write([]byte(password))
	b, err := json.Marshal(map[string]any{
		"version": 1, "username": a.User, "identity_key": id, "root_key": a.Root[:], "login_key": login,
		"kdf_version": a.Version, "password_check": h.Sum(nil),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(slot, keyCacheFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestAccountKeyCacheRoundTrip(t *testing.T) {
	slot := filepath.Join(t.TempDir(), "slot-0")
	a := testAccount(t)
	if err := saveKeyCache(slot, a, cachePassword, false); err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" {
		fi, err := os.Stat(filepath.Join(slot, keyCacheFile))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("key cache mode: %v", err)
		}
	}
	sameAccount(t, loadKeyCache(slot, "alice", cachePassword, false), a)
	for name, got := range map[string]*account.Account{
		"wrong password": loadKeyCache(slot, "alice", cachePassword+"!", false),
		"other user":     loadKeyCache(slot, "bob", cachePassword, false),
		"test KDF":       loadKeyCache(slot, "alice", cachePassword, true),
	} {
		if got != nil {
			t.Errorf("%s: cache opened", name)
		}
	}
}

// TestAccountKeyCacheV1 opens a version 1 slot cache with its SHA-256
// check once and rewrites it as a version 2 keyfile.
func TestAccountKeyCacheV1(t *testing.T) {
	slot := t.TempDir()
	a := testAccount(t)
	writeV1KeyCache(t, slot, a, cachePassword)
	if loadKeyCache(slot, "alice", "wrong horse battery", false) != nil {
		t.Fatal("version 1 cache opened with a wrong password")
	}
	if f, err := keyfile.Load(filepath.Join(slot, keyCacheFile)); err != nil || f.FormatVersion() != 1 {
		t.Fatalf("a failed check rewrote the cache: %v", err)
	}
	sameAccount(t, loadKeyCache(slot, "alice", cachePassword, false), a)
	b, err := os.ReadFile(filepath.Join(slot, keyCacheFile))
	if err != nil {
		t.Fatal(err)
	}
	f, err := keyfile.Parse(b)
	if err != nil || f.FormatVersion() != keyfile.Version || bytes.Contains(b, []byte("password_check")) {
		t.Fatalf("cache not rewritten as version %d (%v):\n%s", keyfile.Version, err, b)
	}
	sameAccount(t, loadKeyCache(slot, "alice", cachePassword, false), a)
}

// TestAccountKeyCacheUnreadable: a file that does not parse is ignored,
// and the next login replaces it.
func TestAccountKeyCacheUnreadable(t *testing.T) {
	slot := t.TempDir()
	if err := os.WriteFile(filepath.Join(slot, keyCacheFile), []byte("{\"version\": 2, \"user"), 0o600); err != nil {
		t.Fatal(err)
	}
	if loadKeyCache(slot, "alice", cachePassword, false) != nil {
		t.Fatal("garbage opened")
	}
	a := testAccount(t)
	if err := saveKeyCache(slot, a, cachePassword, false); err != nil {
		t.Fatal(err)
	}
	sameAccount(t, loadKeyCache(slot, "alice", cachePassword, false), a)
}
