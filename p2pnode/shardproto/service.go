package shardproto

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/jellyfish-p2p/jellyfish/codec"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardstore"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// ID is the protocol ID of the shard protocol. 4.0.0 made challenge
// requests owner-signed (and added the TooSoon status); 3.0.0 added the
// signed answers to proof requests (and their nonce) and to renewals.
// Each changed a layout the previous version cannot parse, so versions do
// not talk to each other.
const ID = shardProtocolPrefix + "4.0.0"

// shardProtocolPrefix starts every version of the shard protocol's ID.
const shardProtocolPrefix = "/jellyfish/shard/"

// ServiceName names the protocol's resource-manager service scope.
const ServiceName = "jellyfish.shard"

// Defaults of the service and client options. Streams waiting for their
// request header hold pending places (DefaultMaxPending, ...); streams
// being served hold serving slots (DefaultMaxStreams, ...). See
// WithMaxPending and WithMaxStreams.
const (
	DefaultHeaderTimeout   = 10 * time.Second
	DefaultMinRate         = 256 << 10 // bytes per second
	DefaultStallTimeout    = 5 * time.Second
	DefaultMaxPending      = 256
	DefaultMaxAddrPending  = 32
	DefaultMaxPeerPending  = 16
	DefaultMaxStreams      = 128
	DefaultMaxAddrStreams  = 16
	DefaultMaxPeerStreams  = 8
	DefaultSignatureWindow = 5 * time.Minute
)

// Backend is what the service needs from a shard store; *shardstore.Disk
// implements it. Stat must list the shard's owners: the service answers
// challenges only to them.
type Backend interface {
	Put(ctx context.Context, owner shardstore.Owner, id codec.ShardID, size int64, r io.Reader, lease time.Time) error
	Get(ctx context.Context, id codec.ShardID) (io.ReadCloser, int64, error)
	Stat(ctx context.Context, id codec.ShardID) (shardstore.Info, error)
	Delete(ctx context.Context, owner shardstore.Owner, id codec.ShardID) error
	Renew(ctx context.Context, owner shardstore.Owner, ids []codec.ShardID, until time.Time) ([]codec.ShardID, error)
	Challenge(ctx context.Context, id codec.ShardID, salt [32]byte) ([32]byte, error)
	Prove(ctx context.Context, id codec.ShardID, off, n int64) ([]byte, error)
}

var _ Backend = (*shardstore.Disk)(nil)

// timing holds the deadlines shared by the service and the client.
type timing struct {
	headerTimeout time.Duration
	minRate       int64
}

// bodyTimeout is the time allowed to move n bytes: the header timeout
// plus n at the minimum rate. It saturates instead of overflowing for an
// absurd n (which the holder refuses anyway).
func (t timing) bodyTimeout(n int64) time.Duration {
	const maxWait = 1 << 32 // seconds (136 years): beyond any real transfer, below overflow
	secs := n / t.minRate
	if secs >= maxWait {
		return t.headerTimeout + maxWait*time.Second
	}
	return t.headerTimeout + time.Duration(secs)*time.Second + time.Duration(n%t.minRate)*time.Second/time.Duration(t.minRate)
}

type serviceConfig struct {
	timing
	clock          shardstore.Clock
	stall          time.Duration
	pending, slots caps
	window         time.Duration
	maxShardSize   int64
	challenges     challengeLimits
	refusalHold    time.Duration
	admit          Admitter
	stand          Stander
	renewed        func(account peer.ID)
	report         Reportee
	holdings       Holdingsee
}

// Option configures NewService.
type Option func(*serviceConfig) error

// WithClock sets the clock against which signed timestamps are checked
// and receipts dated (default time.Now). Network deadlines always use
// the real clock.
func WithClock(c shardstore.Clock) Option {
	return func(cfg *serviceConfig) error {
		if c == nil {
			return errors.New("nil clock")
		}
		cfg.clock = c
		return nil
	}
}

// WithHeaderTimeout sets how long a peer has to send its request header
// (default 10 s); slower streams are reset.
func WithHeaderTimeout(d time.Duration) Option {
	return func(cfg *serviceConfig) error {
		if d <= 0 {
			return fmt.Errorf("header timeout %v: must be positive", d)
		}
		cfg.headerTimeout = d
		return nil
	}
}

