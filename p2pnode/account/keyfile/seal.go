package keyfile

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

// VersionEncrypted is the format version of a file whose keys and
// verifier are sealed under a passphrase. Files without a passphrase stay
// Version, so binaries that read only Version keep reading them; this one
// refuses an encrypted file by its version rather than by a missing key.
const VersionEncrypted = 3

// defaultSeal is the cost of the key SetPassphrase derives: RFC 9106's
// second recommended Argon2id setting (64 MiB, 3 passes, 4 lanes), the
// account password's own cost. A thief who copied the file pays it per
// guess of the passphrase.
var defaultSeal = argon2Params{Time: 3, MemoryKiB: 64 * 1024, Lanes: 4}

// testSeal is the cost for files of accounts made with the insecure test
// KDF (account.InsecureTestKDF): Argon2id's minimum.
var testSeal = argon2Params{Time: 1, MemoryKiB: 8, Lanes: 1}

// Labels of the passphrase encryption; part of the format.
const (
	sealKDFLabel  = "jellyfish/keyfile/v3/passphrase\x00"
	sealKeyInfo   = "jellyfish/keyfile/v3/key"
	sealCheckInfo = "jellyfish/keyfile/v3/check"
	sealADLabel   = "jellyfish/keyfile/v3/sealed\x00"
)

// sealKey is the key a file's secrets are sealed under, derived from the
// passphrase with Argon2id and then split with HKDF-SHA256 into the
// XChaCha20-Poly1305 key and a check value stored in the file (so a wrong
// passphrase is told apart from an altered file).
type sealKey struct {
	argon2Params
	salt  []byte
	key   []byte
	check []byte
}

// wirePassphrase is the clear part of a version 3 file's encryption: the
// KDF, its costs and salt, and the check value of the derived key.
type wirePassphrase struct {
	KDF       string `json:"kdf"`
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memory_kib"`
	Lanes     uint8  `json:"lanes"`
	Salt      []byte `json:"salt"`
	Check     []byte `json:"check"`
}

// wireSecrets is the JSON a version 3 file seals: the fields of version 2
// that a thief of the file must not read.
type wireSecrets struct {
	IdentityKey []byte        `json:"identity_key"`
	RootKey     []byte        `json:"root_key"`
	LoginKey    []byte        `json:"login_key,omitempty"`
	Verifier    *wireVerifier `json:"verifier"`
}

// SetPassphrase makes Save seal the file's keys and verifier under
// passphrase, with a key derived afresh (a new random salt; testSeal's
// cost when InsecureTestKDF is set). An empty passphrase makes Save write
// them in the clear again (Version).
func (f *File) SetPassphrase(passphrase string) error {
	if passphrase == "" {
		f.seal = nil
		return nil
	}
	p := defaultSeal
	if f.InsecureTestKDF {
		p = testSeal
	}
	salt := make([]byte, saltSize)
	if _, err := rand.Read(salt); err != nil {
		return err
	}
	k, err := deriveSeal(p, salt, passphrase)
	if err != nil {
		return err
	}
	f.seal = k
	return nil
}

// deriveSeal runs Argon2id on sealKDFLabel ‖ passphrase and splits the
// result with HKDF-SHA256.
func deriveSeal(p argon2Params, salt []byte, passphrase string) (*sealKey, error) {
	in := make([]byte, 0, len(sealKDFLabel)+len(passphrase))
	in = append(in, sealKDFLabel...)
	in = append(in, passphrase...)
	defer clear(in)
	master := argon2.IDKey(in, salt, p.Time, p.MemoryKiB, p.Lanes, 32)
	defer clear(master)
	key, err := hkdf.Key(sha256.New, master, nil, sealKeyInfo, chacha20poly1305.KeySize)
	if err != nil {
		return nil, err
	}
	check, err := hkdf.Key(sha256.New, master, nil, sealCheckInfo, hashSize)
	if err != nil {
		return nil, err
	}
	return &sealKey{argon2Params: p, salt: salt, key: key, check: check}, nil
}

// sealSecrets moves w's keys and verifier into its sealed part and makes
// it a version 3 file. The additional data binds every field left in the
// clear (sealAD).
func (k *sealKey) sealSecrets(w *wire) error {
	pt, err := json.Marshal(&wireSecrets{IdentityKey: w.IdentityKey, RootKey: w.RootKey, LoginKey: w.LoginKey, Verifier: w.Verifier})
	if err != nil {
		return err
	}
	defer clear(pt)
	w.IdentityKey, w.RootKey, w.LoginKey, w.Verifier = nil, nil, nil, nil
	w.Version = VersionEncrypted
	w.Passphrase = &wirePassphrase{
		KDF: kdfArgon2id, Time: k.Time, MemoryKiB: k.MemoryKiB, Lanes: k.Lanes, Salt: k.salt, Check: k.check,
	}
	aead, err := chacha20poly1305.NewX(k.key)
	if err != nil {
		return err
	}
	nonce := make([]byte, chacha20poly1305.NonceSizeX, chacha20poly1305.NonceSizeX+len(pt)+chacha20poly1305.Overhead)
	if _, err := rand.Read(nonce); err != nil {
		return err
	}
	w.Sealed = aead.Seal(nonce, nonce, pt, sealAD(w))
	return nil
}

