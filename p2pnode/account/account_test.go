package account

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/record"
)

// memRecords is a Records store in memory that runs the real validator, as
// every DHT node does. It stands in for the network in unit tests only; the
// integration tests use a real network.
type memRecords struct {
	mu      sync.Mutex
	v       *record.Validator
	hw      *record.DatastoreHighWater
	m       map[string][]byte
	failPut func(key string) error
	down    bool
}

func newMemRecords(t *testing.T, clock record.Clock) *memRecords {
	hw := record.NewDatastoreHighWater(dssync.MutexWrap(ds.NewMapDatastore()), "/hwm")
	v, err := record.NewValidator(record.WithClock(clock), record.WithHighWater(hw), record.WithKind(LoginRules()), record.WithKind(AccountRules()), record.WithKind(RecoveryRules()), record.WithKind(KeyringRules()))
	if err != nil {
		t.Fatal(err)
	}
	return &memRecords{v: v, hw: hw, m: map[string][]byte{}}
}

// Mark implements MarkReader from the validator's high-water marks.
func (r *memRecords) Mark(ctx context.Context, key string) (uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down {
		return 0, ErrUnreachable
	}
	return r.hw.Seen(key)
}

func (r *memRecords) Put(ctx context.Context, key string, value []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down {
		return ErrUnreachable
	}
	if r.failPut != nil {
		if err := r.failPut(key); err != nil {
			return err
		}
	}
	if err := r.v.Validate(key, value); err != nil {
		return err
	}
	if old, ok := r.m[key]; ok {
		if i, _ := r.v.Select(key, [][]byte{old, value}); i == 0 && string(old) != string(value) {
			return fmt.Errorf("older record refused")
		}
	}
	r.m[key] = value
	return nil
}

func (r *memRecords) Get(ctx context.Context, key string) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down {
		return nil, ErrUnreachable
	}
	v, ok := r.m[key]
	if !ok {
		return nil, ErrNotFound
	}
	if rec, err := record.Decode(v); err == nil && !r.v.Now().Before(rec.Expires) {
		delete(r.m, key) // expired, as every node drops it
		return nil, ErrNotFound
	}
	return v, nil
}

// marklessRecords hides memRecords' MarkReader.
type marklessRecords struct{ Records }

const (
	alice   = Username("alice")
	goodPw  = "orbit lantern gravel mosaic"
	otherPw = "quiet harbor ninety kettle"
)

var now = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

func testManager(t *testing.T) (*Manager, *memRecords) {
	clock := func() time.Time { return now }
	recs := newMemRecords(t, clock)
	return NewManager(recs, InsecureTestKDF(), WithClock(clock)), recs
}

func TestCreateLoginSameKeys(t *testing.T) {
	ctx := context.Background()
	m, recs := testManager(t)
	a, err := m.Create(ctx, alice, goodPw)
	if err != nil {
		t.Fatal(err)
	}
	// Another device: a second Manager on the same records.
	m2 := NewManager(recs, InsecureTestKDF(), WithClock(func() time.Time { return now }))
	b, err := m2.Login(ctx, alice, goodPw)
	if err != nil {
		t.Fatal(err)
	}
	if a.ID() != b.ID() || a.Root != b.Root {
		t.Fatal("login on a second device found other keys")
	}
	pub, err := m2.Lookup(ctx, b.ID())
	if err != nil || pub.Created != now.Unix() {
		t.Fatalf("account record: %+v %v", pub, err)
	}
	if _, err := m.Create(ctx, alice, goodPw); !errors.Is(err, ErrExists) {
		t.Fatalf("second create: %v", err)
	}
}

