package shardproto

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardstore"
)

// AccountStanding is what a holder says of the requesting account under
// its admission policy: its class there, the allowance its nodes earned
// by the holder's own observation, and each linked node's standing as the
// holder measured it (docs/design.md §6.12). It is the answer to request
// 10, standing.
type AccountStanding struct {
	// Class is the account's class at the holder: "own", "sharing",
	// "vetting", "starter", "zeroed", or "all" for a holder admitting
	// every account up to its quota.
	Class string
	// Earned is the allowance the account's linked nodes earned there
	// (karma.AccountAllowance, shard bytes); zero when none is linked.
	Earned int64
	// Cap is the most the account may reference at the holder (zero: no
	// cap but the quota).
	Cap int64
	// Until is when a zeroed account's strikes leave the window.
	Until time.Time
	// Nodes are the account's linked nodes, at most MaxStandingNodes.
	Nodes []NodeStanding
}

// NodeStanding is one node's standing as the holder measured it.
type NodeStanding struct {
	ID peer.ID
	// Watched: the holder's observer watches it; the rest is zero if not.
	Watched bool
	// State is "unknown", "vetting", "good" or "malicious".
	State string
	// KnownEpochs is how many days of the window had probes; Uptime the
	// share of them answered (to 1/10,000), an estimate from 3 days.
	KnownEpochs                int
	Uptime                     float64
	AuditsPassed, AuditsFailed int
	Strikes                    int
	// Until is when a malicious node's strikes leave the window.
	Until time.Time
	// Held is the shard bytes other accounts state the node keeps for
	// them, as the holder counts them; Credit what the node earns its
	// account there (karma.Credit: shared space up to twice Held plus the
	// floor, times uptime). Answers of version 2 only: zero in version 1.
	Held, Credit int64
}

// Bounds of a standing answer.
const (
	MaxStandingNodes = 32
	maxClassLen      = 16
	maxStateLen      = 16
	maxIDLen         = 64
)

// Magics of the standing answer's versions: 2 adds each node's held
// bytes and credit.
const (
	standingMagic  = "JFAS\x01"
	standingMagic2 = "JFAS\x02"
)

// StandingVersion is the standing answer's latest version: what a
// client asks for, and what Marshal writes.
const StandingVersion = 2

// Marshal encodes the answer in version 2 (MarshalVersion).
func (a AccountStanding) Marshal() ([]byte, error) { return a.MarshalVersion(StandingVersion) }

// MarshalVersion encodes the answer in version v: magic "JFAS" v, class
// (u8 length and bytes), earned and cap (u64), until (i64 Unix
// nanoseconds, 0 for none), a node count (u8) and per node its ID (u8
// length and bytes), watched (u8), state (u8 length and bytes), known
// epochs (u8), uptime in 1/10,000 (u16), audits passed and failed (u16
// each), strikes (u8) and until (i64); version 2 then adds held and credit
// (u64 each). Version 1 is what holders answered before version 2, and
// what they answer a client that does not ask for another.
func (a AccountStanding) MarshalVersion(v int) ([]byte, error) {
	if err := a.validate(); err != nil {
		return nil, err
	}
	magic := standingMagic
	switch v {
	case 1:
	case 2:
		magic = standingMagic2
	default:
		return nil, fmt.Errorf("%w: standing answer version %d", shardstore.ErrInvalid, v)
	}
	e := enc{b: []byte(magic)}
	str := func(s string) { e.u8(byte(len(s))); e.raw([]byte(s)) }
	when := func(t time.Time) {
		if t.IsZero() {
			e.u64(0)
			return
		}
		e.u64(t.UnixNano())
	}
	str(a.Class)
	e.u64(a.Earned)
	e.u64(a.Cap)
	when(a.Until)
	e.u8(byte(len(a.Nodes)))
	for _, n := range a.Nodes {
		str(string(n.ID))
		w := byte(0)
		if n.Watched {
			w = 1
		}
		e.u8(w)
		str(n.State)
		e.u8(byte(n.KnownEpochs))
		e.u16(int(math.Round(n.Uptime * 10000)))
		e.u16(n.AuditsPassed)
		e.u16(n.AuditsFailed)
		e.u8(byte(n.Strikes))
		when(n.Until)
		if v >= 2 {
			e.u64(n.Held)
			e.u64(n.Credit)
		}
	}
	return e.b, nil
}

func (a AccountStanding) validate() error {
	bad := func(f string, v ...any) error {
		return fmt.Errorf("%w: standing: %s", shardstore.ErrInvalid, fmt.Sprintf(f, v...))
	}
	switch {
	case a.Class == "" || len(a.Class) > maxClassLen:
		return bad("class of %d bytes", len(a.Class))
	case a.Earned < 0 || a.Cap < 0:
		return bad("negative bytes")
	case len(a.Nodes) > MaxStandingNodes:
		return bad("%d nodes", len(a.Nodes))
	}
	for _, n := range a.Nodes {
		switch {
		case n.ID == "" || len(n.ID) > maxIDLen:
			return bad("node ID of %d bytes", len(n.ID))
		case n.State == "" || len(n.State) > maxStateLen:
			return bad("state of %d bytes", len(n.State))
		case n.KnownEpochs < 0 || n.KnownEpochs > 255 || n.Strikes < 0 || n.Strikes > 255:
			return bad("%d epochs, %d strikes", n.KnownEpochs, n.Strikes)
		case !(n.Uptime >= 0 && n.Uptime <= 1):
			return bad("uptime %v", n.Uptime)
		case n.AuditsPassed < 0 || n.AuditsPassed > math.MaxUint16 || n.AuditsFailed < 0 || n.AuditsFailed > math.MaxUint16:
			return bad("audits %d/%d", n.AuditsPassed, n.AuditsFailed)
		case n.Held < 0 || n.Credit < 0:
			return bad("held %d, credit %d", n.Held, n.Credit)
		}
	}
	return nil
}

