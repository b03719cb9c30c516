package account

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/record"
)

// TestRecoveryKeyText pins the text form (a known answer), reads it back
// whatever the case, spacing and O/I/L look-alikes, and refuses every
// single-character typo through the checksum.
func TestRecoveryKeyText(t *testing.T) {
	var k RecoveryKey
	for i := range k {
		k[i] = byte(i * 7)
	}
	const want = "0400E-3GN3G-HJMC9-R7X34-TN2VC-9MQ0X-VYGMK-6N6G8" // computed independently (Python)
	s := k.String()
	if s != want {
		t.Fatalf("text form %s, want %s", s, want)
	}
	for _, in := range []string{s, strings.ToLower(s), strings.ReplaceAll(s, "-", " "), strings.ReplaceAll(strings.ReplaceAll(s, "0", "O"), "1", "l"), " " + strings.ReplaceAll(s, "-", "") + "\n"} {
		got, err := ParseRecoveryKey(in)
		if err != nil || got != k {
			t.Fatalf("parse %q: %x, %v", in, got, err)
		}
	}
	const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	compact := strings.ReplaceAll(s, "-", "")
	for i := range compact {
		for _, c := range alphabet {
			if byte(c) == compact[i] {
				continue
			}
			typo := compact[:i] + string(c) + compact[i+1:]
			if _, err := ParseRecoveryKey(typo); !errors.Is(err, ErrRecoveryKeyFormat) {
				t.Fatalf("typo at %d (%q): %v, want ErrRecoveryKeyFormat", i, typo, err)
			}
		}
	}
	for _, bad := range []string{"", compact[:39], compact + "0", "U" + compact[1:], "hello"} {
		if _, err := ParseRecoveryKey(bad); !errors.Is(err, ErrRecoveryKeyFormat) {
			t.Fatalf("parse %q: %v, want ErrRecoveryKeyFormat", bad, err)
		}
	}
	k2, err := NewRecoveryKey()
	if err != nil || k2 == k || k2 == (RecoveryKey{}) {
		t.Fatalf("random key %x, %v", k2, err)
	}
}