// TestCreateOverExpiredAccount: an account's login record goes in at
// sequence 0 and again at 1, so its key keeps a high-water mark of 1 after
// the record expired. Create with the same username and password then
// refuses with ErrExpiredAccount, whether the Records can read the mark
// (checked first) or not (the put at 0 is refused as stale); a different
// password, which no mark can connect to the old account, makes a new one.
func TestCreateOverExpiredAccount(t *testing.T) {
	ctx := context.Background()
	clock := now
	recs := newMemRecords(t, func() time.Time { return clock })
	m := NewManager(recs, InsecureTestKDF(), WithClock(func() time.Time { return clock }))
	a, err := m.Create(ctx, alice, goodPw)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := LoginKey(a.login.GetPublic())
	if rec, err := record.Verify(key, recs.m[key]); err != nil || rec.Seq != 1 {
		t.Fatalf("login record after create: %+v, %v; want seq 1", rec, err)
	}
	if mark, err := recs.Mark(ctx, key); err != nil || mark != 1 {
		t.Fatalf("mark after create: %d, %v; want 1", mark, err)
	}

	clock = clock.Add(RecordLifetime + 24*time.Hour)
	if _, err := m.Login(ctx, alice, goodPw); !errors.Is(err, ErrBadLogin) || !errors.Is(err, ErrExpiredLogin) {
		t.Fatalf("login after expiry: %v, want ErrExpiredLogin, matching ErrBadLogin too (the record is gone)", err)
	}
	// A password that never opened anything still looks like any other
	// wrong one.
	if _, err := m.Login(ctx, alice, "violet harbor ninety kettle"); !errors.Is(err, ErrBadLogin) || errors.Is(err, ErrExpiredLogin) {
		t.Fatalf("login with a never-used password after expiry: %v, want ErrBadLogin only", err)
	}
	if _, err := m.Create(ctx, alice, goodPw); !errors.Is(err, ErrExpiredAccount) {
		t.Fatalf("create over the expired account: %v, want ErrExpiredAccount", err)
	}
	blind := NewManager(marklessRecords{recs}, InsecureTestKDF(), WithClock(func() time.Time { return clock }))
	if _, err := blind.Create(ctx, alice, goodPw); !errors.Is(err, ErrExpiredAccount) {
		t.Fatalf("create without mark reading: %v, want ErrExpiredAccount from the refused put", err)
	}
	if _, ok := recs.m[key]; ok {
		t.Fatal("a refused create left a login record")
	}
	if !strings.Contains(ErrExpiredAccount.Error(), "different password") || !strings.Contains(ErrExpiredAccount.Error(), "device that was logged in") {
		t.Fatalf("the error does not explain itself: %v", ErrExpiredAccount)
	}

	b, err := m.Create(ctx, alice, otherPw)
	if err != nil {
		t.Fatalf("create with another password: %v", err)
	}
	if b.ID() == a.ID() {
		t.Fatal("a new account got the old identity")
	}
}

func TestWrongPasswordAndUnknownUserLookAlike(t *testing.T) {
	ctx := context.Background()
	m, _ := testManager(t)
	if _, err := m.Create(ctx, alice, goodPw); err != nil {
		t.Fatal(err)
	}
	_, e1 := m.Login(ctx, alice, otherPw)
	_, e2 := m.Login(ctx, "bob", goodPw)
	if !errors.Is(e1, ErrBadLogin) || !errors.Is(e2, ErrBadLogin) || e1.Error() != e2.Error() {
		t.Fatalf("errors differ or unclear: %v / %v", e1, e2)
	}
}