// WithMinRate sets the slowest transfer rate tolerated for a shard body,
// in bytes per second (default 256 KiB/s): a body of n bytes must arrive
// within the header timeout plus n/rate.
func WithMinRate(bytesPerSec int64) Option {
	return func(cfg *serviceConfig) error {
		if bytesPerSec <= 0 {
			return fmt.Errorf("min rate %d: must be positive", bytesPerSec)
		}
		cfg.minRate = bytesPerSec
		return nil
	}
}

// WithStallTimeout sets how long a put's body may make no progress
// (default 5 s): a put whose client sends nothing for that long is reset
// and its reservation released, before its body deadline.
func WithStallTimeout(d time.Duration) Option {
	return func(cfg *serviceConfig) error {
		if d <= 0 {
			return fmt.Errorf("stall timeout %v: must be positive", d)
		}
		cfg.stall = d
		return nil
	}
}

func newCaps(what string, total, perAddr, perPeer int) (caps, error) {
	if total <= 0 || perAddr <= 0 || perPeer <= 0 || perAddr > total || perPeer > total {
		return caps{}, fmt.Errorf("%s %d/%d/%d: want 0 < perAddr, perPeer <= total", what, total, perAddr, perPeer)
	}
	return caps{total: total, perAddr: perAddr, perPeer: perPeer}, nil
}

// WithMaxPending caps the streams waiting for their request header, in
// total, per address (an IPv4 address, or an IPv6 /56) and per peer
// (defaults 256, 32 and 16). A new stream always gets a place: at a cap,
// the oldest waiting stream of the same peer, else of the same address,
// else of all, is reset with network.StreamResourceLimitExceeded, which
// clients retry on.
func WithMaxPending(total, perAddr, perPeer int) Option {
	return func(cfg *serviceConfig) (err error) {
		cfg.pending, err = newCaps("max pending", total, perAddr, perPeer)
		return err
	}
}

// WithMaxStreams caps the requests served at once, in total, per address
// (an IPv4 address, or an IPv6 /56) and per peer (defaults 128, 16 and
// 8). A stream whose header arrives beyond a cap is reset at once with
// network.StreamResourceLimitExceeded, which clients retry on.
func WithMaxStreams(total, perAddr, perPeer int) Option {
	return func(cfg *serviceConfig) (err error) {
		cfg.slots, err = newCaps("max streams", total, perAddr, perPeer)
		return err
	}
}

// WithRefusalHold sets how long the refusals of a peer over its refusal
// budget are held before the stream is reset (DefaultRefusalHold); zero
// answers every refusal at once.
func WithRefusalHold(d time.Duration) Option {
	return func(cfg *serviceConfig) error {
		if d < 0 {
			return fmt.Errorf("refusal hold %v is negative", d)
		}
		cfg.refusalHold = d
		return nil
	}
}

// WithSignatureWindow sets how far a signed request's timestamp may be
// from the holder's clock (default 5 minutes).
func WithSignatureWindow(d time.Duration) Option {
	return func(cfg *serviceConfig) error {
		if d <= 0 {
			return fmt.Errorf("signature window %v: must be positive", d)
		}
		cfg.window = d
		return nil
	}
}

// Admitter returns the allowance of an account at this holder: what the
// puts signed by the account's identity key (account is its peer ID) may
// reference here; repair says the put is a repair's (msgRepair), which it
// may let past the account's caps by a margin. It may look the account up;
// it should bound the time it takes and how often one account can make it
// look.
type Admitter func(ctx context.Context, account peer.ID, repair bool) shardstore.Allowance

// WithAdmission has every put carry the allowance admit returns for its
// owner's account (shardstore.ContextWithAllowance): the store asks for it
// only for a put that adds a reference, and refuses one past it with
// StatusOverAllowance. Without it (the default) every owner may store up
// to the quota.
func WithAdmission(admit Admitter) Option {
	return func(cfg *serviceConfig) error {
		cfg.admit = admit
		return nil
	}
}

// WithRenewed has the service call seen with the account of every
// renewal that renewed something, after the store renewed it. seen must
// not block: the provider's observer queues it (an account that only
// renews still needs its nodes watched).
func WithRenewed(seen func(account peer.ID)) Option {
	return func(cfg *serviceConfig) error {
		cfg.renewed = seen
		return nil
	}
}

// WithMaxShardSize sets the largest shard the service accepts before
// asking the store (default shardstore.DefaultMaxShardSize).
func WithMaxShardSize(n int64) Option {
	return func(cfg *serviceConfig) error {
		if n <= 0 {
			return fmt.Errorf("max shard size %d: must be positive", n)
		}
		cfg.maxShardSize = n
		return nil
	}
}

