package account

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/record"
)

// RootKey is an account's random root key. It wraps every file's data key;
// it is never derived from the password, so changing the password never
// re-encrypts data.
type RootKey [32]byte

// WrapDataKey encrypts a file's 32-byte data key under the root key
// (XChaCha20-Poly1305, random nonce; ad binds it to its use, e.g. a file
// manifest ID). The result is nonce ‖ ciphertext.
func (r *RootKey) WrapDataKey(dataKey [32]byte, ad []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(r[:])
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, chacha20poly1305.NonceSizeX, chacha20poly1305.NonceSizeX+32+chacha20poly1305.Overhead)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(nonce, nonce, dataKey[:], ad), nil
}

// ErrUnwrap: a wrapped data key does not open under this root key.
var ErrUnwrap = errors.New("account: data key does not open under this account's root key")

// UnwrapDataKey reverses WrapDataKey.
func (r *RootKey) UnwrapDataKey(wrapped, ad []byte) ([32]byte, error) {
	var k [32]byte
	aead, err := chacha20poly1305.NewX(r[:])
	if err != nil {
		return k, err
	}
	if len(wrapped) != chacha20poly1305.NonceSizeX+32+chacha20poly1305.Overhead {
		return k, ErrUnwrap
	}
	pt, err := aead.Open(nil, wrapped[:chacha20poly1305.NonceSizeX], wrapped[chacha20poly1305.NonceSizeX:], ad)
	if err != nil {
		return k, ErrUnwrap
	}
	copy(k[:], pt)
	return k, nil
}

// Errors a user sees. Wrong password and unknown username are one error:
// the login record's location comes from both, so they cannot be told
// apart; nor can an account whose login record is of a version this
// package does not derive (made by a newer Jellyfish), so ErrBadLogin
// names that too.
var (
	ErrBadLogin    = errors.New("account: wrong username or password (or no such account, or one made by a newer version of Jellyfish)")
	ErrExists      = errors.New("account: an account already exists for this username and password")
	ErrTampered    = errTampered
	ErrNotFound    = errors.New("account: record not found")
	ErrUnreachable = errors.New("account: the network cannot be reached")
	// ErrExpiredAccount: Create found no login record for this username
	// and password, but the network remembers one (its high-water mark,
	// see MarkReader): the account they opened expired. A new identity
	// there would make the old one's keys unreachable for good, so Create
	// refuses. A different password cannot be detected.
	ErrExpiredAccount = errors.New("account: this username and password opened an account before, and its records have expired from the network " +
		"(no device or linked node re-signed them for 35 days); nothing was created, because a new account in its place would make the old one's keys unreachable for good. " +
		"Its keys survive only on a device that was logged in to it (run jellyfish there: it publishes them again) or in its recovery key (jellyfish account recover). " +
		"A different password makes a new, separate account: the network cannot tell that it belongs to the same person")
)

// ErrExpiredLogin: Login found no login record for this username and
// password, but the network remembers one: the account expired (it also
// matches ErrBadLogin).
var ErrExpiredLogin = errors.New("account: this username and password opened an account whose records have expired from the network " +
	"(no device or linked node re-signed them for 35 days). Its keys survive only on a device that was logged in to it " +
	"(run jellyfish there: it publishes them again) or in its recovery key (jellyfish account recover)")

// expiredLogin is ErrExpiredLogin that matches ErrBadLogin too, for
// callers that only tell a login that failed.
type expiredLogin struct{}

func (expiredLogin) Error() string { return ErrExpiredLogin.Error() }

func (expiredLogin) Is(target error) bool { return target == ErrExpiredLogin || target == ErrBadLogin }

// Records is the part of the DHT accounts need. Put must confirm that
// remote peers stored the record (not just the local store); Get returns
// the best valid record, or an error matching ErrNotFound only when enough
// peers answered that they hold none, or one matching ErrUnreachable when
// too few answered to tell. ErrUnreachable means "unknown": a caller must
// never act on it as if the record were absent (start a sequence again,
// publish a copy over it).
type Records interface {
	Put(ctx context.Context, key string, value []byte) error
	Get(ctx context.Context, key string) ([]byte, error)
}