func TestPasswordChange(t *testing.T) {
	ctx := context.Background()
	m, recs := testManager(t)
	a, err := m.Create(ctx, alice, goodPw)
	if err != nil {
		t.Fatal(err)
	}
	var dataKey [32]byte
	copy(dataKey[:], "a file's data key, thirty-two b.")
	wrapped, err := a.Root.WrapDataKey(dataKey, []byte("manifest-1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.ChangePassword(ctx, alice, goodPw, "tiny"); !errors.Is(err, ErrWeakPassword) {
		t.Fatalf("weak new password: %v", err)
	}
	if _, err := m.ChangePassword(ctx, alice, otherPw, otherPw+" x"); !errors.Is(err, ErrBadLogin) {
		t.Fatalf("wrong old password: %v", err)
	}
	if _, err := m.ChangePassword(ctx, alice, goodPw, otherPw); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Login(ctx, alice, goodPw); !errors.Is(err, ErrBadLogin) {
		t.Fatalf("old password still works: %v", err)
	}
	b, err := m.Login(ctx, alice, otherPw)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := b.Root.UnwrapDataKey(wrapped, []byte("manifest-1")); err != nil || got != dataKey {
		t.Fatalf("data key wrapped before the change: %v", err)
	}
	if _, err := b.Root.UnwrapDataKey(wrapped, []byte("manifest-2")); !errors.Is(err, ErrUnwrap) {
		t.Fatal("wrapped key opened for another manifest")
	}
	// The old record (created at 0, then 1) is a tombstone with a higher
	// sequence number.
	oldKey, _ := LoginKey(a.login.GetPublic())
	rec, err := record.Verify(oldKey, recs.m[oldKey])
	if err != nil || rec.Seq != 2 {
		t.Fatalf("tombstone: seq %v err %v", rec, err)
	}
	// Changing back to the first password works (a tombstone is no obstacle).
	if _, err := m.ChangePassword(ctx, alice, otherPw, goodPw); err != nil {
		t.Fatal(err)
	}
	if c, err := m.Login(ctx, alice, goodPw); err != nil || c.ID() != a.ID() {
		t.Fatalf("back to first password: %v", err)
	}
}

func TestPasswordChangeInterrupted(t *testing.T) {
	ctx := context.Background()
	m, recs := testManager(t)
	a, err := m.Create(ctx, alice, goodPw)
	if err != nil {
		t.Fatal(err)
	}
	oldKey, _ := LoginKey(a.login.GetPublic())
	// The network fails while the new record is stored: the old password
	// still works, the new one does not.
	recs.failPut = func(key string) error { return ErrUnreachable }
	if _, err := m.ChangePassword(ctx, alice, goodPw, otherPw); err == nil {
		t.Fatal("change succeeded without storing anything")
	}
	recs.failPut = nil
	if _, err := m.Login(ctx, alice, goodPw); err != nil {
		t.Fatalf("old password lost: %v", err)
	}
	// It fails while the old record is retired: both work.
	recs.failPut = func(key string) error {
		if key == oldKey {
			return ErrUnreachable
		}
		return nil
	}
	if _, err := m.ChangePassword(ctx, alice, goodPw, otherPw); err == nil || !strings.Contains(err.Error(), "new password works") {
		t.Fatalf("want partial-change error, got %v", err)
	}
	recs.failPut = nil
	for _, pw := range []string{goodPw, otherPw} {
		if _, err := m.Login(ctx, alice, pw); err != nil {
			t.Fatalf("after interrupted change, %q: %v", pw, err)
		}
	}
}

func TestTamperedAndPlantedRecords(t *testing.T) {
	ctx := context.Background()
	m, recs := testManager(t)
	a, err := m.Create(ctx, alice, goodPw)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := LoginKey(a.login.GetPublic())
	orig := recs.m[key]
	for name, edit := range map[string]func([]byte) []byte{
		"flipped byte": func(b []byte) []byte { c := append([]byte(nil), b...); c[len(c)/2] ^= 1; return c },
		"truncated":    func(b []byte) []byte { return b[:len(b)-10] },
	} {
		recs.m[key] = edit(orig)
		if _, err := m.Login(ctx, alice, goodPw); !errors.Is(err, ErrTampered) {
			t.Errorf("%s: got %v", name, err)
		}
	}
	recs.m[key] = orig

	// A record made with the cheap test parameters is planted where a normal
	// client looks (possible only for someone who knows the password, but
	// the client must still refuse weak parameters).
	s, err := derive(alice, goodPw, VersionV1, versionParams[VersionV1])
	if err != nil {
		t.Fatal(err)
	}
	v1Key, _ := LoginKey(s.login.GetPublic())
	body, err := sealLogin(v1Key, versionInsecureTest, versionParams[versionInsecureTest], s.wrap, &keys{identity: a.Identity, root: a.Root, user: alice})
	if err != nil {
		t.Fatal(err)
	}
	r := record.Record{Kind: KindLogin, Seq: 1, Expires: now.Add(time.Hour), Body: body}
	raw, err := r.Sign(v1Key, s.login)
	if err != nil {
		t.Fatal(err)
	}
	recs.m[v1Key] = raw
	strict := NewManager(recs, WithClock(func() time.Time { return now }))
	if _, err := strict.Login(ctx, alice, goodPw); !errors.Is(err, ErrWeakKDF) {
		t.Fatalf("weak parameters accepted: %v", err)
	}
}

func TestUnreachableNetwork(t *testing.T) {
	m, recs := testManager(t)
	recs.down = true
	if _, err := m.Create(context.Background(), alice, goodPw); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("create: %v", err)
	}
	if _, err := m.Login(context.Background(), alice, goodPw); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("login: %v", err)
	}
}

