package keyfile

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/crypto/argon2"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/atomicfile"
)

// Version is the format version Save writes for a file without a
// passphrase; VersionEncrypted (seal.go) is the one it writes under a
// passphrase. Version 1 files (both the backend's slot cache and the
// device cache of `jellyfish account login`) are still read.
const Version = 2

// MaxSize bounds a key file; larger files are refused unread.
const MaxSize = 64 << 10

// Limits on the optional fields.
const (
	MaxBootstrap     = 256
	MaxBootstrapAddr = 1024
	MaxDeviceName    = 64
)

// argon2Params are Argon2id's costs: of a password verifier, or of the
// key a passphrase seals a file's secrets under.
type argon2Params struct {
	Time      uint32 // passes
	MemoryKiB uint32
	Lanes     uint8
}

// defaultVerifier is the cost of the verifiers New and SetPassword make:
// one of OWASP's Argon2id settings (19 MiB, 2 passes, 1 lane), 25-30 ms
// of CPU on one core of the development VM (BenchmarkVerifier). The
// verifier guards the password only; the keys beside it are in the clear.
var defaultVerifier = argon2Params{Time: 2, MemoryKiB: 19 * 1024, Lanes: 1}

// testVerifier is the verifier cost of files of accounts made with the
// insecure test KDF (account.InsecureTestKDF): Argon2id's minimum. Such
// passwords fall instantly anyway.
var testVerifier = argon2Params{Time: 1, MemoryKiB: 8, Lanes: 1}

// Bounds on Argon2id costs read from a file (a verifier's or a
// passphrase's): at most maxTime passes and maxMemoryKiB (a hostile file
// must not exhaust the machine), and at least the default memory unless
// the file is of a test-KDF account.
const (
	maxTime      = 16
	maxMemoryKiB = 1 << 20
	maxLanes     = 16
	saltSize     = 16
	hashSize     = 32
)

// Labels of the password checks; part of the format.
const (
	verifierLabel = "jellyfish/keyfile/v2/verifier\x00"
	// legacyLabel is version 1's unsalted SHA-256 check of the backend
	// cache, read only to upgrade such files.
	legacyLabel = "jellyfish/backend/v1/password-check\x00"
)

// ErrFormat: a file is not a key file this version reads (bad JSON,
// unknown version, missing or malformed field, an identity key that
// does not match the account ID, or a sealed part that does not open with
// the passphrase that matches the file).
var ErrFormat = errors.New("keyfile: not a valid account key file")

// ErrPassphraseNeeded: the file's keys are sealed under a passphrase
// (version 3) and none was given.
var ErrPassphraseNeeded = errors.New("keyfile: the key file is encrypted and needs its passphrase")

// ErrBadPassphrase: the passphrase given is not the one the file's keys
// are sealed under.
var ErrBadPassphrase = errors.New("keyfile: wrong passphrase for the key file")

// File is an unlocked account as a device keeps it on disk: its keys, a
// slow salted verifier of the password they were unlocked with, and, for
// the device cache of `jellyfish account login`, this device's identity
// and where it reached the network.
//
// Whoever reads the file holds the account: it is as secret as the
// password (mode 0600 in a 0700 folder), unless its keys are sealed under
// a passphrase (SetPassphrase); then whoever reads it also needs the
// passphrase.
type File struct {
	Username  account.Username
	AccountID peer.ID // peer ID of Identity
	Identity  crypto.PrivKey
	Root      account.RootKey
	// Login is the login record's signing key, nil when unknown.
	Login crypto.PrivKey
	// KDFVersion is the key-derivation version of the login record.
	KDFVersion uint8
	// InsecureTestKDF marks an account made with the test KDF.
	InsecureTestKDF bool
	// Device and Bootstrap are the device cache's: this device in the
	// account record, and the addresses login reached the network through.
	// Both are optional.
	Device    *account.Device
	Bootstrap []string

	verifier *verifier
	legacy   []byte   // version 1's SHA-256 password check
	seal     *sealKey // non-nil: Save seals the keys under a passphrase
	version  int      // format version read; Version for a new File
}

type verifier struct {
	argon2Params
	salt, hash []byte
}