// MarkReader is an optional ability of Records: Mark returns the highest
// sequence number the network has seen in a valid record at key. Nodes
// keep it after the record expired, so a mark above 0 at a key without a
// record says that a record lived there. It may return ErrUnreachable.
type MarkReader interface {
	Mark(ctx context.Context, key string) (uint64, error)
}

// Account is an unlocked account on a device.
type Account struct {
	User     Username
	Identity crypto.PrivKey
	Root     RootKey
	Version  uint8 // key-derivation version of the login record
	login    crypto.PrivKey
	loginSeq uint64
}

// ID returns the account's public identity: the peer ID of its identity key.
func (a *Account) ID() peer.ID {
	id, _ := peer.IDFromPrivateKey(a.Identity)
	return id
}

// Manager creates and unlocks accounts against a Records store.
type Manager struct {
	recs    Records
	clock   record.Clock
	version uint8
	kdf     KDFParams
	// older are the versions Login falls back to when the current one
	// finds no record, newest first.
	older     []uint8
	allowTest bool
	lifetime  time.Duration
}

// Option configures a Manager.
type Option func(*Manager)

// InsecureTestKDF makes the Manager derive keys with a tiny Argon2id cost
// and accept login records made that way. For tests only: such records are
// refused by every Manager without this option.
func InsecureTestKDF() Option {
	return func(m *Manager) {
		m.version, m.kdf, m.older, m.allowTest = versionInsecureTest, versionParams[versionInsecureTest], nil, true
	}
}

// WithClock sets the clock for record expiries.
func WithClock(c record.Clock) Option { return func(m *Manager) { m.clock = c } }

// RecordLifetime is how long login and account records are signed for. The
// network re-puts them until then; a device that logs in re-signs them.
const RecordLifetime = 35 * 24 * time.Hour

// NewManager returns a Manager using recs.
func NewManager(recs Records, opts ...Option) *Manager {
	m := &Manager{recs: recs, clock: time.Now, version: CurrentVersion, kdf: versionParams[CurrentVersion], older: []uint8{VersionV1}, lifetime: RecordLifetime}
	for _, o := range opts {
		o(m)
	}
	return m
}

func (m *Manager) secrets(user Username, password string) (*secrets, string, error) {
	return m.secretsAt(user, password, m.version)
}

// secretsAt is secrets at a given version.
func (m *Manager) secretsAt(user Username, password string, version uint8) (*secrets, string, error) {
	p, err := paramsFor(version, m.allowTest)
	if err != nil {
		return nil, "", err
	}
	s, err := derive(user, password, version, p)
	if err != nil {
		return nil, "", err
	}
	key, err := LoginKey(s.login.GetPublic())
	return s, key, err
}

// fetchLogin returns the login record at key, decoded, or ErrBadLogin.
func (m *Manager) fetchLogin(ctx context.Context, key string) (*record.Record, *loginBody, error) {
	raw, err := m.recs.Get(ctx, key)
	if errors.Is(err, ErrNotFound) {
		return nil, nil, ErrBadLogin
	}
	if err != nil {
		return nil, nil, err
	}
	rec, err := verifyOwned(key, raw)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrTampered, err)
	}
	lb, err := parseLoginBody(rec.Body)
	if err != nil {
		return nil, nil, err
	}
	return rec, lb, nil
}

// Create makes a new account for username and password and publishes its
// login and account records. The password must pass CheckPassword. It
// fails with ErrExists if this username and password already open one.
func (m *Manager) Create(ctx context.Context, user Username, password string) (*Account, error) {
	if err := CheckPassword(user, password); err != nil {
		return nil, err
	}
	s, key, err := m.secrets(user, password)
	if err != nil {
		return nil, err
	}
	seq, err := m.freeLoginSeq(ctx, key)
	if err != nil {
		return nil, err
	}
	if err := m.olderLoginActive(ctx, user, password); err != nil {
		return nil, err
	}
	identity, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, err
	}
	a := &Account{User: user, Identity: identity, Version: m.version, login: s.login, loginSeq: seq}
	if _, err := rand.Read(a.Root[:]); err != nil {
		return nil, err
	}
	if err := m.putNewLogin(ctx, a, s, key); err != nil {
		return nil, err
	}
	if err := m.PublishAccount(ctx, a, &Public{Created: m.clock().Unix()}); err != nil {
		return nil, err
	}
	return a, nil
}

