package shardproto

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardstore"
)

// MaxHoldings caps the entries of one holdings statement (request 12): at
// most 64-byte holder IDs and 8-byte counts, they stay inside a header
// frame. An account that stores on more holders sends several.
const MaxHoldings = 512

// Holding is one entry of an account's statement of what a holder keeps
// for it: the shard bytes it renewed there.
type Holding struct {
	Holder peer.ID
	Bytes  int64
}

// Holdingsee takes an account's signed statement of what holders keep for
// it (request 12): the provider's observer (provider.Provider.Holdings). It
// returns what it did, in words.
type Holdingsee func(ctx context.Context, account peer.ID, hs []Holding) (string, error)

// WithHoldings has the service hand holdings statements to take; a service
// without it answers that it counts none.
func WithHoldings(take Holdingsee) Option {
	return func(cfg *serviceConfig) error {
		cfg.holdings = take
		return nil
	}
}

func holdingsSigned(holder peer.ID, ts time.Time, hs []Holding) []byte {
	e := enc{b: []byte(ctxHoldings)}
	e.bytes16([]byte(holder))
	e.time(ts)
	encodeHoldings(&e, hs)
	return e.b
}

func encodeHoldings(e *enc, hs []Holding) {
	e.u16(len(hs))
	for _, h := range hs {
		e.bytes16([]byte(h.Holder))
		e.u64(h.Bytes)
	}
}

func decodeHoldings(d *dec) ([]Holding, error) {
	n := d.u16()
	if n > MaxHoldings {
		return nil, fmt.Errorf("%w: %d holdings, limit %d", errFrame, n, MaxHoldings)
	}
	hs := make([]Holding, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		h := Holding{Holder: peer.ID(d.bytes16(maxIDLen)), Bytes: d.u64()}
		hs = append(hs, h)
	}
	return hs, nil
}

// serveHoldings passes a statement on, with the account that signed it.
func (s *Service) serveHoldings(ctx context.Context, st network.Stream, req *request) error {
	if s.cfg.holdings == nil {
		return respond(st, req.typ, &response{msg: "not counted: this node admits every account"})
	}
	account, err := accountOf(req.key)
	if err != nil {
		return fail(st, req.typ, err)
	}
	for _, h := range req.holdings {
		if h.Bytes < 0 || h.Holder.Validate() != nil {
			return fail(st, req.typ, fmt.Errorf("%w: holding of %d bytes at %q", shardstore.ErrInvalid, h.Bytes, h.Holder))
		}
	}
	msg, err := s.cfg.holdings(ctx, account, req.holdings)
	if err != nil {
		return fail(st, req.typ, err)
	}
	return respond(st, req.typ, &response{msg: msg})
}

// Holdings states to provider p, signed by the client's owner (an
// account), what each holder keeps for it: the shard bytes it renewed
// there. A provider counts the statement toward the holders' credit while
// the account's own allowance is earned there (docs/design.md §6.8); it
// returns what p said it did. A provider of an earlier version does not
// know the request and fails it.
func (c *Client) Holdings(ctx context.Context, p peer.ID, hs []Holding) (string, error) {
	if len(hs) > MaxHoldings {
		return "", fmt.Errorf("shardproto: holdings: %w: %d entries, at most %d", shardstore.ErrInvalid, len(hs), MaxHoldings)
	}
	for _, h := range hs {
		if h.Bytes < 0 || len(h.Holder) == 0 || len(h.Holder) > maxIDLen {
			return "", fmt.Errorf("shardproto: holdings: %w: %d bytes at a holder ID of %d bytes", shardstore.ErrInvalid, h.Bytes, len(h.Holder))
		}
	}
	ts := c.cfg.clock()
	sig, err := c.key.Sign(holdingsSigned(p, ts, hs))
	if err != nil {
		return "", fmt.Errorf("shardproto: sign holdings: %w", err)
	}
	cl, resp, err := c.roundTrip(ctx, p, &request{typ: msgHoldings, ts: ts, holdings: hs, key: c.keyBytes, sig: sig})
	if err != nil {
		return "", err
	}
	cl.finish(nil)
	return resp.msg, nil
}