// New returns the file of an unlocked account, with a fresh verifier of
// password (testVerifier's cost when testKDF is set).
func New(a *account.Account, password string, testKDF bool) (*File, error) {
	id, err := peer.IDFromPrivateKey(a.Identity)
	if err != nil {
		return nil, fmt.Errorf("keyfile: identity key: %w", err)
	}
	f := &File{
		Username: a.User, AccountID: id, Identity: a.Identity, Root: a.Root, Login: a.LoginKey(),
		KDFVersion: a.Version, InsecureTestKDF: testKDF, version: Version,
	}
	if err := f.SetPassword(password); err != nil {
		return nil, err
	}
	return f, nil
}

// Account returns the unlocked account the file holds.
func (f *File) Account() *account.Account {
	return account.Restore(f.Username, f.Identity, f.Root, f.KDFVersion, f.Login)
}

// FormatVersion returns the version the file was read in (Version for a
// new one). Save writes VersionEncrypted when the file has a passphrase,
// else Version.
func (f *File) FormatVersion() int { return f.version }

// Encrypted reports whether Save seals the keys under a passphrase: the
// file was read with one, or SetPassphrase set one.
func (f *File) Encrypted() bool { return f.seal != nil }

// HasVerifier reports whether CheckPassword can succeed: version 1 device
// caches hold no password check.
func (f *File) HasVerifier() bool { return f.verifier != nil || f.legacy != nil }

// SetPassword replaces the verifier with a fresh one (new random salt) of
// password, and drops a version 1 check.
func (f *File) SetPassword(password string) error {
	p := defaultVerifier
	if f.InsecureTestKDF {
		p = testVerifier
	}
	v := &verifier{argon2Params: p, salt: make([]byte, saltSize)}
	if _, err := rand.Read(v.salt); err != nil {
		return err
	}
	v.hash = v.compute(f.Username, password)
	f.verifier, f.legacy = v, nil
	return nil
}

// CheckPassword reports whether password is the one the file's verifier
// was made with (for a version 1 backend cache: its SHA-256 check). It is
// false when the file has no verifier.
func (f *File) CheckPassword(password string) bool {
	switch {
	case f.verifier != nil:
		return subtle.ConstantTimeCompare(f.verifier.compute(f.Username, password), f.verifier.hash) == 1
	case f.legacy != nil:
		return subtle.ConstantTimeCompare(legacyCheck(f.Username, password), f.legacy) == 1
	}
	return false
}

func (v *verifier) compute(user account.Username, password string) []byte {
	in := make([]byte, 0, len(verifierLabel)+len(user)+1+len(password))
	in = append(in, verifierLabel...)
	in = append(in, user...)
	in = append(in, 0)
	in = append(in, password...)
	defer clear(in)
	return argon2.IDKey(in, v.salt, v.Time, v.MemoryKiB, v.Lanes, hashSize)
}

func legacyCheck(user account.Username, password string) []byte {
	h := sha256.New()
	h.Write([]byte(legacyLabel))
	h.Write([]byte(user))
	h.Write([]byte{0})
	h.Write([]byte(password))
	return h.Sum(nil)
}

// wire is the JSON of every version. Version 1 backend caches have
// password_check and no account_id; version 1 device caches have
// account_id and the device fields but no password check; version 3 files
// have passphrase and sealed in place of the keys and the verifier, which
// are sealed (wireSecrets).
type wire struct {
	Version         int             `json:"version"`
	Username        string          `json:"username"`
	AccountID       string          `json:"account_id,omitempty"`
	IdentityKey     []byte          `json:"identity_key,omitempty"`
	RootKey         []byte          `json:"root_key,omitempty"`
	LoginKey        []byte          `json:"login_key,omitempty"`
	KDFVersion      uint8           `json:"kdf_version"`
	InsecureTestKDF bool            `json:"insecure_test_kdf,omitempty"`
	Verifier        *wireVerifier   `json:"verifier,omitempty"`
	PasswordCheck   []byte          `json:"password_check,omitempty"`
	DeviceID        string          `json:"device_id,omitempty"`
	DeviceName      string          `json:"device_name,omitempty"`
	Bootstrap       []string        `json:"bootstrap,omitempty"`
	Passphrase      *wirePassphrase `json:"passphrase,omitempty"`
	Sealed          []byte          `json:"sealed,omitempty"`
}