// olderLoginActive fails with ErrExists when username and password open an
// account at an older version: a new account there would hide it from
// Login, which tries the current version first.
func (m *Manager) olderLoginActive(ctx context.Context, user Username, password string) error {
	for _, v := range m.older {
		_, key, err := m.secretsAt(user, password, v)
		if err != nil {
			return err
		}
		_, lb, err := m.fetchLogin(ctx, key)
		switch {
		case err == nil && lb.state == stateActive:
			return ErrExists
		case err != nil && !errors.Is(err, ErrBadLogin):
			return err
		}
	}
	return nil
}

// freeLoginSeq returns the sequence number a new login record at key
// starts at: 0 where none ever was, one above a tombstone (the password
// was changed away from this one). It fails with ErrExists where an
// active record is, and with ErrExpiredAccount where the network
// remembers a record that expired.
func (m *Manager) freeLoginSeq(ctx context.Context, key string) (uint64, error) {
	rec, lb, err := m.fetchLogin(ctx, key)
	switch {
	case err == nil && lb.state == stateActive:
		return 0, ErrExists
	case err == nil:
		return rec.Seq + 1, nil
	case !errors.Is(err, ErrBadLogin):
		return 0, err
	}
	// No record. If the network's mark says one lived here, it expired.
	// A mark that cannot be read decides nothing: the put at 0 is refused
	// by every node that holds a mark anyway.
	if m.markAbove(ctx, key, 0) {
		return 0, ErrExpiredAccount
	}
	return 0, nil
}

// markAbove reports whether the network's high-water mark at key is above
// seq; false if the Records cannot tell.
func (m *Manager) markAbove(ctx context.Context, key string, seq uint64) bool {
	mr, ok := m.recs.(MarkReader)
	if !ok {
		return false
	}
	mark, err := mr.Mark(ctx, key)
	return err == nil && mark > seq
}

// putNewLogin stores a's first login record at key: at a.loginSeq, then
// the same body at a.loginSeq+1. The second put leaves a high-water mark
// of at least 1 on every node that stored it, for ever: long after the
// record expired, Create can tell that this key once opened an account
// (a record only ever put at sequence 0 leaves no mark). A first put the
// network refuses as stale (its mark is above a.loginSeq: a record here
// expired) fails with ErrExpiredAccount.
func (m *Manager) putNewLogin(ctx context.Context, a *Account, s *secrets, key string) error {
	body, err := sealLogin(key, a.Version, versionParams[a.Version], s.wrap, &keys{identity: a.Identity, root: a.Root, user: a.User})
	if err != nil {
		return err
	}
	if err := m.putLoginBody(ctx, key, s.login, a.loginSeq, body); err != nil {
		// The confirmed put reports a refusal by remote nodes as
		// unconfirmed; their marks say whether staleness was the cause.
		if errors.Is(err, record.ErrStale) || (errors.Is(err, ErrUnreachable) && m.markAbove(ctx, key, a.loginSeq)) {
			return ErrExpiredAccount
		}
		return err
	}
	a.loginSeq++
	return m.putLoginBody(ctx, key, s.login, a.loginSeq, body)
}

func (m *Manager) putLogin(ctx context.Context, a *Account, s *secrets, key string) error {
	body, err := sealLogin(key, a.Version, versionParams[a.Version], s.wrap, &keys{identity: a.Identity, root: a.Root, user: a.User})
	if err != nil {
		return err
	}
	return m.putLoginBody(ctx, key, s.login, a.loginSeq, body)
}

func (m *Manager) putLoginBody(ctx context.Context, key string, signer crypto.PrivKey, seq uint64, body []byte) error {
	r := record.Record{Kind: KindLogin, Seq: seq, Expires: m.clock().Add(m.lifetime), Body: body}
	raw, err := r.Sign(key, signer)
	if err != nil {
		return err
	}
	return m.recs.Put(ctx, key, raw)
}