// Service serves the shard protocol from a Backend on a host. Create it
// with NewService and stop it with Close.
type Service struct {
	h        host.Host
	store    Backend
	key      crypto.PrivKey
	keyBytes []byte
	cfg      serviceConfig

	gate       *gate
	refusals   *refusals
	challenges *challenger
	counts     counters

	ctx       context.Context // canceled by Close: resets every stream
	cancel    context.CancelFunc
	closeOnce sync.Once
}

// NewService registers the shard protocol handler on h, serving store.
// Receipts and the answers to challenges, proofs and renewals are signed
// with h's private key.
func NewService(h host.Host, store Backend, opts ...Option) (*Service, error) {
	cfg := serviceConfig{
		timing:       timing{headerTimeout: DefaultHeaderTimeout, minRate: DefaultMinRate},
		clock:        time.Now,
		stall:        DefaultStallTimeout,
		pending:      caps{total: DefaultMaxPending, perAddr: DefaultMaxAddrPending, perPeer: DefaultMaxPeerPending},
		slots:        caps{total: DefaultMaxStreams, perAddr: DefaultMaxAddrStreams, perPeer: DefaultMaxPeerStreams},
		window:       DefaultSignatureWindow,
		maxShardSize: shardstore.DefaultMaxShardSize,
		challenges:   defaultChallengeLimits(),
		refusalHold:  DefaultRefusalHold,
	}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, fmt.Errorf("shardproto: %w", err)
		}
	}
	if cfg.challenges.burst < cfg.maxShardSize {
		return nil, fmt.Errorf("shardproto: challenge budget of %d bytes cannot hold a shard of %d", cfg.challenges.burst, cfg.maxShardSize)
	}
	key := h.Peerstore().PrivKey(h.ID())
	if key == nil {
		return nil, errors.New("shardproto: host has no private key in its peerstore")
	}
	kb, err := crypto.MarshalPublicKey(key.GetPublic())
	if err != nil {
		return nil, fmt.Errorf("shardproto: host key: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{h: h, store: store, key: key, keyBytes: kb, cfg: cfg, gate: newGate(cfg.pending, cfg.slots),
		refusals: newRefusals(cfg.refusalHold), challenges: newChallenger(cfg.challenges), ctx: ctx, cancel: cancel}
	h.SetStreamHandler(ID, s.handle)
	return s, nil
}

// Close unregisters the handler, resets the streams being served and
// waits for their handlers to return. It does not close the host or the
// store. It is safe to call more than once, and after Drain.
func (s *Service) Close() error {
	s.closeOnce.Do(func() {
		s.gate.close()
		s.h.RemoveStreamHandler(ID)
		s.cancel()
		s.gate.wait()
	})
	return nil
}

// Drain lets the requests being served finish, until ctx ends, and then
// closes the service (Close). From the call on, new streams and streams
// still waiting for their request header are reset with the code clients
// retry on (network.StreamResourceLimitExceeded), so a client takes its
// request elsewhere or comes back later. A put cut off when ctx ends
// leaves nothing behind: the store commits a shard only once all of it
// arrived, and the client, which got no receipt, does not count it as
// stored. Drain returns ctx's error if requests were still being served
// when it ended.
func (s *Service) Drain(ctx context.Context) error {
	s.gate.drain()
	done := make(chan struct{})
	go func() {
		s.gate.wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		// Streams pushed out above may still be leaving; only requests
		// being served are cut off.
		if n := s.gate.stats().Serving; n > 0 {
			err = fmt.Errorf("shardproto: drain: %d requests still served: %w", n, ctx.Err())
		}
	}
	return errors.Join(err, s.Close())
}