type wireVerifier struct {
	KDF       string `json:"kdf"`
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memory_kib"`
	Lanes     uint8  `json:"lanes"`
	Salt      []byte `json:"salt"`
	Hash      []byte `json:"hash"`
}

const kdfArgon2id = "argon2id"

// Marshal encodes f in the current version: VersionEncrypted with its keys
// and verifier sealed when it has a passphrase, else Version. A file
// without a verifier (a version 1 device cache) needs SetPassword first.
func (f *File) Marshal() ([]byte, error) {
	if f.verifier == nil {
		return nil, errors.New("keyfile: no password verifier (SetPassword first)")
	}
	ik, err := crypto.MarshalPrivateKey(f.Identity)
	if err != nil {
		return nil, fmt.Errorf("keyfile: identity key: %w", err)
	}
	w := wire{
		Version: Version, Username: string(f.Username), AccountID: f.AccountID.String(),
		IdentityKey: ik, RootKey: f.Root[:], KDFVersion: f.KDFVersion, InsecureTestKDF: f.InsecureTestKDF,
		Verifier: &wireVerifier{
			KDF: kdfArgon2id, Time: f.verifier.Time, MemoryKiB: f.verifier.MemoryKiB, Lanes: f.verifier.Lanes,
			Salt: f.verifier.salt, Hash: f.verifier.hash,
		},
		Bootstrap: f.Bootstrap,
	}
	if f.Login != nil {
		if w.LoginKey, err = crypto.MarshalPrivateKey(f.Login); err != nil {
			return nil, fmt.Errorf("keyfile: login key: %w", err)
		}
	}
	if f.Device != nil {
		w.DeviceID, w.DeviceName = hex.EncodeToString(f.Device.ID[:]), f.Device.Name
	}
	if f.seal != nil {
		if err := f.seal.sealSecrets(&w); err != nil {
			return nil, err
		}
	}
	b, err := json.MarshalIndent(&w, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Parse decodes a file of version 1 or 2 and checks it: a normalised
// username, Ed25519 keys, a 32-byte root key, an identity key matching
// the account ID, a verifier within bounds. Errors match ErrFormat, but
// for an encrypted file (version 3), which gives ErrPassphraseNeeded.
func Parse(b []byte) (*File, error) {
	return ParseWithPassphrase(b, "")
}

// ParseWithPassphrase is Parse that also opens an encrypted file (version
// 3) with passphrase: a wrong passphrase gives ErrBadPassphrase, an empty
// one ErrPassphraseNeeded, a sealed part or header altered since it was
// sealed ErrFormat. A file without a passphrase parses as with Parse,
// whatever passphrase is given (File.Encrypted tells them apart).
func ParseWithPassphrase(b []byte, passphrase string) (*File, error) {
	f, err := parse(b, passphrase)
	if err != nil {
		if errors.Is(err, ErrPassphraseNeeded) || errors.Is(err, ErrBadPassphrase) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	return f, nil
}

// decode unmarshals a file of a version this binary reads.
func decode(b []byte) (*wire, error) {
	if len(b) > MaxSize {
		return nil, fmt.Errorf("%d bytes", len(b))
	}
	var w wire
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, err
	}
	switch w.Version {
	case 1, Version:
		if w.Passphrase != nil || w.Sealed != nil {
			return nil, fmt.Errorf("a sealed part in a version %d file", w.Version)
		}
	case VersionEncrypted:
		if w.IdentityKey != nil || w.RootKey != nil || w.LoginKey != nil || w.Verifier != nil || w.PasswordCheck != nil {
			return nil, errors.New("keys in the clear beside the sealed part")
		}
	default:
		return nil, fmt.Errorf("version %d, this binary reads 1 to %d", w.Version, VersionEncrypted)
	}
	return &w, nil
}

func parse(b []byte, passphrase string) (*File, error) {
	w, err := decode(b)
	if err != nil {
		return nil, err
	}
	// h.AccountID is "" only in a version 1 backend cache, which has
	// no account_id.
	h, err := parseHeader(w)
	if err != nil {
		return nil, err
	}
	f := &File{
		Username: h.Username, KDFVersion: w.KDFVersion, InsecureTestKDF: w.InsecureTestKDF,
		Device: h.Device, Bootstrap: h.Bootstrap, version: w.Version,
	}
	if w.Version == VersionEncrypted {
		if f.seal, err = openSecrets(w, passphrase); err != nil {
			return nil, err
		}
	}
	if f.Identity, err = ed25519Key(w.IdentityKey); err != nil {
		return nil, fmt.Errorf("identity key: %w", err)
	}
	if f.AccountID, err = peer.IDFromPrivateKey(f.Identity); err != nil {
		return nil, fmt.Errorf("identity key: %w", err)
	}
	if h.AccountID != "" && h.AccountID != f.AccountID {
		return nil, fmt.Errorf("identity key does not match account %s", w.AccountID)
	}
	if len(w.RootKey) != len(f.Root) {
		return nil, fmt.Errorf("root key of %d bytes", len(w.RootKey))
	}
	copy(f.Root[:], w.RootKey)
	if len(w.LoginKey) > 0 {
		if f.Login, err = ed25519Key(w.LoginKey); err != nil {
			return nil, fmt.Errorf("login key: %w", err)
		}
	}
	if w.Version == 1 {
		if len(w.PasswordCheck) != 0 && len(w.PasswordCheck) != sha256.Size {
			return nil, fmt.Errorf("password check of %d bytes", len(w.PasswordCheck))
		}
		if len(w.PasswordCheck) != 0 {
			f.legacy = w.PasswordCheck
		}
	} else {
		if f.verifier, err = parseVerifier(w.Verifier, w.InsecureTestKDF); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// Header is what a key file says in the clear: all of a version 1 or 2
// file but its keys and verifier; all of an encrypted file (version 3) but
// its sealed part. An encrypted file's header is authenticated only when
// the file is opened with its passphrase (LoadWithPassphrase): until then
// it is what the file claims.
type Header struct {
	Version         int
	Username        account.Username
	AccountID       peer.ID // of the identity key; of an encrypted file, what it claims
	KDFVersion      uint8
	InsecureTestKDF bool
	Device          *account.Device
	Bootstrap       []string
	Encrypted       bool
}

// parseHeader checks the fields a file holds in the clear.
func parseHeader(w *wire) (*Header, error) {
	h := &Header{
		Version: w.Version, KDFVersion: w.KDFVersion, InsecureTestKDF: w.InsecureTestKDF,
		Encrypted: w.Version == VersionEncrypted,
	}
	user, err := account.NormalizeUsername(w.Username)
	if err != nil || string(user) != w.Username {
		return nil, fmt.Errorf("username %q", w.Username)
	}
	h.Username = user
	switch {
	case w.AccountID != "":
		if h.AccountID, err = peer.Decode(w.AccountID); err != nil {
			return nil, fmt.Errorf("account id %q", w.AccountID)
		}
	case w.Version >= 2:
		return nil, errors.New("no account_id")
	}
	if w.DeviceID != "" {
		d := &account.Device{Name: w.DeviceName}
		id, err := hex.DecodeString(w.DeviceID)
		if err != nil || len(id) != len(d.ID) {
			return nil, fmt.Errorf("device id %q", w.DeviceID)
		}
		copy(d.ID[:], id)
		if len(d.Name) > MaxDeviceName {
			return nil, fmt.Errorf("device name of %d bytes", len(d.Name))
		}
		h.Device = d
	}
	if len(w.Bootstrap) > MaxBootstrap {
		return nil, fmt.Errorf("%d bootstrap addresses", len(w.Bootstrap))
	}
	for _, a := range w.Bootstrap {
		if len(a) > MaxBootstrapAddr {
			return nil, fmt.Errorf("bootstrap address of %d bytes", len(a))
		}
	}
	h.Bootstrap = w.Bootstrap
	return h, nil
}

// ParseHeader returns what a file says in the clear, without its
// passphrase: a file without one is checked in full as by Parse; of an
// encrypted file only the header and the form of its passphrase fields
// are checked. Errors match ErrFormat.
func ParseHeader(b []byte) (*Header, error) {
	h, err := parseHeaderOnly(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	return h, nil
}

func parseHeaderOnly(b []byte) (*Header, error) {
	w, err := decode(b)
	if err != nil {
		return nil, err
	}
	if w.Version != VersionEncrypted {
		f, err := parse(b, "")
		if err != nil {
			return nil, err
		}
		return &Header{
			Version: f.version, Username: f.Username, AccountID: f.AccountID, KDFVersion: f.KDFVersion,
			InsecureTestKDF: f.InsecureTestKDF, Device: f.Device, Bootstrap: f.Bootstrap,
		}, nil
	}
	h, err := parseHeader(w)
	if err != nil {
		return nil, err
	}
	if _, _, err := parseSealed(w); err != nil {
		return nil, err
	}
	return h, nil
}

// checkCost checks Argon2id costs read from a file against the bounds,
// with minMem the least memory accepted.
func checkCost(what string, p argon2Params, minMem uint32) error {
	if p.Time < 1 || p.Time > maxTime ||
		p.Lanes < 1 || p.Lanes > maxLanes ||
		p.MemoryKiB < max(minMem, 8*uint32(p.Lanes)) || p.MemoryKiB > maxMemoryKiB {
		return fmt.Errorf("%s cost t=%d m=%d KiB p=%d out of bounds", what, p.Time, p.MemoryKiB, p.Lanes)
	}
	return nil
}

func parseVerifier(w *wireVerifier, testKDF bool) (*verifier, error) {
	if w == nil {
		return nil, errors.New("no verifier")
	}
	minMem := defaultVerifier.MemoryKiB
	if testKDF {
		minMem = testVerifier.MemoryKiB
	}
	p := argon2Params{Time: w.Time, MemoryKiB: w.MemoryKiB, Lanes: w.Lanes}
	if w.KDF != kdfArgon2id {
		return nil, fmt.Errorf("verifier kdf %q", w.KDF)
	}
	if err := checkCost("verifier", p, minMem); err != nil {
		return nil, err
	}
	if len(w.Salt) != saltSize || len(w.Hash) != hashSize {
		return nil, fmt.Errorf("verifier salt of %d bytes, hash of %d", len(w.Salt), len(w.Hash))
	}
	return &verifier{argon2Params: p, salt: w.Salt, hash: w.Hash}, nil
}

func ed25519Key(b []byte) (crypto.PrivKey, error) {
	k, err := crypto.UnmarshalPrivateKey(b)
	if err != nil {
		return nil, err
	}
	if k.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("a %v key, want Ed25519", k.Type())
	}
	return k, nil
}

// Load reads and parses path. A missing file gives an error matching
// fs.ErrNotExist; one that does not parse, ErrFormat; an encrypted one,
// ErrPassphraseNeeded.
func Load(path string) (*File, error) {
	return LoadWithPassphrase(path, "")
}

// LoadWithPassphrase reads path and parses it with ParseWithPassphrase.
func LoadWithPassphrase(path, passphrase string) (*File, error) {
	b, err := readFile(path)
	if err != nil {
		return nil, err
	}
	f, err := ParseWithPassphrase(b, passphrase)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, path)
	}
	return f, nil
}

// LoadHeader reads path and parses it with ParseHeader.
func LoadHeader(path string) (*Header, error) {
	b, err := readFile(path)
	if err != nil {
		return nil, err
	}
	h, err := ParseHeader(b)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, path)
	}
	return h, nil
}

func readFile(path string) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("keyfile: %w", err)
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("keyfile: %w", err)
	}
	return b, nil
}

// Save writes f in the current version to path, mode 0600, through
// atomicfile; it creates path's folder with mode 0700 and makes an
// existing one 0700. Under a passphrase each Save seals with a fresh
// nonce under the key SetPassphrase (or the load) derived.
func (f *File) Save(path string) error {
	b, err := f.Marshal()
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("keyfile: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("keyfile: %w", err)
	}
	if err := atomicfile.Write(path, b, 0o600); err != nil {
		return fmt.Errorf("keyfile: %w", err)
	}
	f.version = Version
	if f.seal != nil {
		f.version = VersionEncrypted
	}
	return nil
}
