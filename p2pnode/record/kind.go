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
}
