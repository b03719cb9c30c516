package account

import (
	"context"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"unicode"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/record"
)

// Record kinds of account recovery.
const (
	// KindRecovery is the kind of recovery records: the account's keys
	// sealed under a key only the recovery key gives, at a DHT key only
	// the username and the recovery key give.
	KindRecovery record.Kind = 5
	// KindKeyring is the kind of keyring records: the signing keys of the
	// account's records that no device derives (the recovery record's, and
	// the current password's login key), sealed under a key the root key
	// gives, so every device and linked node can keep those records alive.
	KindKeyring record.Kind = 6

	recoveryKindName = "recovery"
	keyringKindName  = "keyring"
)

// Errors of recovery.
var (
	ErrBadRecoveryKey      = errors.New("account: wrong username or recovery key (or this account has no recovery key, or its records expired)")
	ErrRecoveryKeyReplaced = errors.New("account: this recovery key was replaced by a newer one and no longer works")
	ErrRecoveryKeyFormat   = errors.New("account: not a recovery key (a recovery key is 40 letters and digits in groups of five; check for a typo)")
)

// RecoveryKeySize is the number of random bytes in a recovery key: 160
// bits, beyond any offline guessing, so no slow key derivation is needed.
const RecoveryKeySize = 20

// RecoveryKey is an account's recovery key: random bytes the user writes
// down. With the username it finds and opens the recovery record, which
// sets a new password. Its text form (String, ParseRecoveryKey) carries a
// version and a checksum.
type RecoveryKey [RecoveryKeySize]byte

// Text form of recovery keys, version 1: Crockford base32 of version u8
// (1) ‖ key [20] ‖ the first 4 bytes of SHA-256(recoveryChecksumLabel ‖
// version ‖ key): 25 bytes, 40 characters, written in eight groups of
// five separated by '-'.
const (
	recoveryKeyVersion    = 1
	recoveryKeyTextBytes  = 1 + RecoveryKeySize + 4
	recoveryChecksumLabel = "jellyfish/recovery-key/v1/checksum\x00"
)

var crockford = base32.NewEncoding("0123456789ABCDEFGHJKMNPQRSTVWXYZ").WithPadding(base32.NoPadding)

// NewRecoveryKey returns a random recovery key.
func NewRecoveryKey() (RecoveryKey, error) {
	var k RecoveryKey
	_, err := rand.Read(k[:])
	return k, err
}

func recoveryChecksum(versioned []byte) []byte {
	sum := sha256.Sum256(append([]byte(recoveryChecksumLabel), versioned...))
	return sum[:4]
}

// String returns the key's text form, e.g.
// "04XQZ-…" (eight groups of five characters).
func (k RecoveryKey) String() string {
	b := append([]byte{recoveryKeyVersion}, k[:]...)
	b = append(b, recoveryChecksum(b)...)
	s := crockford.EncodeToString(b)
	var groups []string
	for len(s) > 0 {
		n := min(5, len(s))
		groups = append(groups, s[:n])
		s = s[n:]
	}
	return strings.Join(groups, "-")
}

// ParseRecoveryKey reads a recovery key's text form. Case, spaces and
// dashes do not matter, and O, I and L read as 0, 1 and 1; a typo fails
// the checksum with ErrRecoveryKeyFormat.
func ParseRecoveryKey(s string) (RecoveryKey, error) {
	var k RecoveryKey
	var sb strings.Builder
	for _, r := range strings.ToUpper(s) {
		switch {
		case r == '-' || unicode.IsSpace(r):
			continue
		case r == 'O':
			r = '0'
		case r == 'I' || r == 'L':
			r = '1'
		}
		sb.WriteRune(r)
	}
	if sb.Len() != crockford.EncodedLen(recoveryKeyTextBytes) {
		return k, ErrRecoveryKeyFormat
	}
	b, err := crockford.DecodeString(sb.String())
	if err != nil || len(b) != recoveryKeyTextBytes {
		return k, ErrRecoveryKeyFormat
	}
	body, sum := b[:1+RecoveryKeySize], b[1+RecoveryKeySize:]
	if string(recoveryChecksum(body)) != string(sum) {
		return k, ErrRecoveryKeyFormat
	}
	if body[0] != recoveryKeyVersion {
		return k, fmt.Errorf("%w: version %d", ErrRecoveryKeyFormat, body[0])
	}
	copy(k[:], body[1:])
	return k, nil
}