// UnmarshalAccountStanding decodes what MarshalVersion wrote, in either
// version, refusing anything else (a prefix, trailing bytes, another
// version, a bound broken).
func UnmarshalAccountStanding(b []byte) (AccountStanding, error) {
	var a AccountStanding
	v := 0
	switch {
	case len(b) < len(standingMagic):
	case string(b[:len(standingMagic)]) == standingMagic:
		v = 1
	case string(b[:len(standingMagic2)]) == standingMagic2:
		v = 2
	}
	if v == 0 {
		return a, fmt.Errorf("%w: not a standing answer", errFrame)
	}
	d := dec{b: b[len(standingMagic):]}
	str := func(max int) string {
		n := int(d.u8())
		if d.err == nil && n > max {
			d.err = fmt.Errorf("%w: %d-byte string exceeds %d", errFrame, n, max)
		}
		return string(d.take(n))
	}
	when := func() time.Time {
		v := d.u64()
		if v == 0 {
			return time.Time{}
		}
		return time.Unix(0, v)
	}
	a.Class = str(maxClassLen)
	a.Earned = d.u64()
	a.Cap = d.u64()
	a.Until = when()
	n := int(d.u8())
	if d.err == nil && n > MaxStandingNodes {
		return AccountStanding{}, fmt.Errorf("%w: %d nodes", errFrame, n)
	}
	for i := 0; i < n && d.err == nil; i++ {
		var ns NodeStanding
		ns.ID = peer.ID(str(maxIDLen))
		switch d.u8() {
		case 0:
		case 1:
			ns.Watched = true
		default:
			if d.err == nil {
				d.err = fmt.Errorf("%w: watched flag", errFrame)
			}
		}
		ns.State = str(maxStateLen)
		ns.KnownEpochs = int(d.u8())
		ns.Uptime = float64(d.u16()) / 10000
		ns.AuditsPassed = d.u16()
		ns.AuditsFailed = d.u16()
		ns.Strikes = int(d.u8())
		ns.Until = when()
		if v >= 2 {
			ns.Held, ns.Credit = d.u64(), d.u64()
		}
		a.Nodes = append(a.Nodes, ns)
	}
	if err := d.done(); err != nil {
		return AccountStanding{}, err
	}
	if err := a.validate(); err != nil {
		return AccountStanding{}, fmt.Errorf("%w: %v", errFrame, err)
	}
	return a, nil
}

// Stander answers a standing request for account: the holder's
// admission policy and observer (provider.Provider.AccountStanding).
type Stander func(ctx context.Context, account peer.ID) AccountStanding

// WithStanding has the service answer standing requests with stand; a
// service without it answers class "all" (it admits every account).
func WithStanding(stand Stander) Option {
	return func(cfg *serviceConfig) error {
		cfg.stand = stand
		return nil
	}
}

func standingSigned(holder peer.ID, ts time.Time) []byte {
	e := enc{b: []byte(ctxStanding)}
	e.bytes16([]byte(holder))
	e.time(ts)
	return e.b
}

// serveStanding answers what the holder makes of the requesting account.
func (s *Service) serveStanding(ctx context.Context, st network.Stream, req *request) error {
	a := AccountStanding{Class: "all"}
	if s.cfg.stand != nil {
		account, err := accountOf(req.key)
		if err != nil {
			return fail(st, req.typ, err)
		}
		a = s.cfg.stand(ctx, account)
	}
	v := 1
	if req.standingVersion >= 2 {
		v = StandingVersion
	}
	blob, err := a.MarshalVersion(v)
	if err != nil {
		return fail(st, req.typ, err)
	}
	return respond(st, req.typ, &response{blob: blob})
}

// Standing asks holder p what it makes of the client's owner, an account:
// its class, earned allowance and cap there, and its linked nodes'
// standings as p measured them. It asks for answer version 2 and, when p
// fails that request (a holder that knows only version 1 cannot decode
// it), asks again for version 1, whose nodes have no held bytes or
// credit. A holder older than the request fails both.
func (c *Client) Standing(ctx context.Context, p peer.ID) (AccountStanding, error) {
	a, err := c.standing(ctx, p, StandingVersion)
	if err != nil && ctx.Err() == nil {
		if a1, err1 := c.standing(ctx, p, 1); err1 == nil {
			return a1, nil
		}
	}
	return a, err
}

func (c *Client) standing(ctx context.Context, p peer.ID, version byte) (AccountStanding, error) {
	ts := c.cfg.clock()
	sig, err := c.key.Sign(standingSigned(p, ts))
	if err != nil {
		return AccountStanding{}, fmt.Errorf("shardproto: sign standing: %w", err)
	}
	cl, resp, err := c.roundTrip(ctx, p, &request{typ: msgStanding, ts: ts, key: c.keyBytes, sig: sig, standingVersion: version})
	if err != nil {
		return AccountStanding{}, err
	}
	cl.finish(nil)
	a, err := UnmarshalAccountStanding(resp.blob)
	if err != nil {
		return AccountStanding{}, fmt.Errorf("shardproto: standing at %s: %w", p.ShortString(), err)
	}
	return a, nil
}