// handle serves one request on one stream in two phases. Waiting for its
// header, the stream holds a pending place (see gate), which a newer
// stream may take: the stream is then reset with the code clients retry
// on. Once the header decoded and an owner signature checked, the stream
// takes a serving slot or is refused with that code. Any transport or
// framing failure resets the stream; failures of the operation are
// answered with a status.
func (s *Service) handle(st network.Stream) {
	conn := st.Conn()
	remote, addr := conn.RemotePeer(), addrGroup(conn.RemoteMultiaddr())
	// The header deadline is set before the stream can be pushed out, so
	// that the gate's deadline in the past is the one that stays.
	if err := st.SetDeadline(time.Now().Add(s.cfg.headerTimeout)); err != nil {
		st.Reset()
		return
	}
	t, ok := s.gate.arrive(remote, addr, func() { st.SetReadDeadline(time.Now()) })
	if !ok {
		st.ResetWithError(network.StreamResourceLimitExceeded)
		return
	}
	defer s.gate.leave(t)
	stop := context.AfterFunc(s.ctx, func() { st.Reset() })
	defer stop()
	if err := st.Scope().SetService(ServiceName); err != nil {
		// Refused by the resource manager before anything was served:
		// the client may retry.
		st.ResetWithError(network.StreamResourceLimitExceeded)
		return
	}
	buf, release, err := readFrame(st, MaxHeaderSize, st.Scope())
	if err != nil {
		if s.gate.wasEvicted(t) {
			s.refuse(st, remote)
		} else {
			s.counts.reset(0)
			st.Reset()
		}
		return
	}
	req, err := decodeRequest(buf)
	release()
	if err != nil {
		s.counts.reset(0)
		st.Reset()
		return
	}
	// A peer or address with no free serving slot is refused before its
	// signature is checked: verifying costs more than the request does.
	if s.gate.turnAway(t) {
		s.refuse(st, remote)
		return
	}
	ans := &answering{Stream: st, hold: func() bool { return s.refusals.take(remote, time.Now()) }}
	// A request with a bad owner signature is answered without taking a
	// serving slot.
	owner, err := s.authorize(req)
	if err != nil {
		if fail(ans, req.typ, err) != nil {
			s.counts.reset(req.typ)
			st.Reset()
			return
		}
		s.counts.answered(req.typ, ans.status)
		st.Close()
		return
	}
	if !s.gate.serve(t) {
		s.refuse(st, remote)
		return
	}
	ctx := s.ctx
	if addr.IsValid() {
		ctx = shardstore.ContextWithSource(ctx, addr)
	}
	if err := s.serve(ctx, ans, req, owner, requesterOf(remote, addr)); err != nil || !ans.answered {
		if ans.held != nil {
			s.refusals.release(remote)
		}
		s.counts.reset(req.typ)
		st.Reset()
		return
	}
	s.counts.answered(req.typ, ans.status)
	if ans.held != nil {
		// The serving slot is given back now; the answer goes out later.
		s.answerLate(st, remote, ans.heldTyp, ans.held)
		return
	}
	st.Close()
}

// respond writes a response header. On a served stream it also notes the
// status for the service's counters.
func respond(st network.Stream, typ byte, r *response) error {
	if a, ok := st.(*answering); ok {
		a.status, a.answered = r.status, true
		if r.status == StatusBusy && a.hold != nil && a.hold() {
			a.held, a.heldTyp = r, typ
			return nil
		}
	}
	return writeFrame(st, r.encode(typ))
}

// fail answers with the status matching err.
func fail(st network.Stream, typ byte, err error) error {
	status := statusOf(err)
	msg := err.Error()
	var ae *shardstore.AllowanceError
	switch {
	case status == StatusInternal:
		msg = "internal error" // local details stay local
	case errors.As(err, &ae):
		msg = ae.Error() // the plain words, for the owner's user
	}
	return respond(st, typ, &response{status: status, msg: msg})
}

func statusOf(err error) Status {
	switch {
	case errors.Is(err, shardstore.ErrNotFound):
		return StatusNotFound
	case errors.Is(err, shardstore.ErrQuotaExceeded):
		return StatusQuotaExceeded
	case errors.Is(err, shardstore.ErrIntegrity):
		return StatusIntegrity
	case errors.Is(err, shardstore.ErrInvalid), errors.Is(err, io.ErrUnexpectedEOF):
		return StatusInvalid
	case errors.Is(err, shardstore.ErrTooLarge):
		return StatusTooLarge
	case errors.Is(err, shardstore.ErrNoSpace):
		return StatusNoSpace
	case errors.Is(err, ErrUnauthorized):
		return StatusUnauthorized
	case errors.Is(err, ErrBusy):
		return StatusBusy
	case errors.Is(err, ErrTooSoon):
		return StatusTooSoon
	case errors.Is(err, shardstore.ErrOverAllowance):
		return StatusOverAllowance
	}
	return StatusInternal
}

