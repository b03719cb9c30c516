package shardproto

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jellyfish-p2p/jellyfish/codec"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardstore"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
	msmux "github.com/multiformats/go-multistream"
)

// Errors a client returns besides the shardstore sentinels, which cross
// the wire unchanged: ErrNotFound, ErrQuotaExceeded, ErrIntegrity,
// ErrInvalid, ErrTooLarge, ErrNoSpace, ErrBusy, ErrOverAllowance. Proof answers its
// not-found and wrong proofs with a *NotFoundError and a *BadProofError,
// which carry the holder's signed answer and unwrap to ErrNotFound and
// ErrIntegrity.
var (
	// ErrNotFound is shardstore.ErrNotFound.
	ErrNotFound = shardstore.ErrNotFound
	// ErrQuotaExceeded is shardstore.ErrQuotaExceeded.
	ErrQuotaExceeded = shardstore.ErrQuotaExceeded
	// ErrIntegrity is shardstore.ErrIntegrity; the client also returns it
	// when a holder's bytes or proofs do not verify against the shard ID.
	ErrIntegrity = shardstore.ErrIntegrity
	// ErrUnauthorized means the holder refused an owner signature: missing,
	// wrong, made for another holder, or outside the time window.
	ErrUnauthorized = errors.New("shardproto: unauthorized")
	// ErrBusy is shardstore.ErrBusy: the holder is out of resources for
	// the request, or the put's owner or address already holds as much
	// space reserved by puts in flight as it may. The same request may
	// succeed later, or elsewhere.
	ErrBusy = shardstore.ErrBusy
	// ErrOverAllowance is shardstore.ErrOverAllowance: the holder keeps no
	// more for the owner's account, or for accounts of its kind; the
	// RemoteError's message says why in plain words. Another holder may
	// take the shard.
	ErrOverAllowance = shardstore.ErrOverAllowance
	// ErrTooSoon means the owner asked the holder for a challenge of the
	// same shard within the holder's challenge interval (30 days by
	// default); it is answered again once the interval has passed.
	ErrTooSoon = errors.New("shardproto: too soon")
	// ErrRemote means the holder failed for a reason of its own.
	ErrRemote = errors.New("shardproto: holder error")
	// ErrBadReceipt means a holder's receipt or signed answer is missing,
	// does not verify, or does not match the request.
	ErrBadReceipt = errors.New("shardproto: bad receipt")
	// ErrVersion means the peer does not speak this version of the shard
	// protocol; VersionError says which versions it does speak.
	ErrVersion = errors.New("shardproto: another protocol version")
)

// VersionError is a peer that refused the shard protocol's ID. It
// unwraps to ErrVersion and to the stream error.
type VersionError struct {
	Peer peer.ID
	// Speaks lists the shard protocol versions the peer announced
	// (identify); empty when it announced none.
	Speaks []protocol.ID
	Err    error
}

func (e *VersionError) Error() string {
	if len(e.Speaks) == 0 {
		return fmt.Sprintf("shardproto: %s does not speak %s (no shard protocol announced): it is not a Jellyfish provider, or runs another version", e.Peer.ShortString(), ID)
	}
	return fmt.Sprintf("shardproto: %s speaks %v, this Jellyfish speaks %s: one of them runs another version of Jellyfish", e.Peer.ShortString(), e.Speaks, ID)
}

// Unwrap returns ErrVersion and the stream error.
func (e *VersionError) Unwrap() []error { return []error{ErrVersion, e.Err} }

// versionError turns a refused protocol negotiation into a VersionError
// naming the shard protocol versions the peer announced.
func versionError(ps peerstore.Peerstore, p peer.ID, err error) error {
	var ns msmux.ErrNotSupported[protocol.ID]
	if !errors.As(err, &ns) {
		return err
	}
	ve := &VersionError{Peer: p, Err: err}
	if protos, perr := ps.GetProtocols(p); perr == nil {
		for _, pr := range protos {
			if strings.HasPrefix(string(pr), shardProtocolPrefix) {
				ve.Speaks = append(ve.Speaks, pr)
			}
		}
		slices.Sort(ve.Speaks)
	}
	return ve
}

// RemoteError is a failure status answered by a holder. It unwraps to the
// sentinel matching its status.
type RemoteError struct {
	Peer   peer.ID
	Status Status
	Msg    string
}

func (e *RemoteError) Error() string {
	if e.Status == StatusOverAllowance {
		// Meant for the user as it is: who refused, and the holder's
		// plain words.
		return fmt.Sprintf("holder %s: %s", shortPeer(e.Peer), e.Msg)
	}
	return fmt.Sprintf("shardproto: holder %s: status %d: %s", e.Peer.ShortString(), e.Status, e.Msg)
}

