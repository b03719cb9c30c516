// Package keyfile is the one on-disk format of an unlocked account: the
// device cache of `jellyfish account login` (<config dir>/accounts/<user>.json)
// and the rclone backend's per-slot key cache (slot-N/account.json).
//
// A file is JSON, version 2:
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
// password no faster than by guessing at Argon2id's pace. The keys
// themselves are in the clear: the file is as secret as the password, and
// is written mode 0600 in a 0700 folder, through p2pnode/atomicfile.
//
// Version 1 files of both kinds are read: the backend's had no account_id
// and an unsalted SHA-256 password_check (CheckPassword still accepts it,
// so the backend can verify once and write version 2); the device cache's
// had the device fields and no password check at all.
package keyfile
