package keyfile

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
)

// The fixtures in testdata were written by the version 1 code of the
// backend (v1-backend.json, compact, with password_check) and of
// `jellyfish account login` (v1-device.json, indented, with the device
// fields), from these keys and this password.
const (
	fixturePassword = "orbit lantern gravel mosaic"
	fixtureAccount  = "12D3KooWK99VoVxNE7XzyBwXEzW7xhK7Gpv85r9F3V3fyKSUKPH5"
)

// fixedKey is the Ed25519 key whose seed is 32 bytes of b.
func fixedKey(t testing.TB, b byte) crypto.PrivKey {
	t.Helper()
	k, err := crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, ed25519.SeedSize)))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func fixtureAccountKeys(t testing.TB) *account.Account {
	var root account.RootKey
	copy(root[:], bytes.Repeat([]byte{3}, len(root)))
	return account.Restore("alice", fixedKey(t, 1), root, account.VersionV1, fixedKey(t, 2))
}

func sameKeys(t *testing.T, got *account.Account, want *account.Account) {
	t.Helper()
	if got.User != want.User || got.Root != want.Root || got.Version != want.Version || !got.Identity.Equals(want.Identity) {
		t.Fatalf("account %s/%v differs from %s/%v", got.User, got.ID(), want.User, want.ID())
	}
	if (got.LoginKey() == nil) != (want.LoginKey() == nil) || (got.LoginKey() != nil && !got.LoginKey().Equals(want.LoginKey())) {
		t.Fatal("login key differs")
	}
}

func TestSaveLoad(t *testing.T) {
	a := fixtureAccountKeys(t)
	f, err := New(a, fixturePassword, false)
	if err != nil {
		t.Fatal(err)
	}
	f.Device = &account.Device{ID: account.DeviceID{1, 2, 3}, Name: "laptop"}
	f.Bootstrap = []string{"/ip4/127.0.0.1/tcp/4001"}
	path := filepath.Join(t.TempDir(), "accounts", "alice.json")
	if err := f.Save(path); err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" {
		for p, want := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700} {
			if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != want {
				t.Fatalf("%s: %v, %v; want mode %v", p, fi.Mode().Perm(), err, want)
			}
		}
	}
	g, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	sameKeys(t, g.Account(), a)
	if g.FormatVersion() != Version || g.AccountID.String() != fixtureAccount || g.InsecureTestKDF {
		t.Fatalf("version %d, account %s, test KDF %v", g.FormatVersion(), g.AccountID, g.InsecureTestKDF)
	}
	if g.Device == nil || *g.Device != *f.Device || len(g.Bootstrap) != 1 || g.Bootstrap[0] != f.Bootstrap[0] {
		t.Fatalf("device %+v, bootstrap %v", g.Device, g.Bootstrap)
	}
	if !g.CheckPassword(fixturePassword) || g.CheckPassword(fixturePassword+" ") || g.CheckPassword("") {
		t.Fatal("verifier accepts the wrong passwords or refuses the right one")
	}
	if g.verifier.argon2Params != defaultVerifier {
		t.Fatalf("verifier cost %+v, want %+v", g.verifier.argon2Params, defaultVerifier)
	}

	// The JSON holds no password, nor the version 1 check.
	b, _ := os.ReadFile(path)
	if bytes.Contains(b, []byte("orbit")) || bytes.Contains(b, []byte("password_check")) {
		t.Fatalf("file leaks:\n%s", b)
	}
	// A second verifier of the same password has another salt.
	f2, _ := New(a, fixturePassword, false)
	if bytes.Equal(f2.verifier.salt, f.verifier.salt) || bytes.Equal(f2.verifier.hash, f.verifier.hash) {
		t.Fatal("verifiers share a salt")
	}
}

func TestTestKDFVerifierIsCheap(t *testing.T) {
	f, err := New(fixtureAccountKeys(t), fixturePassword, true)
	if err != nil {
		t.Fatal(err)
	}
	if f.verifier.argon2Params != testVerifier {
		t.Fatalf("verifier cost %+v", f.verifier.argon2Params)
	}
	b, err := f.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	g, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if !g.InsecureTestKDF || !g.CheckPassword(fixturePassword) {
		t.Fatal("test-KDF file does not round-trip")
	}
}

