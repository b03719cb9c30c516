package karma

import (
	"crypto/sha256"
	"errors"
	"fmt"
)

// A nonce chain is how a node contributes randomness it cannot choose.
// The node picks a secret s once and publishes the chain's anchor
// H^Length(s) (in its node record, where witnesses of the node see and
// report it). Epoch Start+i's nonce is H^(Length−1−i)(s): hashing it i+1
// times gives the anchor, so anyone can check a revealed nonce, and the
// node cannot pick another without changing the anchor, which restarts
// its vetting. All it can do with a nonce is withhold it.

// ChainLength is the number of epochs one chain covers (about ten years).
const ChainLength = 3650

// chainStep is one link: a domain-separated SHA-256.
func chainStep(x [32]byte) [32]byte {
	h := sha256.New()
	h.Write([]byte("jellyfish/karma/chain/v1\x00"))
	h.Write(x[:])
	var out [32]byte
	h.Sum(out[:0])
	return out
}

func chainHash(x [32]byte, n int) [32]byte {
	for range n {
		x = chainStep(x)
	}
	return x
}

// Chain is a node's own nonce chain; it holds the secret.
type Chain struct {
	secret [32]byte
	start  Epoch
	anchor [32]byte
}

// NewChain makes the chain of secret covering epochs start to
// start+ChainLength−1.
func NewChain(secret [32]byte, start Epoch) *Chain {
	return &Chain{secret: secret, start: start, anchor: chainHash(secret, ChainLength)}
}

// Anchor returns the public end of the chain.
func (c *Chain) Anchor() ChainAnchor { return ChainAnchor{Start: c.start, Tip: c.anchor} }

// ErrChainRange is returned for an epoch a chain does not cover.
var ErrChainRange = errors.New("karma: epoch outside the nonce chain")

// Nonce returns the chain's nonce of epoch e.
func (c *Chain) Nonce(e Epoch) ([32]byte, error) {
	if e < c.start || uint64(e-c.start) >= ChainLength {
		return [32]byte{}, fmt.Errorf("%w: epoch %d, chain from %d", ErrChainRange, e, c.start)
	}
	return chainHash(c.secret, ChainLength-1-int(e-c.start)), nil
}

// ChainAnchor is the public commitment of a nonce chain.
type ChainAnchor struct {
	Start Epoch
	Tip   [32]byte
}

// Verify reports whether nonce is the chain's nonce of epoch e.
func (a ChainAnchor) Verify(e Epoch, nonce [32]byte) bool {
	if e < a.Start || uint64(e-a.Start) >= ChainLength {
		return false
	}
	return chainHash(nonce, int(e-a.Start)+1) == a.Tip
}
