// Package keyfile is the one on-disk format of an unlocked account: the
// device cache of `jellyfish account login` (<config dir>/accounts/<user>.json)
// and the rclone backend's per-slot key cache (slot-N/account.json).
//
// A file is JSON, version 2 (version 3 below when it has a passphrase):
//
//	{
//	  "version": 2,
//	  "username": "alice",                 // NFC, as account.NormalizeUsername gives it
//	  "account_id": "12D3KooW…",           // peer ID of identity_key; checked on load
//	  "identity_key": "<base64, libp2p-marshalled Ed25519 private key>",
//	  "root_key": "<base64, 32 bytes>",
//	  "login_key": "<base64, libp2p-marshalled Ed25519 private key>",  // optional
//	  "kdf_version": 1,                    // of the login record
//	  "insecure_test_kdf": true,           // only for test-KDF accounts
//	  "verifier": {"kdf": "argon2id", "time": 2, "memory_kib": 19456, "lanes": 1,
//	               "salt": "<base64, 16 random bytes>", "hash": "<base64, 32 bytes>"},
//	  "device_id": "<32 hex digits>",      // optional: the device cache's
//	  "device_name": "laptop",             // optional
//	  "bootstrap": ["/ip4/…/p2p/…"]        // optional
//	}
//
// The verifier is Argon2id("jellyfish/keyfile/v2/verifier\0" ‖ username ‖
// 0 ‖ password, salt) with the stored costs: a process that is given the
// password (the backend's remote config) checks it against the file
// before using the cached keys, and someone who copies the file learns the
// password no faster than by guessing at Argon2id's pace. In a version 2
// file the keys themselves are in the clear: the file is as secret as the
// password, and is written mode 0600 in a 0700 folder, through
// p2pnode/atomicfile.
//
// A file may instead seal its keys under a passphrase (File.SetPassphrase;
// `jellyfish account login --passphrase`, `jellyfish account passphrase`).
// It is then version 3: identity_key, root_key, login_key and verifier are
// gone from the JSON, and in their place
//
//	"passphrase": {"kdf": "argon2id", "time": 3, "memory_kib": 65536, "lanes": 4,
//	               "salt": "<base64, 16 random bytes>", "check": "<base64, 32 bytes>"},
//	"sealed": "<base64, 24-byte nonce ‖ XChaCha20-Poly1305 ciphertext>"
//
// The ciphertext is the JSON object of the four fields it replaces. Its key
// is HKDF-SHA256(m, info "jellyfish/keyfile/v3/key") and the stored check
// HKDF-SHA256(m, info "jellyfish/keyfile/v3/check"), where m =
// Argon2id("jellyfish/keyfile/v3/passphrase\0" ‖ passphrase, salt) with the
// stored costs (64 MiB, 3 passes, 4 lanes; Argon2id's minimum for
// test-KDF accounts). A wrong passphrase fails the check (ErrBadPassphrase)
// before any decryption. The additional data is
// "jellyfish/keyfile/v3/sealed\0" followed by every field left in the
// clear, each as a uvarint length and its bytes (see sealAD), so none of
// them can be edited, nor the sealed part moved to another file, without
// the file failing to open (ErrFormat). Each Save seals with a fresh random
// nonce; the salt changes only with SetPassphrase. Without its passphrase
// an encrypted file gives ErrPassphraseNeeded; its clear header
// (username, account ID, device, bootstrap) is readable with ParseHeader,
// unauthenticated until the file is opened.
//
// The passphrase protects a copy of the file at rest, at Argon2id's pace
// per guess; it does nothing for the keys in the memory of the process
// that opened the file. Files without a passphrase stay version 2, which
// older binaries read; they refuse version 3 by its number.
//
// Version 1 files of both kinds are read: the backend's had no account_id
// and an unsalted SHA-256 password_check (CheckPassword still accepts it,
// so the backend can verify once and write version 2); the device cache's
// had the device fields and no password check at all.
package keyfile