// TestVerifierKnownAnswer pins the verifier's derivation.
func TestVerifierKnownAnswer(t *testing.T) {
	v := &verifier{argon2Params: defaultVerifier, salt: bytes.Repeat([]byte{7}, saltSize)}
	got := hex.EncodeToString(v.compute("alice", fixturePassword))
	const want = "b69bbbde04d3e7ce248b699df9834a285c084d20338f4493408cd8752c86fc79"
	if got != want {
		t.Fatalf("verifier %s, want %s", got, want)
	}
}

// TestV1Backend reads the backend's version 1 slot cache, checks the
// password with its SHA-256 check once, and upgrades it.
func TestV1Backend(t *testing.T) {
	f, err := Load("testdata/v1-backend.json")
	if err != nil {
		t.Fatal(err)
	}
	sameKeys(t, f.Account(), fixtureAccountKeys(t))
	if f.FormatVersion() != 1 || f.AccountID.String() != fixtureAccount || f.Device != nil {
		t.Fatalf("version %d, account %s, device %v", f.FormatVersion(), f.AccountID, f.Device)
	}
	if !f.HasVerifier() || !f.CheckPassword(fixturePassword) || f.CheckPassword("wrong password here") {
		t.Fatal("version 1 password check")
	}
	if err := f.SetPassword(fixturePassword); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "account.json")
	if err := f.Save(path); err != nil {
		t.Fatal(err)
	}
	g, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if g.FormatVersion() != Version || g.legacy != nil || !g.CheckPassword(fixturePassword) {
		t.Fatalf("upgraded file: version %d, legacy check %x", g.FormatVersion(), g.legacy)
	}
	sameKeys(t, g.Account(), fixtureAccountKeys(t))
}

// TestV1Device reads the version 1 cache of `jellyfish account login`:
// keys and device, but no password check, so it cannot be written again
// before a login sets one.
func TestV1Device(t *testing.T) {
	f, err := Load("testdata/v1-device.json")
	if err != nil {
		t.Fatal(err)
	}
	want := fixtureAccountKeys(t)
	if f.Login != nil {
		t.Fatal("v1 device cache has no login key")
	}
	if f.Username != "alice" || f.Root != want.Root || !f.Identity.Equals(want.Identity) || f.AccountID.String() != fixtureAccount {
		t.Fatal("keys differ")
	}
	if f.FormatVersion() != 1 || f.Device == nil || f.Device.Name != "laptop" ||
		hex.EncodeToString(f.Device.ID[:]) != "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf" || len(f.Bootstrap) != 1 {
		t.Fatalf("device %+v, bootstrap %v", f.Device, f.Bootstrap)
	}
	if f.HasVerifier() || f.CheckPassword(fixturePassword) {
		t.Fatal("a version 1 device cache has no password check")
	}
	if _, err := f.Marshal(); err == nil {
		t.Fatal("marshalled without a verifier")
	}
	if err := f.SetPassword(fixturePassword); err != nil {
		t.Fatal(err)
	}
	b, err := f.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	g, err := Parse(b)
	if err != nil || g.Device == nil || *g.Device != *f.Device || !g.CheckPassword(fixturePassword) {
		t.Fatalf("upgraded device cache: %v", err)
	}
}

func TestLoadMissing(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "none.json")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err %v, want fs.ErrNotExist", err)
	}
}