func loginState(t *testing.T, recs *memRecords, key string) (uint64, byte) {
	t.Helper()
	rec, err := record.Verify(key, recs.m[key])
	if err != nil {
		t.Fatalf("login record at %s: %v", key, err)
	}
	lb, err := parseLoginBody(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	return rec.Seq, lb.state
}

// TestRecover: the recovery key made at creation sets a new password. The
// account keeps its keys, the old password's login record becomes a
// tombstone (the old password stops working), the new one works, the
// keyring names the new login key, and the key stays valid for a second
// recovery, which retires the first recovered password in turn.
func TestRecover(t *testing.T) {
	ctx := context.Background()
	m, recs := testManager(t)
	a, rk, err := m.CreateWithRecovery(ctx, alice, goodPw)
	if err != nil {
		t.Fatal(err)
	}
	if rk == (RecoveryKey{}) {
		t.Fatal("no recovery key")
	}
	oldKey, _ := LoginKey(a.LoginKey().GetPublic())

	const thirdPw = "velvet granite oyster comet"
	b, err := m.Recover(ctx, alice, rk, otherPw)
	if err != nil {
		t.Fatal(err)
	}
	if b.ID() != a.ID() || b.Root != a.Root {
		t.Fatal("recovery opened other keys")
	}
	if _, state := loginState(t, recs, oldKey); state != stateTombstone {
		t.Fatal("the old login record is not a tombstone")
	}
	if _, err := m.Login(ctx, alice, goodPw); !errors.Is(err, ErrBadLogin) {
		t.Fatalf("old password after recovery: %v, want ErrBadLogin", err)
	}
	c, err := m.Login(ctx, alice, otherPw)
	if err != nil || c.ID() != a.ID() {
		t.Fatalf("new password: %v", err)
	}
	ringKey := KeyringKey(a.ID())
	ring, err := OpenKeyring(ringKey, recs.m[ringKey], a.Root)
	if err != nil || !ring.Login.Equals(c.LoginKey()) || ring.Recovery == nil {
		t.Fatalf("keyring after recovery: %+v, %v", ring, err)
	}

	if _, err := m.Recover(ctx, alice, rk, thirdPw); err != nil {
		t.Fatalf("second recovery with the same key: %v", err)
	}
	for _, pw := range []string{goodPw, otherPw} {
		if _, err := m.Login(ctx, alice, pw); !errors.Is(err, ErrBadLogin) {
			t.Fatalf("%q after the second recovery: %v, want ErrBadLogin", pw, err)
		}
	}
	if d, err := m.Login(ctx, alice, thirdPw); err != nil || d.ID() != a.ID() {
		t.Fatalf("third password: %v", err)
	}
	// Recovering to a password that already opens the account is refused.
	if _, err := m.Recover(ctx, alice, rk, thirdPw); !errors.Is(err, ErrExists) {
		t.Fatalf("recover to the current password: %v, want ErrExists", err)
	}
}

// TestRecoverAfterPasswordChange: a password changed with passwd is the
// one a later recovery retires (the keyring follows the change).
func TestRecoverAfterPasswordChange(t *testing.T) {
	ctx := context.Background()
	m, _ := testManager(t)
	_, rk, err := m.CreateWithRecovery(ctx, alice, goodPw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.ChangePassword(ctx, alice, goodPw, otherPw); err != nil {
		t.Fatal(err)
	}
	const thirdPw = "velvet granite oyster comet"
	if _, err := m.Recover(ctx, alice, rk, thirdPw); err != nil {
		t.Fatal(err)
	}
	for _, pw := range []string{goodPw, otherPw} {
		if _, err := m.Login(ctx, alice, pw); !errors.Is(err, ErrBadLogin) {
			t.Fatalf("%q after recovery: %v, want ErrBadLogin", pw, err)
		}
	}
}

// TestRecoverRefusals: a wrong key, the right key with another username
// and a weak new password are refused clearly, and nothing changes.
func TestRecoverRefusals(t *testing.T) {
	ctx := context.Background()
	m, _ := testManager(t)
	if _, _, err := m.CreateWithRecovery(ctx, alice, goodPw); err != nil {
		t.Fatal(err)
	}
	_, rk, err := m.CreateWithRecovery(ctx, "bob", goodPw)
	if err != nil {
		t.Fatal(err)
	}
	wrong, _ := NewRecoveryKey()
	if _, err := m.Recover(ctx, alice, wrong, otherPw); !errors.Is(err, ErrBadRecoveryKey) {
		t.Fatalf("wrong key: %v, want ErrBadRecoveryKey", err)
	}
	if _, err := m.Recover(ctx, alice, rk, otherPw); !errors.Is(err, ErrBadRecoveryKey) {
		t.Fatalf("bob's key for alice: %v, want ErrBadRecoveryKey", err)
	}
	if _, err := m.Recover(ctx, "bob", rk, "bob tiny"); !errors.Is(err, ErrWeakPassword) {
		t.Fatalf("weak new password: %v, want ErrWeakPassword", err)
	}
	if _, err := m.Login(ctx, "bob", goodPw); err != nil {
		t.Fatalf("bob's password after refused recoveries: %v", err)
	}
}

// TestReplaceRecoveryKey: a new recovery key revokes the previous one,
// which then fails with ErrRecoveryKeyReplaced; the new one works.
func TestReplaceRecoveryKey(t *testing.T) {
	ctx := context.Background()
	m, _ := testManager(t)
	_, first, err := m.CreateWithRecovery(ctx, alice, goodPw)
	if err != nil {
		t.Fatal(err)
	}
	a, err := m.Login(ctx, alice, goodPw)
	if err != nil {
		t.Fatal(err)
	}
	second, err := m.ReplaceRecoveryKey(ctx, a)
	if err != nil || second == first {
		t.Fatalf("replace: %v", err)
	}
	if _, err := m.Recover(ctx, alice, first, otherPw); !errors.Is(err, ErrRecoveryKeyReplaced) {
		t.Fatalf("the replaced key: %v, want ErrRecoveryKeyReplaced", err)
	}
	if _, err := m.Login(ctx, alice, goodPw); err != nil {
		t.Fatalf("password after a refused recovery: %v", err)
	}
	if _, err := m.Recover(ctx, alice, second, otherPw); err != nil {
		t.Fatalf("the new key: %v", err)
	}
}

// TestReplaceRecoveryKeyRevocationFails: when the old record cannot be
// revoked, the new key is returned with ErrOldRecoveryKeyLive, and the old
// key is refused anyway, because the keyring names the new one.
func TestReplaceRecoveryKeyRevocationFails(t *testing.T) {
	ctx := context.Background()
	m, recs := testManager(t)
	a, first, err := m.CreateWithRecovery(ctx, alice, goodPw)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := deriveRecovery(alice, first)
	if err != nil {
		t.Fatal(err)
	}
	oldKey, _ := RecoveryRecordKey(rs.signer.GetPublic())
	recs.failPut = func(key string) error {
		if key == oldKey {
			return ErrUnreachable
		}
		return nil
	}
	second, err := m.ReplaceRecoveryKey(ctx, a)
	if !errors.Is(err, ErrOldRecoveryKeyLive) || second == (RecoveryKey{}) {
		t.Fatalf("replace with the revocation failing: %v, key %x", err, second)
	}
	recs.failPut = nil
	if rb, err := parseRecoveryBody(mustRecord(t, recs, oldKey).Body); err != nil || rb.state != recoveryActive {
		t.Fatalf("the old record should still be active for this test: %v", err)
	}
	if _, err := m.Recover(ctx, alice, first, otherPw); !errors.Is(err, ErrRecoveryKeyReplaced) {
		t.Fatalf("the unrevoked old key: %v, want ErrRecoveryKeyReplaced", err)
	}
	if _, err := m.Recover(ctx, alice, second, otherPw); err != nil {
		t.Fatalf("the new key: %v", err)
	}
}

func mustRecord(t *testing.T, recs *memRecords, key string) *record.Record {
	t.Helper()
	rec, err := record.Verify(key, recs.m[key])
	if err != nil {
		t.Fatal(err)
	}
	return rec
}