// Labels of the recovery derivations; part of the format.
const (
	recoverySaltLabel = "jellyfish/recovery/v1/salt\x00"
	recoverySignLabel = "jellyfish/recovery/v1/signing-key"
	recoveryWrapLabel = "jellyfish/recovery/v1/wrap-key"
	keyringKeyLabel   = "jellyfish/account/v1/keyring-key"
	recoveryAAD       = "jellyfish/account/v1/recovery\x00"
	keyringAAD        = "jellyfish/account/v1/keyring\x00"
)

// recoverySecrets are what username + recovery key give: the signing key
// of the recovery record (its public key locates it) and the key that
// seals the account's keys inside it.
type recoverySecrets struct {
	signer crypto.PrivKey
	wrap   [32]byte
}

// deriveRecovery runs HKDF-SHA256 over the recovery key with a salt made
// from the username. The key's 160 random bits need no stretching.
func deriveRecovery(user Username, k RecoveryKey) (*recoverySecrets, error) {
	salt := sha256.Sum256(append([]byte(recoverySaltLabel), user...))
	seed, err := hkdf.Key(sha256.New, k[:], salt[:], recoverySignLabel, ed25519.SeedSize)
	if err != nil {
		return nil, err
	}
	signer, err := crypto.UnmarshalEd25519PrivateKey(ed25519.NewKeyFromSeed(seed))
	clear(seed)
	if err != nil {
		return nil, err
	}
	wrap, err := hkdf.Key(sha256.New, k[:], salt[:], recoveryWrapLabel, 32)
	if err != nil {
		return nil, err
	}
	rs := &recoverySecrets{signer: signer}
	copy(rs.wrap[:], wrap)
	clear(wrap)
	return rs, nil
}

// RecoveryRecordKey returns the DHT key of the recovery record signed by
// pub: "/jf/recovery/<peer ID of the recovery signing key>".
func RecoveryRecordKey(pub crypto.PubKey) (string, error) {
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		return "", err
	}
	return record.KeyFor(recoveryKindName, id.String()), nil
}

// KeyringKey returns the DHT key of an account's keyring record:
// "/jf/keyring/<identity peer ID>".
func KeyringKey(identity peer.ID) string {
	return record.KeyFor(keyringKindName, identity.String())
}

// RecoveryRules are the validator rules of recovery records: only the
// recovery signing key writes its record; the body must parse.
func RecoveryRules() record.KindRules {
	return record.KindRules{
		Kind: KindRecovery, Name: recoveryKindName, Authorize: signerOwnsKey,
		CheckBody: func(b []byte) error { _, err := parseRecoveryBody(b); return err },
	}
}

// KeyringRules are the validator rules of keyring records: only the
// identity key writes its account's keyring; the body must parse.
func KeyringRules() record.KindRules {
	return record.KindRules{
		Kind: KindKeyring, Name: keyringKindName, Authorize: signerOwnsKey,
		CheckBody: func(b []byte) error { _, err := parseKeyringBody(b); return err },
	}
}

// Recovery record states.
const (
	recoveryActive  byte = 1
	recoveryRevoked byte = 2
)

// maxSealedBody bounds the bodies of recovery and keyring records.
const maxSealedBody = 1024

// recoveryBody is a parsed recovery record body:
//
//	version u8 (1) | state u8 (1 active, 2 revoked) |
//	(active only) nonce [24] | XChaCha20-Poly1305 ciphertext
//
// The ciphertext holds the same payload as a login record's (identity
// key, root key, username), under the recovery wrapping key, with
// additional data recoveryAAD ‖ DHT key ‖ 0 ‖ header.
type recoveryBody struct {
	state  byte
	header []byte
	nonce  []byte
	sealed []byte
}

