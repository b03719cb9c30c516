package account

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/crypto"
	"golang.org/x/crypto/argon2"
	"golang.org/x/text/unicode/norm"
)

// Username is a normalised (Unicode NFC) account name. Only
// NormalizeUsername makes one, so every key is derived from the same bytes
// whatever the device's input method produced.
type Username string

// MaxUsernameLength bounds a username in bytes after normalisation.
const MaxUsernameLength = 64

// ErrBadUsername: the name is empty, too long or holds control characters.
var ErrBadUsername = errors.New("account: invalid username")

// NormalizeUsername returns s in Unicode NFC after checking it is usable: 1
// to 64 bytes, valid UTF-8, no control characters, no leading or trailing
// space. Case is kept: "Ana" and "ana" are different accounts.
func NormalizeUsername(s string) (Username, error) {
	if !utf8.ValidString(s) {
		return "", fmt.Errorf("%w: not valid UTF-8", ErrBadUsername)
	}
	n := norm.NFC.String(s)
	switch {
	case n == "":
		return "", fmt.Errorf("%w: empty", ErrBadUsername)
	case len(n) > MaxUsernameLength:
		return "", fmt.Errorf("%w: %d bytes, at most %d", ErrBadUsername, len(n), MaxUsernameLength)
	case strings.TrimSpace(n) != n:
		return "", fmt.Errorf("%w: leading or trailing space", ErrBadUsername)
	case strings.IndexFunc(n, unicode.IsControl) >= 0:
		return "", fmt.Errorf("%w: control character", ErrBadUsername)
	}
	return Username(n), nil
}

// KDFParams are Argon2id's cost parameters. They are fixed by the login
// record's format version, because a client must know them before it can
// find the record.
type KDFParams struct {
	Time      uint32 // passes
	MemoryKiB uint32
	Threads   uint8
}

// Format versions of the key derivation and login record.
const (
	// VersionV1: Argon2id t=3, 64 MiB, 4 lanes (RFC 9106's second
	// recommended setting); salt from the username alone. Still read:
	// Login falls back to it.
	VersionV1 uint8 = 1
	// VersionV2: Argon2id t=3, 128 MiB, 4 lanes; the salt binds the
	// network and the version too. New accounts and new passwords use it.
	VersionV2 uint8 = 2
	// CurrentVersion is the version new login records are made at.
	CurrentVersion = VersionV2
	// versionInsecureTest is only reachable through InsecureTestKDF.
	versionInsecureTest uint8 = 0xfe
)

// MinMemoryKiB is the floor under Argon2id's memory for any record a normal
// client accepts.
const MinMemoryKiB = 64 * 1024

var versionParams = map[uint8]KDFParams{
	VersionV1:           {Time: 3, MemoryKiB: 64 * 1024, Threads: 4},
	VersionV2:           {Time: 3, MemoryKiB: 128 * 1024, Threads: 4},
	versionInsecureTest: {Time: 1, MemoryKiB: 256, Threads: 1},
}

// ErrWeakKDF: a login record names key-derivation parameters below the
// floor or other than its version's.
var ErrWeakKDF = errors.New("account: login record has weak or unexpected key-derivation parameters")

// paramsFor returns the parameters of a format version.
func paramsFor(version uint8, allowTest bool) (KDFParams, error) {
	p, ok := versionParams[version]
	if !ok || (version == versionInsecureTest && !allowTest) {
		return KDFParams{}, fmt.Errorf("%w: unknown version %d", ErrWeakKDF, version)
	}
	if version != versionInsecureTest && p.MemoryKiB < MinMemoryKiB {
		return KDFParams{}, fmt.Errorf("%w: %d KiB", ErrWeakKDF, p.MemoryKiB)
	}
	return p, nil
}

// NetworkTag names the Jellyfish network in the login salt (from version 2
// on): the DHT protocol prefix (node.ProtocolPrefix, which a test keeps
// equal), which is what makes two networks two.
const NetworkTag = "/jellyfish"

// Labels of the derivations; part of the format.
const (
	saltLabel     = "jellyfish/account/v1/argon2-salt\x00"
	saltV2Label   = "jellyfish/account/v2/argon2-salt\x00"
	loginKeyLabel = "jellyfish/account/v1/login-key"
	wrapKeyLabel  = "jellyfish/account/v1/wrap-key"
)

// secrets are what username + password give: the login signing key, whose
// public key locates and authorises the login record, and the wrapping key
// that encrypts the account's keys inside it.
type secrets struct {
	login crypto.PrivKey
	wrap  [32]byte
}

// loginSalt is Argon2id's salt for user at version: for version 1
// SHA-256(v1 label ‖ username); from version 2 on SHA-256(v2 label ‖
// network tag ‖ 0 ‖ version ‖ username), so a guess computed for one
// network or version tests nothing in another.
func loginSalt(user Username, version uint8) [32]byte {
	if version == VersionV1 {
		return sha256.Sum256(append([]byte(saltLabel), user...))
	}
	b := append([]byte(saltV2Label), NetworkTag...)
	b = append(b, 0, version)
	return sha256.Sum256(append(b, user...))
}

// derive runs Argon2id on the password with a salt made from the username
// (loginSalt), then HKDF-SHA256 for the two keys. Only someone who knows
// both the username and the password can compute where the login record
// lives.
func derive(user Username, password string, version uint8, p KDFParams) (*secrets, error) {
	salt := loginSalt(user, version)
	master := argon2.IDKey([]byte(password), salt[:], p.Time, p.MemoryKiB, p.Threads, 32)
	defer clear(master)
	info := fmt.Sprintf("/v%d", version)
	seed, err := hkdf.Key(sha256.New, master, nil, loginKeyLabel+info, ed25519.SeedSize)
	if err != nil {
		return nil, err
	}
	login, err := crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(seed))
	clear(seed)
	if err != nil {
		return nil, err
	}
	wrap, err := hkdf.Key(sha256.New, master, nil, wrapKeyLabel+info, 32)
	if err != nil {
		return nil, err
	}
	s := &secrets{login: login}
	copy(s.wrap[:], wrap)
	clear(wrap)
	return s, nil
}