// authorize checks the owner signature of a put, delete, renew or
// challenge request and returns the owner; other requests need none.
func (s *Service) authorize(req *request) (shardstore.Owner, error) {
	switch req.typ {
	case msgPut:
		if req.repair {
			return s.checkOwner(req, repairSigned(s.h.ID(), req.id, req.size, req.lease, req.ts))
		}
		return s.checkOwner(req, putSigned(s.h.ID(), req.id, req.size, req.lease, req.ts))
	case msgDelete:
		return s.checkOwner(req, deleteSigned(s.h.ID(), req.id, req.ts))
	case msgRenew:
		return s.checkOwner(req, renewSigned(s.h.ID(), req.ids, req.lease, req.ts))
	case msgChallenge:
		return s.checkOwner(req, challengeSigned(s.h.ID(), req.id, req.salt, req.ts))
	case msgUsage:
		return s.checkOwner(req, usageSigned(s.h.ID(), req.ts))
	case msgStanding:
		return s.checkOwner(req, standingSigned(s.h.ID(), req.ts))
	case msgHoldings:
		return s.checkOwner(req, holdingsSigned(s.h.ID(), req.ts, req.holdings))
	}
	return shardstore.Owner{}, nil
}

// serve runs one decoded request; owner is the one authorize checked, who
// the stream's requester. It returns an error only when the stream must be
// reset.
func (s *Service) serve(ctx context.Context, st network.Stream, req *request, owner shardstore.Owner, who requester) error {
	switch req.typ {
	case msgPut:
		return s.servePut(ctx, st, req, owner)
	case msgGet:
		return s.serveGet(ctx, st, req)
	case msgStat:
		info, err := s.store.Stat(ctx, req.id)
		if err != nil {
			return fail(st, req.typ, err)
		}
		return respond(st, req.typ, &response{size: info.Size, storedAt: info.StoredAt, lease: info.Lease, refs: int64(info.Refs)})
	case msgDelete:
		if err := s.store.Delete(ctx, owner, req.id); err != nil {
			return fail(st, req.typ, err)
		}
		return respond(st, req.typ, &response{})
	case msgRenew:
		return s.serveRenew(ctx, st, req, owner)
	case msgChallenge:
		return s.serveChallenge(ctx, st, req, owner, who)
	case msgProof:
		return s.serveProof(ctx, st, req)
	case msgUsage:
		return s.serveUsage(ctx, st, req, owner)
	case msgStanding:
		return s.serveStanding(ctx, st, req)
	case msgReport:
		return s.serveReport(ctx, st, req)
	case msgHoldings:
		return s.serveHoldings(ctx, st, req)
	}
	return fmt.Errorf("unknown message type %d", req.typ)
}

// Releaser is a Backend that remembers the references owners deleted
// while their leases ran: *shardstore.Disk.
type Releaser interface {
	Released(owner shardstore.Owner, id codec.ShardID) bool
}

// Roomer is a Backend that can say what an owner references and how much
// more it may put within an allowance: *shardstore.Disk.
type Roomer interface {
	Room(owner shardstore.Owner, a *shardstore.Allowance) (held, room int64)
}

// serveUsage answers what the requesting owner references here and how
// many more bytes it may put now, by the quota, the space free and the
// allowance the admission policy gives its account.
func (s *Service) serveUsage(ctx context.Context, st network.Stream, req *request, owner shardstore.Owner) error {
	r, ok := s.store.(Roomer)
	if !ok {
		return fail(st, req.typ, fmt.Errorf("%w: this holder does not report usage", shardstore.ErrInvalid))
	}
	var allow *shardstore.Allowance
	if s.cfg.admit != nil {
		account, err := accountOf(req.key)
		if err != nil {
			return fail(st, req.typ, err)
		}
		a := s.cfg.admit(ctx, account, false)
		allow = &a
	}
	held, room := r.Room(owner, allow)
	return respond(st, req.typ, &response{size: held, room: room})
}

// accountOf returns the peer ID of a (checked) owner key: the account's ID.
func accountOf(key []byte) (peer.ID, error) {
	pk, err := crypto.UnmarshalPublicKey(key)
	if err != nil {
		return "", fmt.Errorf("%w: owner key: %v", ErrUnauthorized, err)
	}
	return peer.IDFromPublicKey(pk)
}