func parseRecoveryBody(b []byte) (*recoveryBody, error) {
	if len(b) < 2 || len(b) > maxSealedBody || b[0] != 1 {
		return nil, fmt.Errorf("%w: recovery body of %d bytes", errTampered, len(b))
	}
	rb := &recoveryBody{state: b[1], header: b[:2]}
	rest := b[2:]
	switch rb.state {
	case recoveryRevoked:
		if len(rest) != 0 {
			return nil, fmt.Errorf("%w: revoked recovery record with a payload", errTampered)
		}
	case recoveryActive:
		if len(rest) < chacha20poly1305.NonceSizeX+chacha20poly1305.Overhead {
			return nil, fmt.Errorf("%w: recovery payload of %d bytes", errTampered, len(rest))
		}
		rb.nonce, rb.sealed = rest[:chacha20poly1305.NonceSizeX], rest[chacha20poly1305.NonceSizeX:]
	default:
		return nil, fmt.Errorf("%w: recovery state %d", errTampered, rb.state)
	}
	return rb, nil
}

func sealedAD(label, dhtKey string, header []byte) []byte {
	ad := append([]byte(label), dhtKey...)
	ad = append(ad, 0)
	return append(ad, header...)
}

func sealRecovery(dhtKey string, wrap [32]byte, k *keys) ([]byte, error) {
	payload, err := k.marshal()
	if err != nil {
		return nil, err
	}
	defer clear(payload)
	header := []byte{1, recoveryActive}
	return seal(wrap, header, payload, sealedAD(recoveryAAD, dhtKey, header))
}

func (rb *recoveryBody) open(dhtKey string, wrap [32]byte) (*keys, error) {
	aead, err := chacha20poly1305.NewX(wrap[:])
	if err != nil {
		return nil, err
	}
	payload, err := aead.Open(nil, rb.nonce, rb.sealed, sealedAD(recoveryAAD, dhtKey, rb.header))
	if err != nil {
		return nil, errTampered
	}
	defer clear(payload)
	return unmarshalKeys(payload)
}

// Keyring holds the signing keys of an account's records that devices
// cannot derive: the login key of the current password (a recovery
// retires that password's login record with it) and the recovery
// record's signing key (caretakers re-sign that record with it). Either
// may be nil.
type Keyring struct {
	Login    crypto.PrivKey
	Recovery crypto.PrivKey
}

// keyringBody is a keyring record body:
//
//	version u8 (1) | nonce [24] | XChaCha20-Poly1305 ciphertext
//
// under HKDF-SHA256(root key, info keyringKeyLabel), with additional data
// keyringAAD ‖ DHT key ‖ 0 ‖ version. The payload is login key (u16
// length ‖ libp2p marshalled, length 0 for none) ‖ recovery signing key
// (the same).
func parseKeyringBody(b []byte) ([]byte, error) {
	if len(b) < 1+chacha20poly1305.NonceSizeX+chacha20poly1305.Overhead || len(b) > maxSealedBody || b[0] != 1 {
		return nil, fmt.Errorf("%w: keyring body of %d bytes", errTampered, len(b))
	}
	return b, nil
}

func keyringKey(root RootKey) ([32]byte, error) {
	var k [32]byte
	b, err := hkdf.Key(sha256.New, root[:], nil, keyringKeyLabel, 32)
	if err != nil {
		return k, err
	}
	copy(k[:], b)
	clear(b)
	return k, nil
}

func appendKey(b []byte, k crypto.PrivKey) ([]byte, error) {
	if k == nil {
		return binary.BigEndian.AppendUint16(b, 0), nil
	}
	kb, err := crypto.MarshalPrivateKey(k)
	if err != nil {
		return nil, err
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(kb)))
	return append(b, kb...), nil
}

func readKey(b []byte) (crypto.PrivKey, []byte, error) {
	if len(b) < 2 {
		return nil, nil, errTampered
	}
	n := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if n > len(b) {
		return nil, nil, errTampered
	}
	if n == 0 {
		return nil, b, nil
	}
	k, err := crypto.UnmarshalPrivateKey(b[:n])
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", errTampered, err)
	}
	return k, b[n:], nil
}

func sealKeyring(dhtKey string, root RootKey, ring *Keyring) ([]byte, error) {
	payload, err := appendKey(nil, ring.Login)
	if err != nil {
		return nil, err
	}
	if payload, err = appendKey(payload, ring.Recovery); err != nil {
		return nil, err
	}
	defer clear(payload)
	key, err := keyringKey(root)
	if err != nil {
		return nil, err
	}
	header := []byte{1}
	return seal(key, header, payload, sealedAD(keyringAAD, dhtKey, header))
}

