package account

import (
	"context"
	"errors"
	"testing"
)

// TestRotation: rotation makes an account with new keys under the new
// password and a new recovery key; finishing it turns the old password's
// login record into a rotated marker (the old password and any device
// holding the old keys are told so), revokes the old recovery key, and
// leaves the new account opening with the new password.
func TestRotation(t *testing.T) {
	ctx := context.Background()
	m, recs := testManager(t)
	old, oldRK, err := m.CreateWithRecovery(ctx, alice, goodPw)
	if err != nil {
		t.Fatal(err)
	}
	// A device that cached the old keys (the login key included).
	cached := Restore(old.User, old.Identity, old.Root, old.Version, old.LoginKey())

	if _, _, err := m.BeginRotation(ctx, alice, "wrong password here", otherPw, nil); !errors.Is(err, ErrBadLogin) {
		t.Fatalf("rotation with a wrong password: %v, want ErrBadLogin", err)
	}
	if _, _, err := m.BeginRotation(ctx, alice, goodPw, goodPw, nil); err == nil {
		t.Fatal("rotation to the same password accepted")
	}
	r, rk, err := m.BeginRotation(ctx, alice, goodPw, otherPw, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.New.ID() == old.ID() || r.New.Root == old.Root || rk == (RecoveryKey{}) || rk == oldRK {
		t.Fatal("the new account shares the old one's keys, or has no new recovery key")
	}
	// Before finishing, both passwords open their accounts and cached
	// keys are not told anything.
	if err := m.CheckRotated(ctx, cached); err != nil {
		t.Fatalf("before finishing: %v", err)
	}
	if a, err := m.Login(ctx, alice, goodPw); err != nil || a.ID() != old.ID() {
		t.Fatalf("old password before finishing: %v", err)
	}

	// An interrupted rotation resumes with the account it made, and only
	// when told that is the one.
	if _, _, err := m.BeginRotation(ctx, alice, goodPw, otherPw, nil); !errors.Is(err, ErrExists) {
		t.Fatalf("begin again without resume: %v, want ErrExists", err)
	}
	again, rk2, err := m.BeginRotation(ctx, alice, goodPw, otherPw, func(a *Account) bool { return a.ID() == r.New.ID() })
	if err != nil || again.New.ID() != r.New.ID() || rk2 != (RecoveryKey{}) {
		t.Fatalf("resume: %v", err)
	}

	if err := m.FinishRotation(ctx, r); err != nil {
		t.Fatal(err)
	}
	oldKey, _ := LoginKey(old.LoginKey().GetPublic())
	if _, state := loginState(t, recs, oldKey); state != stateRotated {
		t.Fatalf("old login record state %d, want rotated", state)
	}
	if _, err := m.Login(ctx, alice, goodPw); !errors.Is(err, ErrRotated) {
		t.Fatalf("old password after rotation: %v, want ErrRotated", err)
	}
	if err := m.CheckRotated(ctx, cached); !errors.Is(err, ErrRotated) {
		t.Fatalf("cached old keys after rotation: %v, want ErrRotated", err)
	}
	if a, err := m.Login(ctx, alice, otherPw); err != nil || a.ID() != r.New.ID() {
		t.Fatalf("new password after rotation: %v", err)
	}
	if _, err := m.Recover(ctx, alice, oldRK, "harbor lantern quiet meadow"); !errors.Is(err, ErrRecoveryKeyReplaced) {
		t.Fatalf("old recovery key after rotation: %v, want ErrRecoveryKeyReplaced", err)
	}
	if _, err := m.Recover(ctx, alice, rk, "harbor lantern quiet meadow"); err != nil {
		t.Fatalf("new recovery key after rotation: %v", err)
	}
	// Finishing twice changes nothing; a later passwd-style tombstone
	// does not hide the marker.
	if err := m.FinishRotation(ctx, r); err != nil {
		t.Fatal(err)
	}
	if err := m.retireLogin(ctx, oldKey, old.LoginKey()); err != nil {
		t.Fatal(err)
	}
	if _, state := loginState(t, recs, oldKey); state != stateRotated {
		t.Fatalf("old login record state %d after a tombstone, want rotated", state)
	}
}