// checkOwner verifies an owner-signed request: an Ed25519 owner key, a
// valid signature over msg (which names this holder) and a timestamp
// within the signature window.
func (s *Service) checkOwner(req *request, msg []byte) (shardstore.Owner, error) {
	pk, err := crypto.UnmarshalPublicKey(req.key)
	if err != nil {
		return shardstore.Owner{}, fmt.Errorf("%w: owner key: %v", ErrUnauthorized, err)
	}
	owner, err := OwnerOf(pk)
	if err != nil {
		return owner, fmt.Errorf("%w: %v", ErrUnauthorized, err)
	}
	if ok, err := pk.Verify(msg, req.sig); err != nil || !ok {
		return owner, fmt.Errorf("%w: bad owner signature", ErrUnauthorized)
	}
	now := s.cfg.clock()
	if d := req.ts.Sub(now); d > s.cfg.window || d < -s.cfg.window {
		return owner, fmt.Errorf("%w: signed at %v, holder time %v (window %v)", ErrUnauthorized, req.ts.UTC(), now.UTC(), s.cfg.window)
	}
	return owner, nil
}

// bodyReader hands the body to the store and remembers a transport
// failure, which resets the stream rather than being answered. Every read
// must bring something within the stall timeout (and all of them within
// the body deadline, end): a client that stops sending loses the put, and
// its reservation, at once rather than at the body deadline. Time the
// store spends between reads does not count.
type bodyReader struct {
	st     network.Stream
	r      *io.LimitedReader
	stall  time.Duration
	end    time.Time
	netErr error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if err := b.arm(); err != nil {
		b.netErr = err
		return 0, err
	}
	n, err := b.r.Read(p)
	if err != nil && err != io.EOF {
		b.netErr = err
	}
	return n, err
}

// arm sets the read deadline for the next read.
func (b *bodyReader) arm() error {
	dl := time.Now().Add(b.stall)
	if dl.After(b.end) {
		dl = b.end
	}
	return b.st.SetReadDeadline(dl)
}

func (s *Service) servePut(ctx context.Context, st network.Stream, req *request, owner shardstore.Owner) error {
	if req.size <= 0 {
		return fail(st, req.typ, fmt.Errorf("%w: size %d", shardstore.ErrInvalid, req.size))
	}
	if req.size > s.cfg.maxShardSize {
		return fail(st, req.typ, fmt.Errorf("%w: %d bytes, limit %d", shardstore.ErrTooLarge, req.size, s.cfg.maxShardSize))
	}
	// The store streams the body to disk through one chunk buffer:
	// reserve that memory first.
	mem := shardstore.PutMemory(req.size)
	if err := st.Scope().ReserveMemory(mem, network.ReservationPriorityHigh); err != nil {
		return fail(st, req.typ, fmt.Errorf("%w: %v", ErrBusy, err))
	}
	defer st.Scope().ReleaseMemory(mem)
	end := time.Now().Add(s.cfg.bodyTimeout(req.size))
	if err := st.SetDeadline(end); err != nil {
		return err
	}
	// The client sends the body right behind the header. A store that
	// refuses the shard (over the quota, or over the share of it the
	// owner or the source address may hold reserved), or already holds it,
	// does not read it: the answer goes out at once, handle closes the
	// stream, and the client stops sending when it reads the answer.
	body := &bodyReader{st: st, r: &io.LimitedReader{R: st, N: req.size}, stall: s.cfg.stall, end: end}
	if s.cfg.admit != nil {
		account, err := accountOf(req.key)
		if err != nil {
			return fail(st, req.typ, err)
		}
		admit, repair := s.cfg.admit, req.repair
		ctx = shardstore.ContextWithAllowance(ctx, func(ctx context.Context) (shardstore.Allowance, error) {
			return admit(ctx, account, repair), nil
		})
	}
	err := s.store.Put(ctx, owner, req.id, req.size, body, req.lease)
	if body.netErr != nil {
		return body.netErr
	}
	if body.r.N == 0 {
		// The body must end exactly at size: wait for the client's end of
		// stream, so closing our side never cuts its write short.
		var extra [1]byte
		if err := body.arm(); err != nil {
			return err
		}
		if n, rerr := st.Read(extra[:]); n != 0 || rerr != io.EOF {
			return fmt.Errorf("body longer than %d bytes or not ended: %v", req.size, rerr)
		}
	}
	if err != nil {
		return fail(st, req.typ, err)
	}
	rc := Receipt{
		Holder:    s.h.ID(),
		HolderKey: s.keyBytes,
		Shard:     req.id,
		Owner:     owner,
		Size:      req.size,
		Lease:     req.lease,
		Issued:    s.cfg.clock(),
	}
	if rc.Signature, err = s.key.Sign(rc.signed()); err != nil {
		return fail(st, req.typ, err)
	}
	return respond(st, req.typ, &response{blob: rc.Marshal()})
}

