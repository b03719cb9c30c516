package account

import (
	"context"
	"errors"
	"fmt"
)

// ErrRotated: the password opened an account whose keys were rotated: its
// files were copied to a new account with new keys, under a new password,
// and this login and every device's cached copy of its keys were retired.
var ErrRotated = errors.New("account: this account's keys were rotated (jellyfish backend rotate): " +
	"its files now live in a new account under the new password; set that password in this remote's config")

// Rotation moves an account to new keys. Every device of an account holds
// its identity and root keys, so a device that was lost or stolen keeps
// them whatever the device list says: it can sign the account's records
// and read whatever the root key opens. Rotation is the way to take the
// account back from it: BeginRotation creates a new account (new identity,
// new root key) under the same username and a new password, the caller
// copies every file into it (re-encrypted under the new keys), and
// FinishRotation retires the old password's login record with a "rotated"
// marker and revokes the old recovery key. Devices that cached the old
// keys find the marker (CheckRotated) and stop writing to the old account.
//
// What rotation cannot take back: every file the old keys open, as it was
// at rotation (the copy is a new upload; the old shards stay on their
// providers until their leases lapse, and whoever holds the old identity
// can renew them), and whatever was copied off the device.
type Rotation struct {
	Old, New *Account
}

// BeginRotation logs in to the account of user with oldPassword and creates
// the account it moves to, under newPassword, with a new recovery key
// (returned once, to be shown to the user). resume, when not nil, is the
// identity a rotation of this account began before and did not finish: if
// newPassword opens that account, the rotation resumes with it and no new
// recovery key is made (the zero key is returned). Any other account the
// new password opens is refused, so files are never copied into an
// unrelated account.
func (m *Manager) BeginRotation(ctx context.Context, user Username, oldPassword, newPassword string, resume func(*Account) bool) (*Rotation, RecoveryKey, error) {
	old, err := m.Login(ctx, user, oldPassword)
	if err != nil {
		return nil, RecoveryKey{}, err
	}
	if oldPassword == newPassword {
		return nil, RecoveryKey{}, &WeakPasswordError{Reason: "it is the current password"}
	}
	if err := CheckPassword(user, newPassword); err != nil {
		return nil, RecoveryKey{}, err
	}
	if old.login == nil {
		return nil, RecoveryKey{}, errors.New("account: rotation needs the login key")
	}
	na, err := m.Login(ctx, user, newPassword)
	switch {
	case err == nil && resume != nil && resume(na) && na.ID() != old.ID():
		return &Rotation{Old: old, New: na}, RecoveryKey{}, nil
	case err == nil:
		return nil, RecoveryKey{}, fmt.Errorf("%w: the new password opens another account already; choose another", ErrExists)
	case !errors.Is(err, ErrBadLogin) || errors.Is(err, ErrExpiredLogin) || errors.Is(err, ErrRotated):
		return nil, RecoveryKey{}, fmt.Errorf("account: the new password cannot be used: %w", err)
	}
	na, rk, err := m.CreateWithRecovery(ctx, user, newPassword)
	if na == nil {
		return nil, RecoveryKey{}, err
	}
	return &Rotation{Old: old, New: na}, rk, err
}

// FinishRotation retires the old account once its files are in the new
// one: the old password's login record becomes a "rotated" marker (Login
// and CheckRotated report ErrRotated for it) and the old recovery key is
// revoked. The old account's other records are left to expire.
func (m *Manager) FinishRotation(ctx context.Context, r *Rotation) error {
	key, err := LoginKey(r.Old.login.GetPublic())
	if err != nil {
		return err
	}
	if err := m.replaceLogin(ctx, key, r.Old.login, stateRotated); err != nil {
		return fmt.Errorf("account: the old password's login record was not retired: %w", err)
	}
	ring, _, err := m.keyring(ctx, r.Old)
	if err == nil && ring != nil && ring.Recovery != nil {
		err = m.revokeRecovery(ctx, ring.Recovery)
	}
	if err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("account: login retired, but the old recovery key could not be revoked (it would set a password for the old account): %w", err)
	}
	return nil
}

// CheckRotated returns ErrRotated if a's login record says its keys were
// rotated away. Devices that opened a from cached keys call it before
// writing. It cannot tell without a's login key, or when the network does
// not answer (both return nil: nothing is known to be wrong).
func (m *Manager) CheckRotated(ctx context.Context, a *Account) error {
	if a.login == nil {
		return nil
	}
	key, err := LoginKey(a.login.GetPublic())
	if err != nil {
		return err
	}
	_, lb, err := m.fetchLogin(ctx, key)
	if err == nil && lb.state == stateRotated {
		return ErrRotated
	}
	return nil
}