// Unwrap returns the sentinel for the status.
func (e *RemoteError) Unwrap() error {
	switch e.Status {
	case StatusNotFound:
		return shardstore.ErrNotFound
	case StatusQuotaExceeded:
		return shardstore.ErrQuotaExceeded
	case StatusIntegrity:
		return shardstore.ErrIntegrity
	case StatusInvalid:
		return shardstore.ErrInvalid
	case StatusTooLarge:
		return shardstore.ErrTooLarge
	case StatusNoSpace:
		return shardstore.ErrNoSpace
	case StatusUnauthorized:
		return ErrUnauthorized
	case StatusBusy:
		return ErrBusy
	case StatusTooSoon:
		return ErrTooSoon
	case StatusOverAllowance:
		return shardstore.ErrOverAllowance
	}
	return ErrRemote
}

// shortPeer is a peer ID's first characters, enough to tell holders apart
// in a message: 12D3KooWAb….
func shortPeer(p peer.ID) string {
	s := p.String()
	if len(s) <= 14 {
		return s
	}
	return s[:14] + "…"
}

type clientConfig struct {
	timing
	clock        shardstore.Clock
	maxShardSize int64
	reads        ReadRoute
}

// ReadRoute opens a stream of protocol ID to holder p on a host other
// than the client's, for a read (a get): a connection that carries bulk
// data better than the client's own. It returns nil when it has none
// ready, and the client then uses its own host.
type ReadRoute func(ctx context.Context, p peer.ID) network.Stream

// WithReadRoute makes gets try route first.
func WithReadRoute(route ReadRoute) ClientOption {
	return func(cfg *clientConfig) error {
		cfg.reads = route
		return nil
	}
}

// ClientOption configures NewClient.
type ClientOption func(*clientConfig) error

// WithClientClock sets the clock used to timestamp signed requests
// (default time.Now).
func WithClientClock(c shardstore.Clock) ClientOption {
	return func(cfg *clientConfig) error {
		if c == nil {
			return errors.New("nil clock")
		}
		cfg.clock = c
		return nil
	}
}

// WithClientTimeouts sets the time allowed for a request header and
// answer, and the slowest tolerated body rate, for requests whose context
// has no earlier deadline (defaults 10 s and 256 KiB/s).
func WithClientTimeouts(header time.Duration, minRate int64) ClientOption {
	return func(cfg *clientConfig) error {
		if header <= 0 || minRate <= 0 {
			return fmt.Errorf("timeouts %v, %d B/s: must be positive", header, minRate)
		}
		cfg.headerTimeout, cfg.minRate = header, minRate
		return nil
	}
}

// WithClientMaxShardSize sets the largest shard the client accepts from a
// holder (default shardstore.DefaultMaxShardSize).
func WithClientMaxShardSize(n int64) ClientOption {
	return func(cfg *clientConfig) error {
		if n <= 0 {
			return fmt.Errorf("max shard size %d: must be positive", n)
		}
		cfg.maxShardSize = n
		return nil
	}
}

// Client speaks the shard protocol to holders on behalf of one owner,
// whose Ed25519 key signs puts, deletes and renewals.
type Client struct {
	h        host.Host
	key      crypto.PrivKey
	keyBytes []byte
	owner    shardstore.Owner
	cfg      clientConfig
}

// NewClient returns a client using h to reach holders and ownerKey (an
// Ed25519 key, not necessarily h's own) to sign for the owner.
func NewClient(h host.Host, ownerKey crypto.PrivKey, opts ...ClientOption) (*Client, error) {
	cfg := clientConfig{
		timing:       timing{headerTimeout: DefaultHeaderTimeout, minRate: DefaultMinRate},
		clock:        time.Now,
		maxShardSize: shardstore.DefaultMaxShardSize,
	}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, fmt.Errorf("shardproto: %w", err)
		}
	}
	if ownerKey == nil {
		return nil, errors.New("shardproto: nil owner key")
	}
	owner, err := OwnerOf(ownerKey.GetPublic())
	if err != nil {
		return nil, err
	}
	kb, err := crypto.MarshalPublicKey(ownerKey.GetPublic())
	if err != nil {
		return nil, fmt.Errorf("shardproto: owner key: %w", err)
	}
	return &Client{h: h, key: ownerKey, keyBytes: kb, owner: owner, cfg: cfg}, nil
}

// Owner returns the store Owner the client signs for.
func (c *Client) Owner() shardstore.Owner { return c.owner }