// parseSealed checks the form of a version 3 file's passphrase fields and
// returns their costs and the sealed part's nonce and ciphertext.
func parseSealed(w *wire) (argon2Params, []byte, error) {
	p := w.Passphrase
	if p == nil || w.Sealed == nil {
		return argon2Params{}, nil, errors.New("no passphrase or sealed part")
	}
	c := argon2Params{Time: p.Time, MemoryKiB: p.MemoryKiB, Lanes: p.Lanes}
	minMem := defaultSeal.MemoryKiB
	if w.InsecureTestKDF {
		minMem = testSeal.MemoryKiB
	}
	if p.KDF != kdfArgon2id {
		return argon2Params{}, nil, fmt.Errorf("passphrase kdf %q", p.KDF)
	}
	if err := checkCost("passphrase", c, minMem); err != nil {
		return argon2Params{}, nil, err
	}
	if len(p.Salt) != saltSize || len(p.Check) != hashSize {
		return argon2Params{}, nil, fmt.Errorf("passphrase salt of %d bytes, check of %d", len(p.Salt), len(p.Check))
	}
	if len(w.Sealed) < chacha20poly1305.NonceSizeX+chacha20poly1305.Overhead {
		return argon2Params{}, nil, fmt.Errorf("sealed part of %d bytes", len(w.Sealed))
	}
	return c, w.Sealed, nil
}

// openSecrets opens a version 3 file's sealed part with passphrase and
// puts its keys and verifier into w. It returns the key, for Save to seal
// under again.
func openSecrets(w *wire, passphrase string) (*sealKey, error) {
	c, sealed, err := parseSealed(w)
	if err != nil {
		return nil, err
	}
	if passphrase == "" {
		return nil, ErrPassphraseNeeded
	}
	k, err := deriveSeal(c, w.Passphrase.Salt, passphrase)
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare(k.check, w.Passphrase.Check) != 1 {
		return nil, ErrBadPassphrase
	}
	aead, err := chacha20poly1305.NewX(k.key)
	if err != nil {
		return nil, err
	}
	nonce, ct := sealed[:chacha20poly1305.NonceSizeX], sealed[chacha20poly1305.NonceSizeX:]
	pt, err := aead.Open(nil, nonce, ct, sealAD(w))
	if err != nil {
		return nil, errors.New("the sealed part does not open with the right passphrase: the file was altered")
	}
	defer clear(pt)
	var s wireSecrets
	if err := json.Unmarshal(pt, &s); err != nil {
		return nil, fmt.Errorf("sealed part: %w", err)
	}
	w.IdentityKey, w.RootKey, w.LoginKey, w.Verifier = s.IdentityKey, s.RootKey, s.LoginKey, s.Verifier
	return k, nil
}

// sealAD is the additional data of a version 3 file's sealed part:
// sealADLabel, then each field the file holds in the clear as a uvarint
// length and its bytes, in this order: version, username, account_id,
// kdf_version, insecure_test_kdf ("true"/"false"), device_id,
// device_name, the number of bootstrap addresses (uvarint) and each
// address, then the passphrase's kdf, time, memory_kib, lanes, salt and
// check. Numbers are in decimal. No clear field can be edited without
// the sealed part failing to open.
func sealAD(w *wire) []byte {
	ad := []byte(sealADLabel)
	field := func(s string) {
		ad = binary.AppendUvarint(ad, uint64(len(s)))
		ad = append(ad, s...)
	}
	num := func(n uint64) { field(strconv.FormatUint(n, 10)) }
	num(uint64(w.Version))
	field(w.Username)
	field(w.AccountID)
	num(uint64(w.KDFVersion))
	field(strconv.FormatBool(w.InsecureTestKDF))
	field(w.DeviceID)
	field(w.DeviceName)
	ad = binary.AppendUvarint(ad, uint64(len(w.Bootstrap)))
	for _, a := range w.Bootstrap {
		field(a)
	}
	p := w.Passphrase
	field(p.KDF)
	num(uint64(p.Time))
	num(uint64(p.MemoryKiB))
	num(uint64(p.Lanes))
	field(string(p.Salt))
	field(string(p.Check))
	return ad
}
