package record

import (
	"github.com/libp2p/go-libp2p/core/crypto"
)

// KindRules is everything a Validator needs to know about one record kind.
// A later kind (login, account, head, karma) is added by writing its
// KindRules next to its key function and passing it to NewValidator with
// WithKind; the envelope, signature, expiry, Select and high-water rules are
// shared.
type KindRules struct {
	// Kind is the byte stored in the record.
	Kind Kind
	// Name is the key segment: keys of this kind are "/jf/<Name>/<rest>".
	// It must be non-empty and contain no '/'.
	Name string
	// Authorize reports whether signer may write the key whose kind-specific
	// part is rest. It returns nil to allow, or an error (wrapped in
	// ErrUnauthorized by the Validator) to refuse. It is required: a kind
	// without an authorisation rule would let anyone write any key.
	Authorize func(rest string, signer crypto.PubKey) error
	// CheckBody validates the body; nil accepts any body.
	CheckBody func(body []byte) error
	// Publisher, for a kind whose publishers each write several keys,
	// returns the part of rest that names the publisher (head records: the
	// account identity, one key per device). Authorize must tie it to the
	// signer. Nil means every key names its own signer, so a publisher
	// writes exactly one key of the kind. Limits.PerPublisher counts keys
	// per publisher only for kinds that set it.
	Publisher func(rest string) string
	// KeepMarks keeps this kind's high-water marks for ever instead of
	// letting MarkPolicy.Retain prune them: login marks are what tells an
	// expired account from a name never used (docs/design.md §2.1, §3.4).
	KeepMarks bool
}