// call is one request on one stream. finish closes the stream on success
// and resets it on failure.
type call struct {
	st   network.Stream
	p    peer.ID
	typ  byte
	stop func() bool
	cfg  *clientConfig
	ctx  context.Context
}

// open starts a request: a new stream, its resource scope, a deadline
// (the context's, or the header timeout) and a reset if ctx ends.
func (c *Client) open(ctx context.Context, p peer.ID, req *request) (*call, error) {
	var st network.Stream
	if c.cfg.reads != nil && req.typ == msgGet {
		st = c.cfg.reads(ctx, p)
	}
	if st == nil {
		var err error
		st, err = c.h.NewStream(ctx, p, ID)
		if err != nil {
			return nil, fmt.Errorf("shardproto: open stream to %s: %w", p.ShortString(), versionError(c.h.Peerstore(), p, err))
		}
	}
	if err := st.Scope().SetService(ServiceName); err != nil {
		st.Reset()
		return nil, fmt.Errorf("shardproto: %w", err)
	}
	cl := &call{st: st, p: p, typ: req.typ, cfg: &c.cfg, ctx: ctx}
	cl.stop = context.AfterFunc(ctx, func() { st.Reset() })
	if err := cl.deadline(c.cfg.headerTimeout); err != nil {
		cl.finish(err)
		return nil, err
	}
	if err := writeFrame(st, req.encode()); err != nil {
		cl.finish(err)
		return nil, fmt.Errorf("shardproto: send request to %s: %w", p.ShortString(), err)
	}
	return cl, nil
}

// deadline sets the stream deadline to d from now, or the context's
// deadline if that is earlier.
func (cl *call) deadline(d time.Duration) error {
	t := time.Now().Add(d)
	if dl, ok := cl.ctx.Deadline(); ok && dl.Before(t) {
		t = dl
	}
	return cl.st.SetDeadline(t)
}

func (cl *call) finish(err error) {
	cl.stop()
	if err != nil {
		cl.st.Reset()
	} else {
		cl.st.Close()
	}
}

// response reads the next response header; a failure status becomes a
// *RemoteError.
func (cl *call) response() (*response, error) {
	buf, _, err := readFrame(cl.st, MaxHeaderSize, nil)
	if err != nil {
		if cerr := cl.ctx.Err(); cerr != nil {
			err = cerr
		}
		return nil, fmt.Errorf("shardproto: read answer from %s: %w", cl.p.ShortString(), err)
	}
	resp, err := decodeResponse(cl.typ, buf)
	if err != nil {
		return nil, fmt.Errorf("shardproto: answer from %s: %w", cl.p.ShortString(), err)
	}
	if resp.status != StatusOK {
		return resp, &RemoteError{Peer: cl.p, Status: resp.status, Msg: resp.msg}
	}
	return resp, nil
}