// copyBuf is the buffer size for streaming a shard out.
const copyBuf = 64 << 10

func (s *Service) serveGet(ctx context.Context, st network.Stream, req *request) error {
	info, err := s.store.Stat(ctx, req.id)
	if err != nil {
		return fail(st, req.typ, err)
	}
	if req.off == 0 && req.n == 0 {
		rc, size, err := s.store.Get(ctx, req.id)
		if err != nil {
			return fail(st, req.typ, err)
		}
		defer rc.Close()
		if err := st.Scope().ReserveMemory(copyBuf, network.ReservationPriorityHigh); err != nil {
			return fail(st, req.typ, fmt.Errorf("%w: %v", ErrBusy, err))
		}
		defer st.Scope().ReleaseMemory(copyBuf)
		if err := respond(st, req.typ, &response{size: size, bodyLen: size}); err != nil {
			return err
		}
		if err := st.SetDeadline(time.Now().Add(s.cfg.bodyTimeout(size))); err != nil {
			return err
		}
		// A local copy that no longer hashes to its ID fails here, and the
		// reset tells the client the transfer is bad.
		_, err = io.CopyBuffer(st, rc, make([]byte, copyBuf))
		return err
	}
	if req.n <= 0 || req.n > MaxRange || req.off < 0 {
		return fail(st, req.typ, fmt.Errorf("%w: range %d+%d (at most %d bytes)", shardstore.ErrInvalid, req.off, req.n, MaxRange))
	}
	// The proof, and the shard's tree the store reads (or builds) for it.
	reserve := int(maxProofBytes(req.n)) + shardstore.ProveMemory(info.Size)
	if err := st.Scope().ReserveMemory(reserve, network.ReservationPriorityHigh); err != nil {
		return fail(st, req.typ, fmt.Errorf("%w: %v", ErrBusy, err))
	}
	defer st.Scope().ReleaseMemory(reserve)
	proof, err := s.store.Prove(ctx, req.id, req.off, req.n)
	if err != nil {
		return fail(st, req.typ, err)
	}
	if err := respond(st, req.typ, &response{size: info.Size, bodyLen: int64(len(proof))}); err != nil {
		return err
	}
	if err := st.SetDeadline(time.Now().Add(s.cfg.bodyTimeout(int64(len(proof))))); err != nil {
		return err
	}
	_, err = st.Write(proof)
	return err
}

// serveChallenge answers a salted-hash challenge of a whole shard, for
// one of the shard's owners and within the challenge limits (see
// challenger); a refusal costs the holder no read of the shard.
func (s *Service) serveChallenge(ctx context.Context, st network.Stream, req *request, owner shardstore.Owner, who requester) error {
	info, err := s.store.Stat(ctx, req.id)
	if err != nil {
		return fail(st, req.typ, err)
	}
	if !slices.ContainsFunc(info.Owners, func(o shardstore.OwnerLease) bool { return o.Owner == owner }) {
		return fail(st, req.typ, fmt.Errorf("%w: only the shard's owners may challenge it", ErrUnauthorized))
	}
	release, err := s.challenges.admit(owner, req.id, info.Size, who, s.cfg.clock())
	if err != nil {
		return fail(st, req.typ, err)
	}
	defer release()
	// Hashing a whole shard from disk takes a while: extend the deadline
	// as for reading it from the network.
	ctx, cancel := context.WithTimeout(ctx, s.cfg.bodyTimeout(info.Size))
	defer cancel()
	if err := st.SetDeadline(time.Now().Add(s.cfg.bodyTimeout(info.Size))); err != nil {
		return err
	}
	sum, err := s.store.Challenge(ctx, req.id, req.salt)
	if err != nil {
		return fail(st, req.typ, err)
	}
	a := ChallengeAnswer{Holder: s.h.ID(), HolderKey: s.keyBytes, Shard: req.id, Salt: req.salt, Answer: sum, Issued: s.cfg.clock()}
	if a.Signature, err = s.key.Sign(a.signed()); err != nil {
		return fail(st, req.typ, err)
	}
	return respond(st, req.typ, &response{blob: a.Marshal()})
}

