// Package account implements Jellyfish accounts: a username and a password
// are all a user remembers, on any device.
//
// Argon2id turns username + password into a master key; HKDF derives from
// it a login signing key (whose public key locates and authorises the login
// record in the DHT) and a wrapping key (which encrypts the account's random
// identity key and root key inside that record). The identity key signs the
// public account record (its nodes and devices); the root key wraps every
// file's data key. Neither random key is derivable from the password, so a
// password change re-wraps two keys and re-encrypts no data.
//
// A recovery key (160 random bits the user writes down) seals the same two
// keys in a recovery record only username + recovery key can find; with
// it Recover sets a new password. The keyring record, sealed under the
// root key, holds the signing keys no device derives (the recovery
// record's, the current password's login key), so every device can keep
// those records alive and a recovery can retire the old password.
//
// Login records go in at sequence 0 and then 1, so that every node keeps a
// high-water mark for the key after the record expired: Create refuses
// (ErrExpiredAccount) a username and password whose account expired
// rather than giving them a new identity.
//
// See docs/design.md for the record formats and the threat model.
package account