// retryRefused runs op, and runs it again (at most three more times, after
// growing pauses) while the holder refuses the stream for lack of
// resources. Such a refusal happens before the request is served, so a
// retry never repeats an operation.
func retryRefused(ctx context.Context, op func() error) error {
	pause := 20 * time.Millisecond
	for attempt := 0; ; attempt++ {
		err := op()
		var se *network.StreamError
		if err == nil || attempt == 3 || !errors.As(err, &se) || !se.Remote || se.ErrorCode != network.StreamResourceLimitExceeded {
			return err
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		pause *= 4
	}
}

// roundTrip sends a body-less request and reads its answer header. On a
// failure status it returns the answer with the *RemoteError, and no call.
func (c *Client) roundTrip(ctx context.Context, p peer.ID, req *request) (cl *call, resp *response, err error) {
	err = retryRefused(ctx, func() error {
		cl, resp, err = c.roundTripOnce(ctx, p, req)
		return err
	})
	return cl, resp, err
}

func (c *Client) roundTripOnce(ctx context.Context, p peer.ID, req *request) (*call, *response, error) {
	cl, err := c.open(ctx, p, req)
	if err != nil {
		return nil, nil, err
	}
	// A holder that answered and closed already may have stopped the
	// write side; the answer below tells whether anything went wrong.
	cl.st.CloseWrite()
	resp, err := cl.response()
	if err != nil {
		var re *RemoteError
		if errors.As(err, &re) {
			// The failure's answer may carry a signed statement.
			cl.finish(nil)
			return nil, resp, err
		}
		cl.finish(err)
		return nil, nil, err
	}
	return cl, resp, nil
}

// Put stores data as shard id on holder p until lease and returns the
// holder's verified receipt. The body is written to the stream straight
// from data, and a put the holder refused for lack of resources is retried
// like other requests.
func (c *Client) Put(ctx context.Context, p peer.ID, id codec.ShardID, data []byte, lease time.Time) (rc Receipt, err error) {
	send := func(st network.Stream) (srcErr, netErr error) { return nil, sendSlice(st, data) }
	err = retryRefused(ctx, func() error {
		rc, err = c.putOnce(ctx, p, id, int64(len(data)), send, lease, false)
		return err
	})
	return rc, err
}

// PutReader is Put with the shard streamed from r, which must yield
// exactly size bytes. The body follows the request header at once; a
// holder that refuses the put or already holds the shard answers without
// reading it, and the client stops sending as soon as that answer arrives
// (at most a stream flow-control window of body is sent in vain).
//
// A put the holder refused for lack of resources is retried like other
// requests, but only when r can be rewound (an io.Seeker) or
// none of it was read yet: the first attempt may have sent part of it.
func (c *Client) PutReader(ctx context.Context, p peer.ID, id codec.ShardID, size int64, r io.Reader, lease time.Time) (rc Receipt, err error) {
	return c.putReader(ctx, p, id, size, r, lease, false)
}

// RepairReader is PutReader for a shard repair rebuilt (msgRepair): a
// holder's admission may let it past the owner's cap there by a margin
// (provider.DefaultRepairSlack). A holder of an earlier version, which
// knows no repair, resets the stream: the shard is then sent again as a
// plain put when r can be rewound.
func (c *Client) RepairReader(ctx context.Context, p peer.ID, id codec.ShardID, size int64, r io.Reader, lease time.Time) (Receipt, error) {
	rewind := rewinder(r)
	rc, err := c.putReader(ctx, p, id, size, r, lease, true)
	// Only a stream the holder reset without an answer may be an earlier
	// version's refusal; an answer, or a holder not reached, is final.
	var remote *RemoteError
	if err == nil || errors.As(err, &remote) || !errors.Is(err, network.ErrReset) || ctx.Err() != nil || rewind == nil || rewind() != nil {
		return rc, err
	}
	return c.putReader(ctx, p, id, size, r, lease, false)
}

// rewinder returns a function that moves r back to where it is now, or
// nil when r cannot be moved back (not an io.Seeker).
func rewinder(r io.Reader) func() error {
	seeker, ok := r.(io.Seeker)
	if !ok {
		return nil
	}
	start, err := seeker.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil
	}
	return func() error {
		_, err := seeker.Seek(start, io.SeekStart)
		return err
	}
}

func (c *Client) putReader(ctx context.Context, p peer.ID, id codec.ShardID, size int64, r io.Reader, lease time.Time, repair bool) (rc Receipt, err error) {
	rewind := rewinder(r)
	src := &countingReader{r: r}
	attempt := 0
	err = retryRefused(ctx, func() error {
		if attempt++; attempt > 1 && src.n > 0 {
			if rewind == nil || rewind() != nil {
				return errNoRewind
			}
		}
		send := func(st network.Stream) (srcErr, netErr error) { return sendBody(st, src, size) }
		rc, err = c.putOnce(ctx, p, id, size, send, lease, repair)
		return err
	})
	if errors.Is(err, errNoRewind) {
		err = fmt.Errorf("shardproto: put %s to %s: holder busy and the body cannot be sent again: %w", id.Short(), p.ShortString(), ErrBusy)
	}
	return rc, err
}

var errNoRewind = errors.New("body source cannot be rewound")

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

type answer struct {
	resp *response
	err  error
}

