package keyfile

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
)

// fixturePassphrase seals testdata/v3-encrypted.json, written by this
// version's code from fixtureAccountKeys (test KDF, device "node").
const fixturePassphrase = "tidal copper quarry whistle"

// newSealed returns a test-KDF file with device fields, sealed under
// fixturePassphrase.
func newSealed(t *testing.T) *File {
	t.Helper()
	f, err := New(fixtureAccountKeys(t), fixturePassword, true)
	if err != nil {
		t.Fatal(err)
	}
	f.Device = &account.Device{ID: account.DeviceID{9, 8, 7}, Name: "node"}
	f.Bootstrap = []string{"/ip4/127.0.0.1/tcp/4001"}
	if err := f.SetPassphrase(fixturePassphrase); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestPassphraseRoundTrip: a sealed file holds no key in the clear; it
// loads only with its passphrase (none: ErrPassphraseNeeded, a wrong one:
// ErrBadPassphrase, the file untouched), its header reads without it, a
// second Save keeps the salt with a new nonce, and removing the
// passphrase writes version 2 again.
func TestPassphraseRoundTrip(t *testing.T) {
	f := newSealed(t)
	if !f.Encrypted() {
		t.Fatal("not encrypted after SetPassphrase")
	}
	path := filepath.Join(t.TempDir(), "accounts", "alice.json")
	if err := f.Save(path); err != nil {
		t.Fatal(err)
	}
	if f.FormatVersion() != VersionEncrypted {
		t.Fatalf("saved as version %d", f.FormatVersion())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, leak := range []string{"identity_key", "root_key", "login_key", "verifier", fixturePassphrase, "tidal"} {
		if bytes.Contains(b, []byte(leak)) {
			t.Fatalf("sealed file holds %q in the clear:\n%s", leak, b)
		}
	}
	a := fixtureAccountKeys(t)
	for _, k := range []crypto.PrivKey{a.Identity, a.LoginKey()} {
		mk, err := crypto.MarshalPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(base64.StdEncoding.EncodeToString(mk))) {
			t.Fatal("sealed file holds a key in the clear")
		}
	}
	if bytes.Contains(b, []byte(base64.StdEncoding.EncodeToString(a.Root[:]))) {
		t.Fatal("sealed file holds the root key in the clear")
	}

	if _, err := Load(path); !errors.Is(err, ErrPassphraseNeeded) || errors.Is(err, ErrFormat) {
		t.Fatalf("load without passphrase: %v, want ErrPassphraseNeeded", err)
	}
	if _, err := LoadWithPassphrase(path, fixturePassphrase+"!"); !errors.Is(err, ErrBadPassphrase) || errors.Is(err, ErrFormat) {
		t.Fatalf("load with a wrong passphrase: %v, want ErrBadPassphrase", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, b) {
		t.Fatal("a failed load changed the file")
	}

	h, err := LoadHeader(path)
	if err != nil {
		t.Fatal(err)
	}
	if !h.Encrypted || h.Version != VersionEncrypted || h.Username != "alice" || h.AccountID.String() != fixtureAccount ||
		h.Device == nil || *h.Device != *f.Device || len(h.Bootstrap) != 1 || !h.InsecureTestKDF {
		t.Fatalf("header %+v", h)
	}

	g, err := LoadWithPassphrase(path, fixturePassphrase)
	if err != nil {
		t.Fatal(err)
	}
	sameKeys(t, g.Account(), fixtureAccountKeys(t))
	if !g.Encrypted() || g.FormatVersion() != VersionEncrypted || !g.CheckPassword(fixturePassword) ||
		g.Device == nil || *g.Device != *f.Device || g.AccountID.String() != fixtureAccount {
		t.Fatalf("opened file: encrypted %v, version %d, device %+v", g.Encrypted(), g.FormatVersion(), g.Device)
	}

	// Saving what was opened keeps the passphrase and its salt, with a
	// fresh nonce.
	if err := g.Save(path); err != nil {
		t.Fatal(err)
	}
	b2, _ := os.ReadFile(path)
	w1, w2 := decodeWire(t, b), decodeWire(t, b2)
	if !bytes.Equal(w1.Passphrase.Salt, w2.Passphrase.Salt) || bytes.Equal(w1.Sealed[:24], w2.Sealed[:24]) {
		t.Fatal("a second save changed the salt or reused the nonce")
	}
	if _, err := LoadWithPassphrase(path, fixturePassphrase); err != nil {
		t.Fatal(err)
	}

	// A new passphrase: the old one no longer opens the file.
	if err := g.SetPassphrase("other words entirely here"); err != nil {
		t.Fatal(err)
	}
	if err := g.Save(path); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadWithPassphrase(path, fixturePassphrase); !errors.Is(err, ErrBadPassphrase) {
		t.Fatalf("old passphrase after a change: %v", err)
	}

	// No passphrase: version 2, readable by Load and by older binaries.
	if err := g.SetPassphrase(""); err != nil {
		t.Fatal(err)
	}
	if err := g.Save(path); err != nil {
		t.Fatal(err)
	}
	p, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if p.Encrypted() || p.FormatVersion() != Version {
		t.Fatalf("after removing the passphrase: encrypted %v, version %d", p.Encrypted(), p.FormatVersion())
	}
	sameKeys(t, p.Account(), fixtureAccountKeys(t))
}

func decodeWire(t *testing.T, b []byte) *wire {
	t.Helper()
	w, err := decode(b)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// TestPassphraseDefaultCost: outside the test KDF the key costs
// defaultSeal, and a file claiming less is refused.
func TestPassphraseDefaultCost(t *testing.T) {
	if testing.Short() {
		t.Skip("64 MiB Argon2id")
	}
	f, err := New(fixtureAccountKeys(t), fixturePassword, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.SetPassphrase(fixturePassphrase); err != nil {
		t.Fatal(err)
	}
	if f.seal.argon2Params != defaultSeal {
		t.Fatalf("cost %+v, want %+v", f.seal.argon2Params, defaultSeal)
	}
	b, err := f.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	g, err := ParseWithPassphrase(b, fixturePassphrase)
	if err != nil {
		t.Fatal(err)
	}
	sameKeys(t, g.Account(), fixtureAccountKeys(t))
	var m map[string]any
	json.Unmarshal(b, &m)
	m["passphrase"].(map[string]any)["memory_kib"] = 8
	cheap, _ := json.Marshal(m)
	if _, err := ParseWithPassphrase(cheap, fixturePassphrase); !errors.Is(err, ErrFormat) {
		t.Fatalf("a cheap passphrase cost outside the test KDF: %v", err)
	}
}

// TestV3Fixture reads the committed encrypted file: the format (labels,
// derivation, additional data) is pinned.
func TestV3Fixture(t *testing.T) {
	const path = "testdata/v3-encrypted.json"
	if _, err := Load(path); !errors.Is(err, ErrPassphraseNeeded) {
		t.Fatalf("load without passphrase: %v", err)
	}
	f, err := LoadWithPassphrase(path, fixturePassphrase)
	if err != nil {
		t.Fatal(err)
	}
	sameKeys(t, f.Account(), fixtureAccountKeys(t))
	if f.FormatVersion() != VersionEncrypted || !f.InsecureTestKDF || !f.CheckPassword(fixturePassword) ||
		f.Device == nil || f.Device.Name != "node" || hex.EncodeToString(f.Device.ID[:]) != "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf" {
		t.Fatalf("version %d, device %+v", f.FormatVersion(), f.Device)
	}
}

// TestSealKnownAnswer pins the passphrase key derivation.
func TestSealKnownAnswer(t *testing.T) {
	k, err := deriveSeal(testSeal, bytes.Repeat([]byte{7}, saltSize), fixturePassphrase)
	if err != nil {
		t.Fatal(err)
	}
	const wantKey = "34fe565f0d893d0e7405f26e679b0faf9c8ddbf4b154d9f39f398e242d8df8eb"
	const wantCheck = "85e518e669815cef6bf845d5bd0eb22f9204217bfb197cc8b3fbb67224bafdce"
	if got := hex.EncodeToString(k.key); got != wantKey {
		t.Errorf("key %s, want %s", got, wantKey)
	}
	if got := hex.EncodeToString(k.check); got != wantCheck {
		t.Errorf("check %s, want %s", got, wantCheck)
	}
}

// TestSealedTampered: any edit of a sealed file is refused. An edit of
// the sealed part, or of a field in the clear, fails to open with the
// right passphrase (ErrFormat); an edit of the salt or the check reads as
// a wrong passphrase; malformed passphrase fields are refused before any
// derivation.
func TestSealedTampered(t *testing.T) {
	good, err := newSealed(t).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseWithPassphrase(good, fixturePassphrase); err != nil {
		t.Fatal(err)
	}
	other, _ := peer.IDFromPrivateKey(fixedKey(t, 9))
	edit := func(change func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(good, &m); err != nil {
			t.Fatal(err)
		}
		change(m)
		b, _ := json.Marshal(m)
		return b
	}
	pass := func(k string, v any) func(m map[string]any) {
		return func(m map[string]any) { m["passphrase"].(map[string]any)[k] = v }
	}
	flip := func(field string, i int) func(m map[string]any) {
		return func(m map[string]any) {
			b, _ := base64.StdEncoding.DecodeString(m[field].(string))
			b[i%len(b)] ^= 1
			m[field] = base64.StdEncoding.EncodeToString(b)
		}
	}
	w := decodeWire(t, good)
	salt := bytes.Clone(w.Passphrase.Salt)
	salt[0] ^= 1
	check := bytes.Clone(w.Passphrase.Check)
	check[5] ^= 1

	altered := map[string][]byte{
		"ciphertext byte":   edit(flip("sealed", 40)),
		"nonce byte":        edit(flip("sealed", 3)),
		"last tag byte":     edit(flip("sealed", len(w.Sealed)-1)),
		"truncated":         edit(func(m map[string]any) { m["sealed"] = base64.StdEncoding.EncodeToString(w.Sealed[:len(w.Sealed)-1]) }),
		"other account":     edit(func(m map[string]any) { m["account_id"] = other.String() }),
		"username":          edit(func(m map[string]any) { m["username"] = "bob" }),
		"device name":       edit(func(m map[string]any) { m["device_name"] = "evil" }),
		"device id":         edit(func(m map[string]any) { m["device_id"] = "ffa1a2a3a4a5a6a7a8a9aaabacadaeaf" }),
		"no device":         edit(func(m map[string]any) { delete(m, "device_id"); delete(m, "device_name") }),
		"bootstrap":         edit(func(m map[string]any) { m["bootstrap"] = []string{"/ip4/10.0.0.1/tcp/4001"} }),
		"bootstrap dropped": edit(func(m map[string]any) { delete(m, "bootstrap") }),
		"kdf version":       edit(func(m map[string]any) { m["kdf_version"] = 2 }),
	}
	for name, b := range altered {
		if _, err := ParseWithPassphrase(b, fixturePassphrase); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: %v, want ErrFormat", name, err)
		}
	}
	wrong := map[string][]byte{
		"salt":  edit(pass("salt", salt)),
		"check": edit(pass("check", check)),
		"time":  edit(pass("time", 2)),
	}
	for name, b := range wrong {
		if _, err := ParseWithPassphrase(b, fixturePassphrase); !errors.Is(err, ErrBadPassphrase) {
			t.Errorf("%s: %v, want ErrBadPassphrase", name, err)
		}
	}
	malformed := map[string][]byte{
		"no passphrase":        edit(func(m map[string]any) { delete(m, "passphrase") }),
		"no sealed part":       edit(func(m map[string]any) { delete(m, "sealed") }),
		"short sealed part":    edit(func(m map[string]any) { m["sealed"] = "AAAA" }),
		"kdf":                  edit(pass("kdf", "scrypt")),
		"short salt":           edit(pass("salt", "AAAA")),
		"short check":          edit(pass("check", "AAAA")),
		"memory too large":     edit(pass("memory_kib", 4<<20)),
		"time 0":               edit(pass("time", 0)),
		"lanes 0":              edit(pass("lanes", 0)),
		"cheap, not test KDF":  edit(func(m map[string]any) { m["insecure_test_kdf"] = false }),
		"key beside":           edit(func(m map[string]any) { m["root_key"] = "AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM=" }),
		"verifier beside":      edit(func(m map[string]any) { m["verifier"] = map[string]any{} }),
		"sealed in version 2":  edit(func(m map[string]any) { m["version"] = 2 }),
		"version 4":            edit(func(m map[string]any) { m["version"] = 4 }),
		"bad account id":       edit(func(m map[string]any) { m["account_id"] = "nope" }),
		"no account id":        edit(func(m map[string]any) { delete(m, "account_id") }),
		"username not NFC":     edit(func(m map[string]any) { m["username"] = "cafe\u0301" }),
		"bootstrap count":      edit(func(m map[string]any) { m["bootstrap"] = make([]string, MaxBootstrap+1) }),
		"device id not hex":    edit(func(m map[string]any) { m["device_id"] = "xyz" }),
		"passphrase not a map": edit(func(m map[string]any) { m["passphrase"] = 7 }),
	}
	for name, b := range malformed {
		if _, err := ParseWithPassphrase(b, fixturePassphrase); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: %v, want ErrFormat", name, err)
		}
		if _, err := Parse(b); !errors.Is(err, ErrFormat) {
			t.Errorf("%s without passphrase: %v, want ErrFormat", name, err)
		}
		if _, err := ParseHeader(b); !errors.Is(err, ErrFormat) {
			t.Errorf("%s header: %v, want ErrFormat", name, err)
		}
	}
}

// TestPlainFilesWithPassphrase: files without a passphrase (versions 1
// and 2) load as before whatever passphrase is given, and their header
// reads in full.
func TestPlainFilesWithPassphrase(t *testing.T) {
	for _, path := range []string{"testdata/v1-backend.json", "testdata/v1-device.json"} {
		f, err := LoadWithPassphrase(path, fixturePassphrase)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if f.Encrypted() || f.FormatVersion() != 1 || f.AccountID.String() != fixtureAccount {
			t.Fatalf("%s: encrypted %v, version %d", path, f.Encrypted(), f.FormatVersion())
		}
		h, err := LoadHeader(path)
		if err != nil {
			t.Fatalf("%s header: %v", path, err)
		}
		if h.Encrypted || h.Version != 1 || h.AccountID != f.AccountID || h.Username != "alice" {
			t.Fatalf("%s header %+v", path, h)
		}
	}
	f, err := New(fixtureAccountKeys(t), fixturePassword, true)
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if g, err := ParseWithPassphrase(b, fixturePassphrase); err != nil || g.Encrypted() || g.FormatVersion() != Version {
		t.Fatalf("version 2 file with a passphrase given: %v", err)
	}
}

// BenchmarkSeal measures what opening an encrypted file costs a process
// (and a guess of the passphrase costs a thief who copied it).
func BenchmarkSeal(b *testing.B) {
	for _, c := range []struct {
		name string
		p    argon2Params
	}{{"default", defaultSeal}, {"test", testSeal}} {
		b.Run(c.name, func(b *testing.B) {
			salt := make([]byte, saltSize)
			for b.Loop() {
				if _, err := deriveSeal(c.p, salt, fixturePassphrase); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