// TestRejects: every malformed or mismatched file is refused with
// ErrFormat.
func TestRejects(t *testing.T) {
	f, err := New(fixtureAccountKeys(t), fixturePassword, false)
	if err != nil {
		t.Fatal(err)
	}
	good, err := f.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(good); err != nil {
		t.Fatal(err)
	}
	other, _ := peer.IDFromPrivateKey(fixedKey(t, 9))
	otherKey, _ := crypto.MarshalPrivateKey(fixedKey(t, 9))
	secp, _, err := crypto.GenerateSecp256k1Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	secpKey, _ := crypto.MarshalPrivateKey(secp)
	secpID, _ := peer.IDFromPrivateKey(secp)
	edit := func(change func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(good, &m); err != nil {
			t.Fatal(err)
		}
		change(m)
		b, _ := json.Marshal(m)
		return b
	}
	verifierField := func(k string, v any) func(m map[string]any) {
		return func(m map[string]any) { m["verifier"].(map[string]any)[k] = v }
	}
	cases := map[string][]byte{
		"not JSON":            []byte("{\"version\": 2,"),
		"empty":               nil,
		"too large":           append(good, bytes.Repeat([]byte(" "), MaxSize)...),
		"version 3":           edit(func(m map[string]any) { m["version"] = 3 }),
		"version 4":           edit(func(m map[string]any) { m["version"] = 4 }),
		"other account":       edit(func(m map[string]any) { m["account_id"] = other.String() }),
		"no account id":       edit(func(m map[string]any) { delete(m, "account_id") }),
		"bad account id":      edit(func(m map[string]any) { m["account_id"] = "nope" }),
		"username not NFC":    edit(func(m map[string]any) { m["username"] = "cafe\u0301" }),
		"empty username":      edit(func(m map[string]any) { m["username"] = "" }),
		"short root key":      edit(func(m map[string]any) { m["root_key"] = "AwMD" }),
		"bad identity":        edit(func(m map[string]any) { m["identity_key"] = "AAAA" }),
		"bad login key":       edit(func(m map[string]any) { m["login_key"] = "AAAA" }),
		"no verifier":         edit(func(m map[string]any) { delete(m, "verifier") }),
		"verifier kdf":        edit(verifierField("kdf", "scrypt")),
		"verifier too cheap":  edit(verifierField("memory_kib", 64)),
		"verifier too costly": edit(verifierField("memory_kib", 4<<20)),
		"verifier time 0":     edit(verifierField("time", 0)),
		"verifier time 1000":  edit(verifierField("time", 1000)),
		"verifier lanes 0":    edit(verifierField("lanes", 0)),
		"verifier short salt": edit(verifierField("salt", "AAAA")),
		"verifier short hash": edit(verifierField("hash", "AAAA")),
		"device id":           edit(func(m map[string]any) { m["device_id"] = "xyz" }),
		"device name": edit(func(m map[string]any) {
			m["device_id"] = strings.Repeat("ab", 16)
			m["device_name"] = strings.Repeat("n", 65)
		}),
		"bootstrap count":     edit(func(m map[string]any) { m["bootstrap"] = make([]string, MaxBootstrap+1) }),
		"identity of another": edit(func(m map[string]any) { m["identity_key"] = otherKey }),
		"secp256k1 identity":  edit(func(m map[string]any) { m["identity_key"] = secpKey; m["account_id"] = secpID.String() }),
	}
	for name, b := range cases {
		if _, err := Parse(b); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: err %v, want ErrFormat", name, err)
		}
	}
	// A cheap verifier is fine on a test-KDF file.
	cheap := edit(func(m map[string]any) {
		m["insecure_test_kdf"] = true
		m["verifier"].(map[string]any)["memory_kib"] = 8
	})
	if _, err := Parse(cheap); err != nil {
		t.Fatalf("test-KDF file with a cheap verifier: %v", err)
	}
}

// BenchmarkVerifier measures what a password check costs a process (and
// a guess costs an attacker who has the file).
func BenchmarkVerifier(b *testing.B) {
	for _, c := range []struct {
		name string
		p    argon2Params
	}{{"default", defaultVerifier}, {"test", testVerifier}} {
		b.Run(c.name, func(b *testing.B) {
			v := &verifier{argon2Params: c.p, salt: make([]byte, saltSize)}
			for b.Loop() {
				v.compute("alice", fixturePassword)
			}
		})
	}
}

// FuzzParse: no input panics Parse or ParseHeader, an encrypted file
// gives ErrPassphraseNeeded, and what parses and has a verifier marshals
// to a file that parses to the same keys.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"testdata/v1-backend.json", "testdata/v1-device.json", "testdata/v3-encrypted.json"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	kf, err := New(fixtureAccountKeys(f), fixturePassword, true)
	if err != nil {
		f.Fatal(err)
	}
	kf.Device = &account.Device{Name: "laptop"}
	b, err := kf.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		h, herr := ParseHeader(b)
		if herr != nil && !errors.Is(herr, ErrFormat) {
			t.Fatalf("header error %v does not match ErrFormat", herr)
		}
		k, err := Parse(b)
		if errors.Is(err, ErrPassphraseNeeded) {
			if herr != nil || !h.Encrypted {
				t.Fatalf("passphrase needed, but header %+v, %v", h, herr)
			}
			return
		}
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v does not match ErrFormat", err)
			}
			return
		}
		if herr != nil || h.Encrypted || h.AccountID != k.AccountID {
			t.Fatalf("file parses but header %+v, %v", h, herr)
		}
		if k.verifier == nil {
			return
		}
		out, err := k.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		k2, err := Parse(out)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		if k2.AccountID != k.AccountID || k2.Root != k.Root || k2.Username != k.Username || !bytes.Equal(k2.verifier.hash, k.verifier.hash) {
			t.Fatal("round trip changed the file")
		}
	})
}