// putOnce makes one put attempt; send writes the body of size bytes to the
// stream and closes its write side.
func (c *Client) putOnce(ctx context.Context, p peer.ID, id codec.ShardID, size int64, send func(network.Stream) (srcErr, netErr error), lease time.Time, repair bool) (Receipt, error) {
	ts := c.cfg.clock()
	signed := putSigned(p, id, size, lease, ts)
	if repair {
		signed = repairSigned(p, id, size, lease, ts)
	}
	sig, err := c.key.Sign(signed)
	if err != nil {
		return Receipt{}, fmt.Errorf("shardproto: sign put: %w", err)
	}
	cl, err := c.open(ctx, p, &request{typ: msgPut, repair: repair, id: id, size: size, lease: lease, ts: ts, key: c.keyBytes, sig: sig})
	if err != nil {
		return Receipt{}, err
	}
	if err := cl.deadline(c.cfg.bodyTimeout(size)); err != nil {
		cl.finish(err)
		return Receipt{}, err
	}
	// The answer may come before the body is sent: read it alongside, and
	// once it is in, stop writing (a holder that answered early no longer
	// reads, so a write may be waiting for flow-control credit).
	answered := make(chan answer, 1)
	go func() {
		resp, err := cl.response()
		cl.st.SetWriteDeadline(time.Now())
		answered <- answer{resp, err}
	}()
	srcErr, netErr := send(cl.st)
	a := <-answered
	resp, err := a.resp, a.err
	var re *RemoteError
	switch {
	case err == nil:
		// OK: stored, or held already (then the body was not needed).
	case srcErr != nil && errors.As(err, &re) && re.Status == StatusInvalid:
		// The holder refused the short body our source gave.
		cl.finish(nil)
		return Receipt{}, fmt.Errorf("shardproto: put %s to %s: %w", id.Short(), p.ShortString(), srcErr)
	case errors.As(err, &re):
		cl.finish(nil)
		return Receipt{}, err
	default:
		if e := errors.Join(srcErr, netErr); e != nil {
			err = fmt.Errorf("%w (sending the body: %v)", err, e)
		}
		cl.finish(err)
		return Receipt{}, fmt.Errorf("shardproto: put %s to %s: %w", id.Short(), p.ShortString(), err)
	}
	cl.finish(nil)
	rc, err := UnmarshalReceipt(resp.blob)
	if err == nil {
		err = VerifyReceipt(rc)
	}
	if err == nil && (rc.Holder != p || rc.Shard != id || rc.Size != size || rc.Owner != c.owner || !rc.Lease.Equal(lease)) {
		err = errors.New("receipt does not name this put")
	}
	if err != nil {
		return Receipt{}, fmt.Errorf("%w from %s: %v", ErrBadReceipt, p.ShortString(), err)
	}
	return rc, nil
}

// bodyBuf is the unit in which a client copies a shard body into the
// stream: two yamux frames of 64 KiB per write, against 32 KiB writes
// (half a frame) with io.Copy's default buffer. (Writing a whole buffered
// shard in one call measured slower with several puts in flight.)
const bodyBuf = 128 << 10

var bodyBufPool = sync.Pool{New: func() any { b := make([]byte, bodyBuf); return &b }}

// sendSlice writes a shard body held in memory to the stream in bodyBuf
// pieces, without copying it, and closes the write side.
func sendSlice(st network.Stream, data []byte) error {
	for len(data) > 0 {
		n := min(len(data), bodyBuf)
		if _, err := st.Write(data[:n]); err != nil {
			return err
		}
		data = data[n:]
	}
	// The holder waits for this end of the body before it answers.
	return st.CloseWrite()
}

// sendBody streams exactly size bytes of r and closes the write side, also
// when r fails or ends early (the holder then answers Invalid). It reports
// a failure of the source apart from one of the stream; the latter is
// expected when the holder answered before the end of the body.
func sendBody(st network.Stream, r io.Reader, size int64) (srcErr, netErr error) {
	bp := bodyBufPool.Get().(*[]byte)
	defer bodyBufPool.Put(bp)
	buf := *bp
	for left := size; left > 0; {
		n, err := r.Read(buf[:min(int64(len(buf)), left)])
		if n > 0 {
			if _, werr := st.Write(buf[:n]); werr != nil {
				return nil, werr
			}
			left -= int64(n)
		}
		if err == io.EOF && left > 0 {
			srcErr = fmt.Errorf("source gave %d of %d bytes: %w", size-left, size, io.ErrUnexpectedEOF)
			break
		}
		if err != nil && err != io.EOF {
			srcErr = fmt.Errorf("read source: %w", err)
			break
		}
	}
	// The holder waits for this end of the body before it answers.
	return srcErr, st.CloseWrite()
}

// Get fetches a whole shard from holder p. The returned reader verifies
// the bytes against id as they stream in and fails with ErrIntegrity at
// the end if they do not match; the caller must Close it.
func (c *Client) Get(ctx context.Context, p peer.ID, id codec.ShardID) (io.ReadCloser, int64, error) {
	cl, resp, err := c.roundTrip(ctx, p, &request{typ: msgGet, id: id})
	if err != nil {
		return nil, 0, err
	}
	if resp.size <= 0 || resp.size > c.cfg.maxShardSize || resp.bodyLen != resp.size {
		cl.finish(errFrame)
		return nil, 0, fmt.Errorf("shardproto: get %s from %s: %w: announced %d bytes", id.Short(), p.ShortString(), errFrame, resp.size)
	}
	if err := cl.deadline(c.cfg.bodyTimeout(resp.size)); err != nil {
		cl.finish(err)
		return nil, 0, err
	}
	v := shardstore.NewVerifyingReader(io.NopCloser(cl.st), id, resp.size)
	return &getReader{v: v, cl: cl}, resp.size, nil
}