// Login unlocks the account of username and password. Wrong password and
// unknown username both give ErrBadLogin.
func (m *Manager) Login(ctx context.Context, user Username, password string) (*Account, error) {
	versions := append([]uint8{m.version}, m.older...)
	for i, v := range versions {
		a, err := m.loginAt(ctx, user, password, v)
		if errors.Is(err, errNoLogin) && i < len(versions)-1 {
			continue // none at this version: an account made at an older one?
		}
		if errors.Is(err, errNoLogin) {
			return nil, ErrBadLogin
		}
		return a, err
	}
	return nil, ErrBadLogin
}

// errNoLogin: no login record at a version's key, and the network
// remembers none (loginAt).
var errNoLogin = errors.New("account: no login record at this version")

// loginAt is Login at one key-derivation version.
func (m *Manager) loginAt(ctx context.Context, user Username, password string, version uint8) (*Account, error) {
	s, key, err := m.secretsAt(user, password, version)
	if err != nil {
		return nil, err
	}
	rec, lb, err := m.fetchLogin(ctx, key)
	if errors.Is(err, ErrBadLogin) && m.markAbove(ctx, key, 0) {
		// No record, but the network remembers one: it expired.
		return nil, expiredLogin{}
	}
	if errors.Is(err, ErrBadLogin) {
		return nil, errNoLogin
	}
	if err != nil {
		return nil, err
	}
	switch lb.state {
	case stateTombstone:
		return nil, ErrBadLogin // the password was changed away from this one
	case stateRotated:
		return nil, ErrRotated
	}
	want, err := paramsFor(lb.version, m.allowTest)
	if err != nil {
		return nil, err
	}
	if lb.version != version || lb.kdf != want {
		return nil, fmt.Errorf("%w: version %d with %+v", ErrWeakKDF, lb.version, lb.kdf)
	}
	k, err := lb.open(key, s.wrap)
	if err != nil {
		return nil, err
	}
	if k.user != user {
		return nil, fmt.Errorf("%w: record names another user", ErrTampered)
	}
	return &Account{User: user, Identity: k.identity, Root: k.root, Version: lb.version, login: s.login, loginSeq: rec.Seq}, nil
}

// ChangePassword re-wraps the account's keys under a new password. The new
// login record is confirmed stored before the old one is replaced by a
// tombstone, so an interruption leaves the old or the new password working,
// never neither. It does not rotate the account's keys: whoever knew the
// old password and copied the keys keeps them.
func (m *Manager) ChangePassword(ctx context.Context, user Username, oldPassword, newPassword string) (*Account, error) {
	a, err := m.Login(ctx, user, oldPassword)
	if err != nil {
		return nil, err
	}
	if err := CheckPassword(user, newPassword); err != nil {
		return nil, err
	}
	if oldPassword == newPassword {
		return nil, &WeakPasswordError{Reason: "it is the current password"}
	}
	s, key, err := m.secrets(user, newPassword)
	if err != nil {
		return nil, err
	}
	seq, err := m.freeLoginSeq(ctx, key)
	if err != nil {
		return nil, err
	}
	na := *a
	na.login, na.loginSeq, na.Version = s.login, seq, m.version
	if err := m.putNewLogin(ctx, &na, s, key); err != nil {
		return nil, fmt.Errorf("account: new password not stored, the old one still works: %w", err)
	}
	oldKey, err := LoginKey(a.login.GetPublic())
	if err != nil {
		return nil, err
	}
	tomb := record.Record{Kind: KindLogin, Seq: a.loginSeq + 1, Expires: m.clock().Add(m.lifetime), Body: tombstoneBody(a.Version, versionParams[a.Version])}
	raw, err := tomb.Sign(oldKey, a.login)
	if err != nil {
		return nil, err
	}
	if err := m.recs.Put(ctx, oldKey, raw); err != nil {
		return &na, fmt.Errorf("account: new password works, but the old one could not be retired yet (retry passwd): %w", err)
	}
	// A recovery retires the password the keyring names.
	if err := m.updateKeyringLogin(ctx, &na); err != nil {
		return &na, fmt.Errorf("account: password changed, but the account's keyring still names the old one (a recovery would not retire the new one): %w", err)
	}
	return &na, nil
}

