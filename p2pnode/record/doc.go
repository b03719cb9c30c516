// Package record defines Jellyfish's small signed DHT records.
//
// Every record kind (node, and later login, account, head and karma) shares
// one envelope: a kind, the signer's Ed25519 public key, a sequence number,
// an expiry and an opaque body, signed over a domain-separation string, the
// full DHT key and every field. The encoding is versioned, canonical and
// capped at MaxRecordSize bytes.
//
// DHT keys live under the "jf" namespace as "/jf/<kind name>/<rest>"; each
// kind builds its keys in exactly one function (NodeKey for node records)
// and brings its own authorisation rule deciding which signer may write which
// key. A Validator, registered with kad-dht as the "jf" namespaced validator,
// rejects oversize, malformed, unsigned, mis-signed, moved, expired,
// unauthorised and rolled-back records, and selects the best of several
// valid records deterministically.
//
// Time comes only from the Clock given to the Validator, and high-water
// marks (HighWater) remember the highest sequence number seen per key so
// that an older record is refused even after the DHT forgot the newer one.
//
// Limits, Scopes and Quota bound what a store keeps per kind, per
// publisher and in total. Under a MarkPolicy a DatastoreHighWater keeps
// its marks within limits and prunes those that protect nothing any more,
// except for kinds that keep their marks for ever (KindRules.KeepMarks).
package record