// getReader closes the stream cleanly only after a verified read to the
// end; otherwise it resets it.
type getReader struct {
	v    *shardstore.VerifyingReader
	cl   *call
	ok   bool
	done bool
}

func (g *getReader) Read(p []byte) (int, error) {
	n, err := g.v.Read(p)
	if err == io.EOF {
		g.ok = true
	}
	return n, err
}

func (g *getReader) Close() error {
	if g.done {
		return nil
	}
	g.done = true
	if g.ok {
		g.cl.finish(nil)
	} else {
		g.cl.finish(errors.New("closed early"))
	}
	return nil
}

// GetRange fetches bytes [off, off+n) of a shard (n at most MaxRange)
// together with their proof, and returns them once verified against id.
func (c *Client) GetRange(ctx context.Context, p peer.ID, id codec.ShardID, off, n int64) ([]byte, error) {
	proof, err := c.ProveRange(ctx, p, id, off, n)
	if err != nil {
		return nil, err
	}
	data, err := codec.VerifyRange(id, proof, off, n)
	if err != nil {
		return nil, fmt.Errorf("%w: range %d+%d of %s from %s: %v", ErrIntegrity, off, n, id.Short(), p.ShortString(), err)
	}
	return data, nil
}

// ProveRange fetches the proof of bytes [off, off+n) of a shard from
// holder p and returns it once it verifies against id.
func (c *Client) ProveRange(ctx context.Context, p peer.ID, id codec.ShardID, off, n int64) ([]byte, error) {
	if off < 0 || n <= 0 || n > MaxRange {
		return nil, fmt.Errorf("shardproto: range %d+%d: %w (at most %d bytes)", off, n, shardstore.ErrInvalid, MaxRange)
	}
	cl, resp, err := c.roundTrip(ctx, p, &request{typ: msgGet, id: id, off: off, n: n})
	if err != nil {
		return nil, err
	}
	if resp.bodyLen <= 0 || resp.bodyLen > maxProofBytes(n) {
		cl.finish(errFrame)
		return nil, fmt.Errorf("shardproto: range of %s from %s: %w: %d-byte proof", id.Short(), p.ShortString(), errFrame, resp.bodyLen)
	}
	proof, err := readBody(cl, resp.bodyLen)
	if err != nil {
		return nil, err
	}
	if _, err := codec.VerifyRange(id, proof, off, n); err != nil {
		return nil, fmt.Errorf("%w: range %d+%d of %s from %s: %v", ErrIntegrity, off, n, id.Short(), p.ShortString(), err)
	}
	return proof, nil
}

