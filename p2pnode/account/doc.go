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
// See docs/design.md for the record formats and the threat model.
package account