func TestPasswordStrength(t *testing.T) {
	for _, pw := range []string{"", "short", "password123!", "Password2026", "aaaaaaaaaaaaaaaa", "1234567890123", "qwertyuiop12", "alice-secret-1", "abcdefghijklmnop"} {
		err := CheckPassword(alice, pw)
		if !errors.Is(err, ErrWeakPassword) {
			t.Errorf("%q accepted", pw)
		} else if !strings.Contains(err.Error(), "offline") {
			t.Errorf("%q: message does not say why: %v", pw, err)
		}
	}
	for _, pw := range []string{goodPw, otherPw, "Tr0ub4dor&3-xq", "vK8#pQ2!zL9@wR"} {
		if err := CheckPassword(alice, pw); err != nil {
			t.Errorf("%q refused: %v", pw, err)
		}
	}
}

func TestNormalizeUsername(t *testing.T) {
	composed, err := NormalizeUsername("Jos\u00e9")
	if err != nil {
		t.Fatal(err)
	}
	decomposed, err := NormalizeUsername("Jose\u0301")
	if err != nil || composed != decomposed {
		t.Fatalf("NFC: %q vs %q (%v)", composed, decomposed, err)
	}
	for _, bad := range []string{"", " alice", "alice ", "a\x00b", "\xff", strings.Repeat("x", 65)} {
		if _, err := NormalizeUsername(bad); !errors.Is(err, ErrBadUsername) {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestKDFKnownAnswer pins the version-1 derivation: the login key for a
// fixed username and password. It runs the real 64 MiB Argon2id once.
func TestKDFKnownAnswer(t *testing.T) {
	s, err := derive("alice", "orbit lantern gravel mosaic", VersionV1, versionParams[VersionV1])
	if err != nil {
		t.Fatal(err)
	}
	key, _ := LoginKey(s.login.GetPublic())
	const want = "/jf/login/12D3KooWDKQuaZJceBeTD7qL8niXELRZoyoVKWmHLQppvFtMEdgS"
	if key != want {
		t.Fatalf("login key %s, want %s", key, want)
	}
	if got := fmt.Sprintf("%x", s.wrap[:8]); got != "a4c0b8cdcabc93ef" {
		t.Fatalf("wrap key starts %s", got)
	}
}

func TestRefreshRecords(t *testing.T) {
	ctx := context.Background()
	m, recs := testManager(t)
	a, err := m.Create(ctx, alice, goodPw)
	if err != nil {
		t.Fatal(err)
	}
	loginKey, _ := LoginKey(a.LoginKey().GetPublic())
	before, _ := record.Verify(loginKey, recs.m[loginKey])
	// Plenty of life left: nothing is re-signed.
	if err := m.RefreshRecords(ctx, a, time.Hour); err != nil {
		t.Fatal(err)
	}
	if same, _ := record.Verify(loginKey, recs.m[loginKey]); same.Seq != before.Seq {
		t.Fatal("refreshed a record with life left")
	}
	// Thirty days later, a device restored from its cache (no password)
	// refreshes both records.
	later := now.Add(30 * 24 * time.Hour)
	recs.v, _ = record.NewValidator(record.WithClock(func() time.Time { return later }), record.WithKind(LoginRules()), record.WithKind(AccountRules()))
	m2 := NewManager(recs, InsecureTestKDF(), WithClock(func() time.Time { return later }))
	restored := Restore(a.User, a.Identity, a.Root, a.Version, a.LoginKey())
	if err := m2.RefreshRecords(ctx, restored, 7*24*time.Hour); err != nil {
		t.Fatal(err)
	}
	after, err := record.Verify(loginKey, recs.m[loginKey])
	if err != nil || after.Seq != before.Seq+1 || !after.Expires.After(later.Add(30*24*time.Hour)) {
		t.Fatalf("login record not refreshed: %+v %v", after, err)
	}
	acctKey := AccountKey(a.ID())
	if rec, _ := record.Verify(acctKey, recs.m[acctKey]); !rec.Expires.After(later.Add(30 * 24 * time.Hour)) {
		t.Fatal("account record not refreshed")
	}
	// The refreshed login record still opens with the password.
	if b, err := m2.Login(ctx, alice, goodPw); err != nil || b.ID() != a.ID() {
		t.Fatalf("login after refresh: %v", err)
	}
}

// TestKDFKnownAnswerV2 pins the version-2 derivation (128 MiB Argon2id,
// salt bound to the network tag and the version), and that it differs
// from version 1's for the same username and password.
func TestKDFKnownAnswerV2(t *testing.T) {
	s, err := derive("alice", "orbit lantern gravel mosaic", VersionV2, versionParams[VersionV2])
	if err != nil {
		t.Fatal(err)
	}
	key, _ := LoginKey(s.login.GetPublic())
	const want = "/jf/login/12D3KooWRQ6dVKqCmhgbSa5c6HMbmNyacaWCJXp7jXXah2a7vfDW"
	if key != want {
		t.Fatalf("login key %s, want %s", key, want)
	}
	if got := fmt.Sprintf("%x", s.wrap[:8]); got != "fada45656d541b8c" {
		t.Fatalf("wrap key starts %s", got)
	}
	if loginSalt("alice", VersionV1) == loginSalt("alice", VersionV2) {
		t.Fatal("versions 1 and 2 share a salt")
	}
}

// TestLoginFallsBackToV1: an account made at version 1 (before version 2
// existed) still logs in, at version 1, with the real costs; a new
// account with the same username and password is refused (it would hide
// the old one from Login, which tries version 2 first); a password change
// moves the account to version 2 and retires the version-1 password.
func TestLoginFallsBackToV1(t *testing.T) {
	ctx := context.Background()
	clock := func() time.Time { return now }
	recs := newMemRecords(t, clock)
	v1 := NewManager(recs, WithClock(clock))
	v1.version, v1.kdf, v1.older = VersionV1, versionParams[VersionV1], nil
	old, err := v1.Create(ctx, alice, goodPw)
	if err != nil {
		t.Fatal(err)
	}
	m := NewManager(recs, WithClock(clock))
	a, err := m.Login(ctx, alice, goodPw)
	if err != nil {
		t.Fatalf("login of a version-1 account: %v", err)
	}
	if a.ID() != old.ID() || a.Root != old.Root || a.Version != VersionV1 {
		t.Fatalf("logged in to %s at version %d, want %s at 1", a.ID(), a.Version, old.ID())
	}
	if _, err := m.Create(ctx, alice, goodPw); !errors.Is(err, ErrExists) {
		t.Fatalf("create over a version-1 account: %v, want ErrExists", err)
	}
	na, err := m.ChangePassword(ctx, alice, goodPw, otherPw)
	if err != nil {
		t.Fatal(err)
	}
	if na.Version != VersionV2 || na.ID() != old.ID() {
		t.Fatalf("after the change: version %d, account %s", na.Version, na.ID())
	}
	b, err := m.Login(ctx, alice, otherPw)
	if err != nil || b.ID() != old.ID() || b.Version != VersionV2 {
		t.Fatalf("login with the new password: %v", err)
	}
	if _, err := m.Login(ctx, alice, goodPw); !errors.Is(err, ErrBadLogin) {
		t.Fatalf("login with the retired version-1 password: %v, want ErrBadLogin", err)
	}
	// A device restored from its cache keeps its account's version when
	// it re-signs the login record.
	if err := m.Refresh(ctx, b, otherPw); err != nil {
		t.Fatal(err)
	}
	if c, err := m.Login(ctx, alice, otherPw); err != nil || c.Version != VersionV2 {
		t.Fatalf("login after a refresh: %v", err)
	}
}