// readBody reads n bytes after an answer header, with their memory
// reserved in the stream's scope, and finishes the call.
func readBody(cl *call, n int64) ([]byte, error) {
	if err := cl.st.Scope().ReserveMemory(int(n), network.ReservationPriorityHigh); err != nil {
		cl.finish(err)
		return nil, fmt.Errorf("shardproto: %w: %v", ErrBusy, err)
	}
	defer cl.st.Scope().ReleaseMemory(int(n))
	if err := cl.deadline(cl.cfg.bodyTimeout(n)); err != nil {
		cl.finish(err)
		return nil, err
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(cl.st, buf); err != nil {
		cl.finish(err)
		return nil, fmt.Errorf("shardproto: read body from %s: %w", cl.p.ShortString(), err)
	}
	cl.finish(nil)
	return buf, nil
}

// Stat describes a shard held by p. Holders do not reveal owners: Owners
// is nil and Refs counts them.
func (c *Client) Stat(ctx context.Context, p peer.ID, id codec.ShardID) (shardstore.Info, error) {
	cl, resp, err := c.roundTrip(ctx, p, &request{typ: msgStat, id: id})
	if err != nil {
		return shardstore.Info{}, err
	}
	cl.finish(nil)
	return shardstore.Info{ID: id, Size: resp.size, StoredAt: resp.storedAt, Lease: resp.lease, Refs: int(resp.refs)}, nil
}

// Delete asks holder p to drop the client's owner's reference to a shard.
func (c *Client) Delete(ctx context.Context, p peer.ID, id codec.ShardID) error {
	ts := c.cfg.clock()
	sig, err := c.key.Sign(deleteSigned(p, id, ts))
	if err != nil {
		return fmt.Errorf("shardproto: sign delete: %w", err)
	}
	cl, _, err := c.roundTrip(ctx, p, &request{typ: msgDelete, id: id, ts: ts, key: c.keyBytes, sig: sig})
	if err != nil {
		return err
	}
	cl.finish(nil)
	return nil
}

// Usage asks holder p what the client's owner references there (held,
// shard bytes) and how many more bytes it may put there now (room): the
// least of the space free and what the holder's admission policy leaves
// the owner's account. A holder of an earlier version does not know the
// request and fails it.
func (c *Client) Usage(ctx context.Context, p peer.ID) (held, room int64, err error) {
	ts := c.cfg.clock()
	sig, err := c.key.Sign(usageSigned(p, ts))
	if err != nil {
		return 0, 0, fmt.Errorf("shardproto: sign usage: %w", err)
	}
	cl, resp, err := c.roundTrip(ctx, p, &request{typ: msgUsage, ts: ts, key: c.keyBytes, sig: sig})
	if err != nil {
		return 0, 0, err
	}
	cl.finish(nil)
	return resp.size, resp.room, nil
}

// Renew extends the owner's leases on ids at holder p to until, in
// batches of MaxRenewIDs, and returns the IDs p does not hold for the
// owner. RenewReceipts also returns the holder's signed receipts.
func (c *Client) Renew(ctx context.Context, p peer.ID, ids []codec.ShardID, until time.Time) ([]codec.ShardID, error) {
	missing, _, err := c.RenewReceipts(ctx, p, ids, until)
	return missing, err
}

// RenewReceipts is Renew that also returns, for each request of
// MaxRenewIDs IDs, the IDs renewed and the holder's receipt for them,
// verified: signed by p, for this owner and lease, over exactly the
// request's IDs that p did not report missing. A receipt that does not
// verify fails the call with ErrBadReceipt (the leases may be renewed).
func (c *Client) RenewReceipts(ctx context.Context, p peer.ID, ids []codec.ShardID, until time.Time) ([]codec.ShardID, []Renewal, error) {
	var missing []codec.ShardID
	var done []Renewal
	for len(ids) > 0 {
		batch := ids[:min(len(ids), MaxRenewIDs)]
		ids = ids[len(batch):]
		ts := c.cfg.clock()
		sig, err := c.key.Sign(renewSigned(p, batch, until, ts))
		if err != nil {
			return missing, done, fmt.Errorf("shardproto: sign renew: %w", err)
		}
		cl, resp, err := c.roundTrip(ctx, p, &request{typ: msgRenew, ids: batch, lease: until, ts: ts, key: c.keyBytes, sig: sig})
		if err != nil {
			return missing, done, err
		}
		cl.finish(nil)
		missing = append(missing, resp.ids...)
		renewed := sortedIDs(renewedIDs(batch, resp.ids))
		rr, err := UnmarshalRenewReceipt(resp.blob)
		if err == nil {
			err = VerifyRenewReceipt(rr)
		}
		if err == nil && (rr.Holder != p || rr.Owner != c.owner || !rr.Until.Equal(until) || rr.Count != len(renewed) || rr.Root != treeRoot(leafHashes(renewed))) {
			err = errors.New("receipt does not name this renewal")
		}
		if err != nil {
			return missing, done, fmt.Errorf("%w: renewal at %s: %v", ErrBadReceipt, p.ShortString(), err)
		}
		done = append(done, Renewal{IDs: renewed, Receipt: rr})
	}
	return missing, done, nil
}

// Challenge asks holder p for the salted hash of a shard and returns its
// signed answer once the signature verifies. Whether the answer is right
// is for the caller to judge: compare Answer with the expected value; a
// wrong answer together with the holder's receipt is evidence.
//
// The request is signed for the client's owner, and a holder answers only
// an owner of the shard (else ErrUnauthorized), once per shard and owner
// in its challenge interval (else ErrTooSoon, 30 days by default), and
// within its byte budget for the client's address (else ErrBusy): hashing
// a whole shard is the holder's costliest work. Proof is the audit to use
// often.
func (c *Client) Challenge(ctx context.Context, p peer.ID, id codec.ShardID, salt [32]byte) (ChallengeAnswer, error) {
	ts := c.cfg.clock()
	sig, err := c.key.Sign(challengeSigned(p, id, salt, ts))
	if err != nil {
		return ChallengeAnswer{}, fmt.Errorf("shardproto: sign challenge: %w", err)
	}
	cl, resp, err := c.roundTrip(ctx, p, &request{typ: msgChallenge, id: id, salt: salt, ts: ts, key: c.keyBytes, sig: sig})
	if err != nil {
		return ChallengeAnswer{}, err
	}
	cl.finish(nil)
	a, err := UnmarshalChallengeAnswer(resp.blob)
	if err == nil {
		err = VerifyChallengeAnswer(a)
	}
	if err == nil && (a.Holder != p || a.Shard != id || a.Salt != salt) {
		err = errors.New("answer is for another challenge")
	}
	if err != nil {
		return ChallengeAnswer{}, fmt.Errorf("shardproto: challenge %s at %s: %w", id.Short(), p.ShortString(), err)
	}
	return a, nil
}

// Proof asks holder p for the given leaves of a shard (at most
// MaxProofLeaves, each a LeafSize-aligned index) with their Merkle paths,
// under a fresh random nonce. It returns the leaf bytes, verified against
// id, and the holder's signed answer, which anyone can check offline
// (VerifyProofAnswer, CheckProofAnswer).
//
// A signed answer whose proofs do not verify fails the call with a
// *BadProofError, and a signed "not found" with a *NotFoundError; both
// carry the answer. An answer that is unsigned, does not verify, or names
// another request (holder, owner, shard, leaves or nonce) fails it with
// ErrBadReceipt, whatever its status said.
func (c *Client) Proof(ctx context.Context, p peer.ID, id codec.ShardID, leaves []int64) ([][]byte, ProofAnswer, error) {
	if len(leaves) == 0 || len(leaves) > MaxProofLeaves {
		return nil, ProofAnswer{}, fmt.Errorf("shardproto: %d leaves: %w (1..%d)", len(leaves), shardstore.ErrInvalid, MaxProofLeaves)
	}
	req := &request{typ: msgProof, id: id, owner: c.owner, leafs: leaves}
	if _, err := rand.Read(req.nonce[:]); err != nil {
		return nil, ProofAnswer{}, fmt.Errorf("shardproto: nonce: %w", err)
	}
	cl, resp, err := c.roundTrip(ctx, p, req)
	var re *RemoteError
	if errors.As(err, &re) && re.Status == StatusNotFound && resp != nil {
		return nil, ProofAnswer{}, c.checkNotFound(p, req, resp.blob)
	}
	if err != nil {
		return nil, ProofAnswer{}, err
	}
	if len(resp.lens) != len(leaves) {
		cl.finish(errFrame)
		return nil, ProofAnswer{}, fmt.Errorf("shardproto: proof of %s from %s: %w: %d proofs for %d leaves", id.Short(), p.ShortString(), errFrame, len(resp.lens), len(leaves))
	}
	var total int64
	for _, l := range resp.lens {
		if l <= 8 || l > maxProofBytes(codec.LeafSize) {
			cl.finish(errFrame)
			return nil, ProofAnswer{}, fmt.Errorf("shardproto: proof of %s from %s: %w: %d-byte proof", id.Short(), p.ShortString(), errFrame, l)
		}
		total += l
	}
	a, aerr := UnmarshalProofAnswer(resp.blob)
	if aerr == nil && len(a.Proofs) != 0 {
		aerr = errors.New("proofs inside the answer header")
	}
	body, err := readBody(cl, total)
	if err != nil {
		return nil, ProofAnswer{}, err
	}
	if aerr == nil {
		for _, l := range resp.lens {
			a.Proofs = append(a.Proofs, body[:l])
			body = body[l:]
		}
		aerr = VerifyProofAnswer(a)
	}
	if aerr == nil && (a.Holder != p || a.Owner != c.owner || a.Shard != id || a.Nonce != req.nonce || !slices.Equal(a.Leaves, leaves)) {
		aerr = errors.New("the answer is for another request")
	}
	if aerr != nil {
		return nil, ProofAnswer{}, fmt.Errorf("%w: proof of %s from %s: %v", ErrBadReceipt, id.Short(), p.ShortString(), aerr)
	}
	out, err := CheckProofAnswer(a)
	if err != nil {
		return nil, a, &BadProofError{Answer: a, Err: err}
	}
	return out, a, nil
}

// checkNotFound turns a proof request's NotFound answer into a
// *NotFoundError once its signed statement verifies and names the
// request, and into ErrBadReceipt otherwise.
func (c *Client) checkNotFound(p peer.ID, req *request, blob []byte) error {
	if len(blob) == 0 {
		return fmt.Errorf("%w: proof of %s from %s: not found, unsigned", ErrBadReceipt, req.id.Short(), p.ShortString())
	}
	a, err := UnmarshalNotFoundAnswer(blob)
	if err == nil {
		err = VerifyNotFound(a)
	}
	if err == nil && (a.Holder != p || a.Owner != req.owner || a.Shard != req.id || a.Nonce != req.nonce) {
		err = errors.New("the answer is for another request")
	}
	if err != nil {
		return fmt.Errorf("%w: proof of %s from %s: not-found answer: %v", ErrBadReceipt, req.id.Short(), p.ShortString(), err)
	}
	return &NotFoundError{Answer: a}
}