// Refresh re-signs the account's login record with a new expiry, so it
// outlives the network's record lifetime while the account is in use.
func (m *Manager) Refresh(ctx context.Context, a *Account, password string) error {
	s, key, err := m.secretsAt(a.User, password, a.Version)
	if err != nil {
		return err
	}
	a.loginSeq++
	return m.putLogin(ctx, a, s, key)
}

// PublishAccount signs and stores the account record with pub's nodes and
// devices, with a sequence number above any already published.
func (m *Manager) PublishAccount(ctx context.Context, a *Account, pub *Public) error {
	key := AccountKey(a.ID())
	var seq uint64
	if raw, err := m.recs.Get(ctx, key); err == nil {
		if old, err := verifyOwned(key, raw); err == nil {
			seq = old.Seq + 1
		}
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	body, err := pub.marshal()
	if err != nil {
		return err
	}
	r := record.Record{Kind: KindAccount, Seq: seq, Expires: m.clock().Add(m.lifetime), Body: body}
	raw, err := r.Sign(key, a.Identity)
	if err != nil {
		return err
	}
	return m.recs.Put(ctx, key, raw)
}

// Lookup returns the public record of an account.
func (m *Manager) Lookup(ctx context.Context, id peer.ID) (*Public, error) {
	p, _, err := m.LookupRecord(ctx, id)
	return p, err
}

// OpenRecord checks and decodes raw, the account record of id as
// LookupRecord returned it.
func OpenRecord(id peer.ID, raw []byte) (*record.Record, *Public, error) {
	return openAccount(AccountKey(id), raw)
}

// LookupRecord is Lookup that also returns the record as read, for
// UpdateFrom.
func (m *Manager) LookupRecord(ctx context.Context, id peer.ID) (*Public, []byte, error) {
	raw, err := m.recs.Get(ctx, AccountKey(id))
	if err != nil {
		return nil, nil, err
	}
	_, p, err := openAccount(AccountKey(id), raw)
	if err != nil {
		return nil, nil, err
	}
	return p, raw, nil
}

func verifyOwned(key string, raw []byte) (*record.Record, error) { return VerifyOwned(key, raw) }

// Restore rebuilds an unlocked account from keys a device cached, without
// the password. login may be nil; then RefreshRecords cannot re-sign the
// login record.
func Restore(user Username, identity crypto.PrivKey, root RootKey, version uint8, login crypto.PrivKey) *Account {
	return &Account{User: user, Identity: identity, Root: root, Version: version, login: login}
}

// LoginKey returns the account's login signing key (derived from username
// and password), or nil if the account was restored without it.
func (a *Account) LoginKey() crypto.PrivKey { return a.login }

// RefreshRecords re-signs the account's login and account records with a
// fresh expiry when less than minLeft of their life remains, so an account
// in use never expires from the network. The login record's body is kept
// as it is: re-signing needs the login key, not the password.
func (m *Manager) RefreshRecords(ctx context.Context, a *Account, minLeft time.Duration) error {
	var errs []error
	if a.login != nil {
		key, err := LoginKey(a.login.GetPublic())
		if err != nil {
			return err
		}
		errs = append(errs, m.resign(ctx, key, KindLogin, a.login, minLeft))
	}
	errs = append(errs, m.resign(ctx, AccountKey(a.ID()), KindAccount, a.Identity, minLeft))
	return errors.Join(errs...)
}

// resign re-signs the record at key, body unchanged, with the next
// sequence number and a fresh expiry, if less than minLeft remains.
func (m *Manager) resign(ctx context.Context, key string, kind record.Kind, signer crypto.PrivKey, minLeft time.Duration) error {
	raw, err := m.recs.Get(ctx, key)
	if err != nil {
		return err
	}
	rec, err := verifyOwned(key, raw)
	if err != nil || rec.Expires.Sub(m.clock()) >= minLeft {
		return err
	}
	nr := record.Record{Kind: kind, Seq: rec.Seq + 1, Expires: m.clock().Add(m.lifetime), Body: rec.Body}
	val, err := nr.Sign(key, signer)
	if err != nil {
		return err
	}
	if err := m.recs.Put(ctx, key, val); err != nil {
		return fmt.Errorf("refresh %s: %w", key, err)
	}
	return nil
}