// OpenKeyring verifies the keyring record raw at key (signed by the
// account's identity) and opens it with the account's root key.
func OpenKeyring(key string, raw []byte, root RootKey) (*Keyring, error) {
	rec, err := VerifyOwned(key, raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTampered, err)
	}
	b, err := parseKeyringBody(rec.Body)
	if err != nil {
		return nil, err
	}
	rk, err := keyringKey(root)
	if err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.NewX(rk[:])
	if err != nil {
		return nil, err
	}
	nonce, sealed := b[1:1+chacha20poly1305.NonceSizeX], b[1+chacha20poly1305.NonceSizeX:]
	payload, err := aead.Open(nil, nonce, sealed, sealedAD(keyringAAD, key, b[:1]))
	if err != nil {
		return nil, fmt.Errorf("%w: keyring does not open", ErrTampered)
	}
	defer clear(payload)
	var ring Keyring
	rest := payload
	if ring.Login, rest, err = readKey(rest); err != nil {
		return nil, err
	}
	if ring.Recovery, rest, err = readKey(rest); err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: trailing bytes in the keyring", ErrTampered)
	}
	return &ring, nil
}

// keyring returns the account's keyring and its record, or nil, nil when
// the network holds none.
func (m *Manager) keyring(ctx context.Context, a *Account) (*Keyring, *record.Record, error) {
	key := KeyringKey(a.ID())
	raw, err := m.recs.Get(ctx, key)
	if errors.Is(err, ErrNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	ring, err := OpenKeyring(key, raw, a.Root)
	if err != nil {
		return nil, nil, err
	}
	rec, _ := record.Decode(raw)
	return ring, rec, nil
}

// putKeyring signs and stores ring as the account's keyring, one above
// prev (the record it replaces, nil for none).
func (m *Manager) putKeyring(ctx context.Context, a *Account, ring *Keyring, prev *record.Record) error {
	key := KeyringKey(a.ID())
	body, err := sealKeyring(key, a.Root, ring)
	if err != nil {
		return err
	}
	var seq uint64
	if prev != nil {
		seq = prev.Seq + 1
	}
	r := record.Record{Kind: KindKeyring, Seq: seq, Expires: m.clock().Add(m.lifetime), Body: body}
	raw, err := r.Sign(key, a.Identity)
	if err != nil {
		return err
	}
	return m.recs.Put(ctx, key, raw)
}

// CreateWithRecovery is Create followed by ReplaceRecoveryKey: it returns
// the new account and its recovery key, to be shown to the user once. If
// the account was created but the recovery key could not be stored, it
// returns the account, a zero key and the error.
func (m *Manager) CreateWithRecovery(ctx context.Context, user Username, password string) (*Account, RecoveryKey, error) {
	a, err := m.Create(ctx, user, password)
	if err != nil {
		return nil, RecoveryKey{}, err
	}
	k, err := m.ReplaceRecoveryKey(ctx, a)
	if err != nil {
		return a, RecoveryKey{}, fmt.Errorf("account: created, but no recovery key could be stored (make one with `jellyfish account recovery-key`): %w", err)
	}
	return a, k, nil
}

// ErrOldRecoveryKeyLive: ReplaceRecoveryKey stored the new key but could
// not revoke the previous one's record. Recover refuses the previous key
// anyway while the keyring names the new one, and nobody re-signs its
// record, so it expires within 35 days.
var ErrOldRecoveryKeyLive = errors.New("account: the new recovery key works, but the previous one's record could not be revoked yet (recovery refuses it while the account's keyring names the new key, and it expires within 35 days)")

// ReplaceRecoveryKey makes a new recovery key for a (unlocked with its
// password, so its login key is known): it stores the recovery record of
// the new key, then the keyring naming it (and the current login key),
// then revokes the record of the previous key, so the previous key stops
// working. An error before the keyring is stored leaves the previous key
// in place. A failure of the revocation returns the new key with an error
// matching ErrOldRecoveryKeyLive.
func (m *Manager) ReplaceRecoveryKey(ctx context.Context, a *Account) (RecoveryKey, error) {
	prev, prevRec, err := m.keyring(ctx, a)
	if err != nil {
		return RecoveryKey{}, err
	}
	k, err := NewRecoveryKey()
	if err != nil {
		return RecoveryKey{}, err
	}
	rs, err := deriveRecovery(a.User, k)
	if err != nil {
		return RecoveryKey{}, err
	}
	key, err := RecoveryRecordKey(rs.signer.GetPublic())
	if err != nil {
		return RecoveryKey{}, err
	}
	body, err := sealRecovery(key, rs.wrap, &keys{identity: a.Identity, root: a.Root, user: a.User})
	if err != nil {
		return RecoveryKey{}, err
	}
	r := record.Record{Kind: KindRecovery, Seq: 0, Expires: m.clock().Add(m.lifetime), Body: body}
	raw, err := r.Sign(key, rs.signer)
	if err != nil {
		return RecoveryKey{}, err
	}
	if err := m.recs.Put(ctx, key, raw); err != nil {
		return RecoveryKey{}, fmt.Errorf("account: recovery record not stored: %w", err)
	}
	ring := &Keyring{Login: a.login, Recovery: rs.signer}
	if ring.Login == nil && prev != nil {
		ring.Login = prev.Login
	}
	if err := m.putKeyring(ctx, a, ring, prevRec); err != nil {
		return RecoveryKey{}, fmt.Errorf("account: recovery key not recorded for the account's devices, the previous one stays: %w", err)
	}
	if prev != nil && prev.Recovery != nil && !prev.Recovery.Equals(rs.signer) {
		if err := m.revokeRecovery(ctx, prev.Recovery); err != nil {
			return k, fmt.Errorf("%w: %w", ErrOldRecoveryKeyLive, err)
		}
	}
	return k, nil
}

// revokeRecovery replaces the recovery record signed by signer with a
// revoked one at the next sequence number.
func (m *Manager) revokeRecovery(ctx context.Context, signer crypto.PrivKey) error {
	key, err := RecoveryRecordKey(signer.GetPublic())
	if err != nil {
		return err
	}
	seq, err := m.nextSeq(ctx, key)
	if err != nil {
		return err
	}
	r := record.Record{Kind: KindRecovery, Seq: seq, Expires: m.clock().Add(m.lifetime), Body: []byte{1, recoveryRevoked}}
	raw, err := r.Sign(key, signer)
	if err != nil {
		return err
	}
	return m.recs.Put(ctx, key, raw)
}

// nextSeq returns one above the record at key, or, where the network
// holds none, one above its mark (the record expired; a copy of it might
// be published again), or 0 if the mark cannot be read.
func (m *Manager) nextSeq(ctx context.Context, key string) (uint64, error) {
	raw, err := m.recs.Get(ctx, key)
	if err == nil {
		rec, err := verifyOwned(key, raw)
		if err != nil {
			return 0, fmt.Errorf("%w: %v", ErrTampered, err)
		}
		return rec.Seq + 1, nil
	}
	if !errors.Is(err, ErrNotFound) {
		return 0, err
	}
	if mr, ok := m.recs.(MarkReader); ok {
		if mark, err := mr.Mark(ctx, key); err == nil {
			return mark + 1, nil
		}
	}
	return 0, nil
}

// Recover sets a new password for the account of user through its
// recovery key: it opens the recovery record, stores a login record for
// newPassword (which must pass CheckPassword and must not open an
// account already), retires the previous password's login record with a
// tombstone, as ChangePassword does, and records the new login key in the
// keyring. A wrong username or key gives ErrBadRecoveryKey, a replaced
// key (revoked, or no longer the one the keyring names)
// ErrRecoveryKeyReplaced. The recovery key stays valid. Errors after
// the new login record is stored return the account with the error: the
// new password works.
func (m *Manager) Recover(ctx context.Context, user Username, k RecoveryKey, newPassword string) (*Account, error) {
	if err := CheckPassword(user, newPassword); err != nil {
		return nil, err
	}
	rs, err := deriveRecovery(user, k)
	if err != nil {
		return nil, err
	}
	rkey, err := RecoveryRecordKey(rs.signer.GetPublic())
	if err != nil {
		return nil, err
	}
	raw, err := m.recs.Get(ctx, rkey)
	if errors.Is(err, ErrNotFound) {
		return nil, ErrBadRecoveryKey
	}
	if err != nil {
		return nil, err
	}
	rec, err := verifyOwned(rkey, raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTampered, err)
	}
	rb, err := parseRecoveryBody(rec.Body)
	if err != nil {
		return nil, err
	}
	if rb.state == recoveryRevoked {
		return nil, ErrRecoveryKeyReplaced
	}
	ks, err := rb.open(rkey, rs.wrap)
	if err != nil {
		return nil, err
	}
	if ks.user != user {
		return nil, fmt.Errorf("%w: recovery record names another user", ErrTampered)
	}
	a := &Account{User: user, Identity: ks.identity, Root: ks.root, Version: m.version}
	ring, ringRec, err := m.keyring(ctx, a)
	if err != nil {
		return nil, err
	}
	if ring != nil && ring.Recovery != nil && !ring.Recovery.Equals(rs.signer) {
		// A newer key was made and its revocation of this one failed:
		// the keyring has the last word.
		return nil, ErrRecoveryKeyReplaced
	}

	s, key, err := m.secrets(user, newPassword)
	if err != nil {
		return nil, err
	}
	seq, err := m.freeLoginSeq(ctx, key)
	if err != nil {
		return nil, err
	}
	a.login, a.loginSeq = s.login, seq
	if err := m.putNewLogin(ctx, a, s, key); err != nil {
		return nil, fmt.Errorf("account: new password not stored: %w", err)
	}
	var errs []error
	if ring == nil || ring.Login == nil {
		errs = append(errs, errors.New("the account's keyring does not name the previous password, so it could not be retired"))
	} else if oldKey, err := LoginKey(ring.Login.GetPublic()); err != nil {
		errs = append(errs, err)
	} else if oldKey != key {
		if err := m.retireLogin(ctx, oldKey, ring.Login); err != nil {
			errs = append(errs, fmt.Errorf("the previous password could not be retired yet (run recover again): %w", err))
		}
	}
	if err := m.putKeyring(ctx, a, &Keyring{Login: s.login, Recovery: rs.signer}, ringRec); err != nil {
		errs = append(errs, fmt.Errorf("the keyring still names the previous password: %w", err))
	}
	if len(errs) > 0 {
		return a, fmt.Errorf("account: the new password works, but: %w", errors.Join(errs...))
	}
	return a, nil
}