// serveRenew renews the owner's leases and answers with the IDs not held
// and a signed receipt for the others.
func (s *Service) serveRenew(ctx context.Context, st network.Stream, req *request, owner shardstore.Owner) error {
	missing, err := s.store.Renew(ctx, owner, req.ids, req.lease)
	if err != nil {
		return fail(st, req.typ, err)
	}
	renewed := renewedIDs(req.ids, missing)
	if s.cfg.renewed != nil && len(renewed) > 0 {
		if account, err := accountOf(req.key); err == nil {
			s.cfg.renewed(account)
		}
	}
	rr := RenewReceipt{Owner: owner, Until: req.lease, Issued: s.cfg.clock()}
	rr.Root, rr.Count = RenewRoot(renewed)
	if err := rr.Sign(s.key); err != nil {
		return fail(st, req.typ, err)
	}
	return respond(st, req.typ, &response{ids: missing, blob: rr.Marshal()})
}

// renewedIDs returns ids without those in missing.
func renewedIDs(ids, missing []codec.ShardID) []codec.ShardID {
	gone := make(map[codec.ShardID]bool, len(missing))
	for _, id := range missing {
		gone[id] = true
	}
	out := make([]codec.ShardID, 0, len(ids))
	for _, id := range ids {
		if !gone[id] {
			out = append(out, id)
		}
	}
	return out
}

// notFound answers a proof request for a shard the store does not hold
// with a signed NotFoundAnswer.
func (s *Service) notFound(st network.Stream, req *request, err error) error {
	if r, ok := s.store.(Releaser); ok && r.Released(req.owner, req.id) {
		// The owner deleted its reference while its lease ran: a signed
		// answer would look like evidence of a deletion the owner asked
		// for. Unsigned, it is a failure without evidence.
		return respond(st, req.typ, &response{status: StatusNotFound, msg: "released by this owner before its lease ended"})
	}
	a := NotFoundAnswer{Owner: req.owner, Shard: req.id, Nonce: req.nonce, Issued: s.cfg.clock()}
	if serr := a.Sign(s.key); serr != nil {
		return fail(st, req.typ, serr)
	}
	return respond(st, req.typ, &response{status: StatusNotFound, msg: err.Error(), blob: a.Marshal()})
}

// serveProof answers a proof request with the leaves' proofs and a signed
// ProofAnswer over them, or a signed NotFoundAnswer.
func (s *Service) serveProof(ctx context.Context, st network.Stream, req *request) error {
	info, err := s.store.Stat(ctx, req.id)
	if errors.Is(err, shardstore.ErrNotFound) {
		return s.notFound(st, req, err)
	}
	if err != nil {
		return fail(st, req.typ, err)
	}
	if len(req.leafs) == 0 {
		return fail(st, req.typ, fmt.Errorf("%w: no leaves asked for", shardstore.ErrInvalid))
	}
	leaves := codec.LeafCount(info.Size)
	reserve := len(req.leafs)*int(maxProofBytes(codec.LeafSize)) + shardstore.ProveMemory(info.Size)
	if err := st.Scope().ReserveMemory(reserve, network.ReservationPriorityHigh); err != nil {
		return fail(st, req.typ, fmt.Errorf("%w: %v", ErrBusy, err))
	}
	defer st.Scope().ReleaseMemory(reserve)
	proofs := make([][]byte, len(req.leafs))
	lens := make([]int64, len(req.leafs))
	for i, leaf := range req.leafs {
		if leaf < 0 || leaf >= leaves {
			return fail(st, req.typ, fmt.Errorf("%w: leaf %d of %d", shardstore.ErrInvalid, leaf, leaves))
		}
		off := leaf * codec.LeafSize
		proofs[i], err = s.store.Prove(ctx, req.id, off, min(codec.LeafSize, info.Size-off))
		if errors.Is(err, shardstore.ErrNotFound) {
			return s.notFound(st, req, err) // deleted since the Stat
		}
		if err != nil {
			return fail(st, req.typ, err)
		}
		lens[i] = int64(len(proofs[i]))
	}
	a := ProofAnswer{Owner: req.owner, Shard: req.id, Nonce: req.nonce, Leaves: req.leafs, Proofs: proofs, Issued: s.cfg.clock()}
	if err := a.Sign(s.key); err != nil {
		return fail(st, req.typ, err)
	}
	// The proofs follow the header as raw bytes, not inside the answer.
	a.Proofs = nil
	if err := respond(st, req.typ, &response{blob: a.Marshal(), lens: lens}); err != nil {
		return err
	}
	for _, p := range proofs {
		if _, err := st.Write(p); err != nil {
			return err
		}
	}
	return nil
}
