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

// Version is the format version Save writes. Version 1 files (both the
// backend's slot cache and the device cache of `jellyfish account login`)
// are still read.
const Version = 2

// MaxSize bounds a key file; larger files are refused unread.
const MaxSize = 64 << 10

// Limits on the optional fields.
const (
	MaxBootstrap     = 256
	MaxBootstrapAddr = 1024
	MaxDeviceName    = 64
)

// verifierParams are the Argon2id costs of a password verifier.
type verifierParams struct {
	Time      uint32 // passes
	MemoryKiB uint32
	Lanes     uint8
}

// defaultVerifier is the cost of the verifiers New and SetPassword make:
// one of OWASP's Argon2id settings (19 MiB, 2 passes, 1 lane), 25-30 ms
// of CPU on one core of the development VM (BenchmarkVerifier). The
// verifier guards the password only; the keys beside it are in the clear.
var defaultVerifier = verifierParams{Time: 2, MemoryKiB: 19 * 1024, Lanes: 1}

// testVerifier is the verifier cost of files of accounts made with the
// insecure test KDF (account.InsecureTestKDF): Argon2id's minimum. Such
// passwords fall instantly anyway.
var testVerifier = verifierParams{Time: 1, MemoryKiB: 8, Lanes: 1}

// Bounds on a verifier read from a file: costs at most verifierMaxTime
// passes and verifierMaxMemoryKiB (a hostile file must not exhaust the
// machine), and at least defaultVerifier's memory unless the file is of a
// test-KDF account.
const (
	verifierMaxTime      = 16
	verifierMaxMemoryKiB = 1 << 20
	verifierMaxLanes     = 16
	saltSize             = 16
	hashSize             = 32
)

// Labels of the password checks; part of the format.
const (
	verifierLabel = "jellyfish/keyfile/v2/verifier\x00"
	// legacyLabel is version 1's unsalted SHA-256 check of the backend
	// cache, read only to upgrade such files.
	legacyLabel = "jellyfish/backend/v1/password-check\x00"
)

// ErrFormat: a file is not a key file this version reads (bad JSON,
// unknown version, missing or malformed field, or an identity key that
// does not match the account ID).
var ErrFormat = errors.New("keyfile: not a valid account key file")

// File is an unlocked account as a device keeps it on disk: its keys, a
// slow salted verifier of the password they were unlocked with, and, for
// the device cache of `jellyfish account login`, this device's identity
// and where it reached the network.
//
// Whoever reads the file holds the account: it is as secret as the
// password (mode 0600 in a 0700 folder).
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
	legacy   []byte // version 1's SHA-256 password check
	version  int    // format version read; Version for a new File
}

type verifier struct {
	verifierParams
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
// new one). Save always writes Version.
func (f *File) FormatVersion() int { return f.version }

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
	v := &verifier{verifierParams: p, salt: make([]byte, saltSize)}
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
// account_id and the device fields but no password check.
type wire struct {
	Version         int           `json:"version"`
	Username        string        `json:"username"`
	AccountID       string        `json:"account_id,omitempty"`
	IdentityKey     []byte        `json:"identity_key"`
	RootKey         []byte        `json:"root_key"`
	LoginKey        []byte        `json:"login_key,omitempty"`
	KDFVersion      uint8         `json:"kdf_version"`
	InsecureTestKDF bool          `json:"insecure_test_kdf,omitempty"`
	Verifier        *wireVerifier `json:"verifier,omitempty"`
	PasswordCheck   []byte        `json:"password_check,omitempty"`
	DeviceID        string        `json:"device_id,omitempty"`
	DeviceName      string        `json:"device_name,omitempty"`
	Bootstrap       []string      `json:"bootstrap,omitempty"`
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

// Marshal encodes f in the current version. A file without a verifier (a
// version 1 device cache) needs SetPassword first.
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
	b, err := json.MarshalIndent(&w, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Parse decodes a file of version 1 or 2 and checks it: a normalised
// username, Ed25519 keys, a 32-byte root key, an identity key matching
// the account ID, a verifier within bounds. Errors match ErrFormat.
func Parse(b []byte) (*File, error) {
	f, err := parse(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFormat, err)
	}
	return f, nil
}

func parse(b []byte) (*File, error) {
	if len(b) > MaxSize {
		return nil, fmt.Errorf("%d bytes", len(b))
	}
	var w wire
	if err := json.Unmarshal(b, &w); err != nil {
		return nil, err
	}
	if w.Version != 1 && w.Version != Version {
		return nil, fmt.Errorf("version %d, this binary reads 1 and %d", w.Version, Version)
	}
	f := &File{KDFVersion: w.KDFVersion, InsecureTestKDF: w.InsecureTestKDF, version: w.Version}
	user, err := account.NormalizeUsername(w.Username)
	if err != nil || string(user) != w.Username {
		return nil, fmt.Errorf("username %q", w.Username)
	}
	f.Username = user
	if f.Identity, err = ed25519Key(w.IdentityKey); err != nil {
		return nil, fmt.Errorf("identity key: %w", err)
	}
	if f.AccountID, err = peer.IDFromPrivateKey(f.Identity); err != nil {
		return nil, fmt.Errorf("identity key: %w", err)
	}
	switch {
	case w.AccountID != "":
		if id, err := peer.Decode(w.AccountID); err != nil || id != f.AccountID {
			return nil, fmt.Errorf("identity key does not match account %s", w.AccountID)
		}
	case w.Version >= 2:
		return nil, errors.New("no account_id")
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
		f.Device = d
	}
	if len(w.Bootstrap) > MaxBootstrap {
		return nil, fmt.Errorf("%d bootstrap addresses", len(w.Bootstrap))
	}
	for _, a := range w.Bootstrap {
		if len(a) > MaxBootstrapAddr {
			return nil, fmt.Errorf("bootstrap address of %d bytes", len(a))
		}
	}
	f.Bootstrap = w.Bootstrap
	return f, nil
}

func parseVerifier(w *wireVerifier, testKDF bool) (*verifier, error) {
	if w == nil {
		return nil, errors.New("no verifier")
	}
	minMem := defaultVerifier.MemoryKiB
	if testKDF {
		minMem = testVerifier.MemoryKiB
	}
	switch {
	case w.KDF != kdfArgon2id:
		return nil, fmt.Errorf("verifier kdf %q", w.KDF)
	case w.Time < 1 || w.Time > verifierMaxTime,
		w.Lanes < 1 || w.Lanes > verifierMaxLanes,
		w.MemoryKiB < max(minMem, 8*uint32(w.Lanes)) || w.MemoryKiB > verifierMaxMemoryKiB:
		return nil, fmt.Errorf("verifier cost t=%d m=%d KiB p=%d out of bounds", w.Time, w.MemoryKiB, w.Lanes)
	case len(w.Salt) != saltSize || len(w.Hash) != hashSize:
		return nil, fmt.Errorf("verifier salt of %d bytes, hash of %d", len(w.Salt), len(w.Hash))
	}
	return &verifier{verifierParams: verifierParams{Time: w.Time, MemoryKiB: w.MemoryKiB, Lanes: w.Lanes}, salt: w.Salt, hash: w.Hash}, nil
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
// fs.ErrNotExist; one that does not parse, ErrFormat.
func Load(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("keyfile: %w", err)
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("keyfile: %w", err)
	}
	f, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, path)
	}
	return f, nil
}

// Save writes f in the current version to path, mode 0600, through
// atomicfile; it creates path's folder with mode 0700 and makes an
// existing one 0700.
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
	return nil
}