// retireLogin replaces the login record at key with a tombstone signed by
// login, unless it is one already.
func (m *Manager) retireLogin(ctx context.Context, key string, login crypto.PrivKey) error {
	return m.replaceLogin(ctx, key, login, stateTombstone)
}

// replaceLogin replaces the login record at key with a body of state
// (tombstone or rotated) signed by login, unless it has that state
// already. A rotated record is never turned back into a tombstone.
func (m *Manager) replaceLogin(ctx context.Context, key string, login crypto.PrivKey, state byte) error {
	version, kdf := m.version, m.kdf
	var seq uint64
	raw, err := m.recs.Get(ctx, key)
	switch {
	case err == nil:
		rec, err := verifyOwned(key, raw)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrTampered, err)
		}
		lb, err := parseLoginBody(rec.Body)
		if err != nil {
			return err
		}
		if lb.state == state || lb.state == stateRotated {
			return nil
		}
		version, kdf, seq = lb.version, lb.kdf, rec.Seq+1
	case errors.Is(err, ErrNotFound):
		if seq, err = m.nextSeq(ctx, key); err != nil {
			return err
		}
	default:
		return err
	}
	body := tombstoneBody(version, kdf)
	if state == stateRotated {
		body = rotatedBody(version, kdf)
	}
	tomb := record.Record{Kind: KindLogin, Seq: seq, Expires: m.clock().Add(m.lifetime), Body: body}
	traw, err := tomb.Sign(key, login)
	if err != nil {
		return err
	}
	return m.recs.Put(ctx, key, traw)
}

// updateKeyringLogin records a's login key in its keyring, if it has one.
func (m *Manager) updateKeyringLogin(ctx context.Context, a *Account) error {
	ring, rec, err := m.keyring(ctx, a)
	if err != nil || ring == nil {
		return err
	}
	ring.Login = a.login
	return m.putKeyring(ctx, a, ring, rec)
}
