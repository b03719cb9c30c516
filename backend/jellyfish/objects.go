package jellyfish

import (
	"context"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/rclone/rclone/fs"
	"github.com/rclone/rclone/fs/fserrors"

	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish/objref"
	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish/placement"
	"github.com/jellyfish-p2p/jellyfish/codec"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardproto"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardstore"
)

// shardIO is what the object store needs from the shard protocol client;
// *shardproto.Client satisfies it. Get's reader must fail unless the bytes
// it delivered hash to the ID asked for: fetched shards are handed to the
// decoder as already verified.
type shardIO interface {
	PutReader(ctx context.Context, p peer.ID, id codec.ShardID, size int64, r io.Reader, lease time.Time) (shardproto.Receipt, error)
	// RepairReader is PutReader for a shard repair rebuilt, which a
	// provider may take past the account's cap there by a margin.
	RepairReader(ctx context.Context, p peer.ID, id codec.ShardID, size int64, r io.Reader, lease time.Time) (shardproto.Receipt, error)
	Get(ctx context.Context, p peer.ID, id codec.ShardID) (io.ReadCloser, int64, error)
	Delete(ctx context.Context, p peer.ID, id codec.ShardID) error
	// RenewReceipts extends this owner's leases on ids at p and returns
	// those p does not hold, and p's verified receipts for the others.
	RenewReceipts(ctx context.Context, p peer.ID, ids []codec.ShardID, until time.Time) ([]codec.ShardID, []shardproto.Renewal, error)
	// Proof returns leaves of shard id from p, each verified against id,
	// and p's signed answer. A signed answer that shows p failed is a
	// *shardproto.BadProofError or *shardproto.NotFoundError.
	Proof(ctx context.Context, p peer.ID, id codec.ShardID, leaves []int64) ([][]byte, shardproto.ProofAnswer, error)
}

// ObjRef says how to read one stored object (see package objref).
type ObjRef = objref.ObjRef

// UnmarshalObjRef decodes an object reference of any version.
func UnmarshalObjRef(b []byte) (*ObjRef, error) { return objref.Unmarshal(b) }

// shardLocation is one shard of an object and its holder.
type shardLocation = objref.Location

// objectStore stores codec objects as shards on provider nodes.
type objectStore struct {
	shards    shardIO
	providers func(ctx context.Context) ([]peer.ID, error)
	lease     time.Duration
	// threshold returns how many shards of a segment must be receipted for
	// an upload to succeed.
	threshold func(k, m int) int
	slots     *transferSlots // bounds concurrent shard transfers, in total and per holder
	repairs   *repairQueue
	// now is Jellyfish's clock (leases).
	now func() time.Time
	// groups returns the placement groups (verified owner, network) of
	// nodes, one per node; nil: none known.
	groups func(nodes []peer.ID) []placement.Node
	// locate returns holders of a shard recorded after its object was
	// stored (repair); nil: none.
	locate func(ctx context.Context, id codec.ShardID) []peer.ID
	// gone reports whether the network can be reached at all (nil: yes,
	// or cannot tell); alive returns a context done once it was found
	// gone (nil: never).
	gone  func(ctx context.Context) error
	alive func() context.Context
}

// withNetwork returns ctx, cancelled too when the network is found gone.
func (s *objectStore) withNetwork(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	if s.alive == nil {
		return ctx, cancel
	}
	stop := context.AfterFunc(s.alive(), cancel)
	return ctx, func() { stop(); cancel() }
}

// unreachable returns err, or, when the network cannot be reached at all,
// an error saying so that rclone treats as fatal: it retries neither it
// nor the files after it, so a sync whose network went away ends at once
// instead of every file waiting out its timeouts and retries. Whether the
// network is there is asked of the peers (store.gone), not judged by how
// long the failure took: a slow link that still answers is not gone.
func (s *objectStore) unreachable(ctx context.Context, err error) error {
	if err == nil || s.gone == nil || (errors.Is(err, context.Canceled) && ctx.Err() != nil) {
		return err
	}
	if g := s.gone(context.WithoutCancel(ctx)); g != nil {
		return fserrors.FatalError(fserrors.NoLowLevelRetryError(g))
	}
	return err
}

// Shard transfers (puts and gets) an object store runs at once: in total,
// and with any one holder.
const (
	maxTransfers       = 16
	maxHolderTransfers = 4
)

// transferSlots bounds the shard transfers in flight, in total and per
// holder. A holder that answers slowly, or never, holds at most perHolder
// of the slots; the other holders' transfers, other uploads' and reads'
// included, keep the rest. Without the cap per holder, one stalled holder
// could take every slot while the segments whose completion would cancel
// its transfers wait for a slot themselves.
type transferSlots struct {
	total     chan struct{}
	perHolder int
	// puts bounds the shard puts among the transfers to what the uplink
	// carries (uplink.go).
	puts *putWindow

	mu      sync.Mutex
	holders map[peer.ID]*holderSlots
}

type holderSlots struct {
	ch    chan struct{} // one token per transfer in flight with the holder
	users int           // transfers in flight or waiting; dropped at 0
}

func newTransferSlots(total, perHolder int) *transferSlots {
	return &transferSlots{total: make(chan struct{}, total), perHolder: perHolder, puts: newPutWindow(total), holders: map[peer.ID]*holderSlots{}}
}

// acquire waits for a slot with holder h, then for one of the total, or
// for ctx to end. Waiting for h's slot holds none of the total. The
// returned function gives both back.
func (t *transferSlots) acquire(ctx context.Context, h peer.ID) (release func(), err error) {
	t.mu.Lock()
	hs := t.holders[h]
	if hs == nil {
		hs = &holderSlots{ch: make(chan struct{}, t.perHolder)}
		t.holders[h] = hs
	}
	hs.users++
	t.mu.Unlock()
	select {
	case hs.ch <- struct{}{}:
	case <-ctx.Done():
		t.leave(h, hs)
		return nil, ctx.Err()
	}
	select {
	case t.total <- struct{}{}:
	case <-ctx.Done():
		<-hs.ch
		t.leave(h, hs)
		return nil, ctx.Err()
	}
	return func() {
		<-t.total
		<-hs.ch
		t.leave(h, hs)
	}, nil
}

func (t *transferSlots) leave(h peer.ID, hs *holderSlots) {
	t.mu.Lock()
	hs.users--
	if hs.users == 0 {
		delete(t.holders, h)
	}
	t.mu.Unlock()
}

// ErrTooFewNodes: not enough provider nodes are reachable to store data.
var ErrTooFewNodes = errors.New("jellyfish: too few provider nodes reachable")

// defaultThreshold is k plus half of m, rounded up.
func defaultThreshold(k, m int) int { return k + (m+1)/2 }

// groupsOf returns the placement groups of nodes: what groups says, or,
// without it (or when its answer does not fit), none: every node its own
// owner, in one unknown network, which places as placement.Assign does.
func (s *objectStore) groupsOf(nodes []peer.ID) []placement.Node {
	if s.groups != nil {
		if g := s.groups(nodes); len(g) == len(nodes) {
			return g
		}
	}
	return make([]placement.Node, len(nodes))
}

// place returns the nodes for segment seg's total shards, as a fresh
// placement.Plan over nodes with their groups picks them: distinct when
// there are enough nodes, else spread evenly, with no node, verified
// owner or network above cap shards where the network allows. The
// rotation spreads consecutive segments over different nodes, and the
// object's random salt spreads objects.
func place(nodes []peer.ID, groups []placement.Node, cap int, salt, seg uint64, total int) []peer.ID {
	out := make([]peer.ID, total)
	for i, n := range placement.Diverse(groups, cap, salt, seg, total) {
		out[i] = nodes[n]
	}
	return out
}

// undialled reports whether a put failed because its holder could not be
// dialled at all: it was sent nothing.
func undialled(err error) bool {
	var de *swarm.DialError
	return errors.As(err, &de) || errors.Is(err, swarm.ErrDialBackoff)
}

// segmentsInFlight bounds how many segments of one upload are being
// stored at once (each holds its k+m shards in memory until stored).
const segmentsInFlight = 4

// Put encodes r with enc and stores every segment's shards, returning once
// each segment has at least the threshold of receipted shards. Segments are
// stored in parallel, at most segmentsInFlight at a time. Shards no node
// receipted are left out of the reference and queued for repair.
func (s *objectStore) Put(ctx context.Context, enc *codec.Encoder, r io.Reader) (*ObjRef, error) {
	nodes, err := s.providers(ctx)
	if err != nil {
		return nil, s.unreachable(ctx, err)
	}
	p := enc.Params()
	need := s.threshold(p.K, p.M)
	if len(nodes) == 0 {
		return nil, fmt.Errorf("%w: none found", ErrTooFewNodes)
	}
	if len(nodes) < p.Total() {
		fs.Logf(nil, "jellyfish: only %d provider nodes for %d shards per segment: spreading shards evenly, so losing one node loses several shards", len(nodes), p.Total())
	}
	key, err := codec.NewKey()
	if err != nil {
		return nil, err
	}
	now := time.Now
	if s.now != nil {
		now = s.now
	}
	lease := now().Add(s.lease)
	salt := mrand.Uint64() // where this object's first segment starts
	groups, cap := s.groupsOf(nodes), placement.GroupCap(p.K, p.M)
	uctx, cancel := s.withNetwork(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		rows     = map[uint64]storedRow{}
		inflight = make(chan struct{}, segmentsInFlight)
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = err
			cancel()
		}
	}
	layout, err := enc.Encode(uctx, r, key, func(seg *codec.Segment) error {
		select {
		case inflight <- struct{}{}:
		case <-uctx.Done():
			seg.Release()
			return uctx.Err()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-inflight }()
			defer seg.Release()
			ids := make([]codec.ShardID, len(seg.Shards))
			for i := range seg.Shards {
				ids[i] = seg.Shards[i].ID
			}
			holders, err := s.putSegment(uctx, nodes, groups, cap, p.M, salt, seg, need, lease)
			mu.Lock()
			rows[seg.Index] = storedRow{holders, ids}
			mu.Unlock()
			if err != nil {
				fail(err)
			}
		}()
		return nil
	})
	wg.Wait()
	if firstErr == nil {
		firstErr = err
	}
	if firstErr != nil {
		if err := s.unreachable(ctx, firstErr); err != firstErr {
			// No network to take anything back from: what was
			// stored expires with its lease.
			return nil, err
		}
		// Nothing will refer to what was stored: take it back.
		s.deleteRows(context.WithoutCancel(ctx), rows)
		return nil, firstErr
	}
	holders := make([][]peer.ID, len(layout.Segments))
	for i := range layout.Segments {
		holders[i] = rows[uint64(i)].holders
		missing := 0
		for _, h := range holders[i] {
			if h == "" {
				missing++
			}
		}
		if missing > 0 && s.repairs != nil {
			s.repairs.add(uint64(i), missing)
		}
	}
	ref := objref.Build(key, layout, holders)
	return ref, nil
}

// storedRow is what one stored segment left on the providers.
type storedRow struct {
	holders []peer.ID
	ids     []codec.ShardID
}

// deleteRows deletes the shards of a failed upload, best effort: the ones
// no holder drops expire with their lease.
func (s *objectStore) deleteRows(ctx context.Context, rows map[uint64]storedRow) {
	if s.gone != nil && s.gone(ctx) != nil {
		fs.Debugf(nil, "jellyfish: failed upload: the network is gone; what was stored expires with its lease")
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	deleted := 0
	for _, row := range rows {
		for i, h := range row.holders {
			if h != "" && s.shards.Delete(ctx, h, row.ids[i]) == nil {
				deleted++
			}
		}
	}
	fs.Debugf(nil, "jellyfish: failed upload: deleted %d shards already stored", deleted)
}

// stragglerGrace is how long, once a segment has enough receipts, a
// remaining shard upload may send before it is cancelled: half the time
// the segment took so far, at least minStragglerGrace. It counts from when
// the upload started sending. An upload still waiting for a place in the
// put window, or for a slot of its holder (held by uploads waiting for the
// window), waits for the uplink, not for a slow holder: cancelling it
// would store the segment short of k + m on every saturated uplink. A
// stalled holder's uploads are cancelled once they send for the grace,
// which frees its slots for the next, so waiting for its slots ends too.
const minStragglerGrace = 100 * time.Millisecond

// What a shard upload is doing, for the straggler check.
const (
	putWaiting int32 = iota // for a slot of its holder or a place in the window
	putSending
)

// putRun is one shard upload of a segment as the straggler check sees it.
type putRun struct {
	cancel context.CancelFunc
	state  atomic.Int32
	since  atomic.Int64 // unix nanoseconds when state began
	ended  bool         // read and written by putSegment's loop only
}

func (r *putRun) set(state int32) {
	r.since.Store(time.Now().UnixNano())
	r.state.Store(state)
}

// putSegment stores a segment's shards in parallel on the nodes a
// placement.Plan picks. A shard whose node fails is taken back from the
// plan, the node excluded for this segment, and the shard tried on the
// node the plan picks next (at most three tries, not counting nodes that
// could not be dialled), so retries keep the
// caps too. Once need shards are receipted the stragglers get a grace
// period, then are cancelled; every upload goroutine has ended when it
// returns. It returns each shard's holder ("" when none receipted it),
// and an error too if fewer than need shards were receipted.
func (s *objectStore) putSegment(ctx context.Context, nodes []peer.ID, groups []placement.Node, cap, relayedCap int, salt uint64, seg *codec.Segment, need int, lease time.Time) ([]peer.ID, error) {
	total := len(seg.Shards)
	var planMu sync.Mutex
	plan := placement.NewPlan(groups, cap, salt, seg.Index, total)
	plan.LimitRelayed(relayedCap)
	planned := make([]int, total)
	for i := range planned {
		planned[i], _ = plan.Next()
	}
	holders := make([]peer.ID, total)
	errs := make([]error, total)
	sctx, scancel := context.WithCancel(ctx)
	defer scancel()
	done := make(chan int, total)
	start := time.Now()
	runs := make([]putRun, total)
	for i := range seg.Shards {
		ictx, icancel := context.WithCancel(sctx)
		defer icancel()
		runs[i].cancel = icancel
		go func(i int, run *putRun) {
			defer func() { done <- i }()
			shard := &seg.Shards[i]
			id := shard.ID
			j := planned[i]
			// Three tries, not counting nodes that could not be dialled
			// at all (nothing was sent): a provider list kept for a
			// minute may name several nodes that died since.
			for try, tries := 0, min(3, len(nodes)); try < tries; try++ {
				target := nodes[j]
				// The holder's slot first: waiting for a stalled
				// holder must not take a place in the put window.
				run.set(putWaiting)
				release, err := s.slots.acquire(ictx, target)
				if err != nil {
					errs[i] = err
					return
				}
				putDone, err := s.slots.puts.acquire(ictx)
				if err != nil {
					release()
					errs[i] = err
					return
				}
				run.set(putSending)
				began := time.Now()
				body := s.slots.puts.watch(shard.Reader())
				_, err = s.shards.PutReader(ictx, target, id, int64(shard.Len()), body, lease)
				release()
				if body.end() {
					putDone(int64(shard.Len()), time.Since(began), err)
				} else if err != nil {
					s.slots.puts.report(int64(shard.Len()), time.Since(began), err)
				}
				if err == nil {
					holders[i] = target
					return
				}
				errs[i] = err
				fs.Debugf(nil, "jellyfish: segment %d shard %d on %s: %v", seg.Index, i, target.ShortString(), err)
				if ictx.Err() != nil {
					return
				}
				if undialled(err) {
					tries = min(tries+1, len(nodes))
				}
				if s.gone != nil {
					// Before trying another node: is there a network at all?
					if g := s.gone(ictx); g != nil {
						errs[i] = g
						return
					}
				}
				planMu.Lock()
				plan.Remove(j)
				plan.Exclude(j)
				next, ok := plan.Next()
				planMu.Unlock()
				if !ok {
					return
				}
				j = next
			}
		}(i, &runs[i])
	}
	got := 0
	var graceFor time.Duration
	var check <-chan time.Time
	for pending := total; pending > 0; {
		select {
		case i := <-done:
			pending--
			runs[i].ended = true
			if holders[i] != "" {
				got++
				if got == need && pending > 0 {
					graceFor = max(minStragglerGrace, time.Since(start)/2)
					check = time.After(graceFor)
				}
			}
		case <-check:
			check = time.After(cancelStragglers(runs, graceFor))
		}
	}
	if got < need {
		return holders, shortSegmentError(seg.Index, got, total, need, errs)
	}
	return holders, nil
}

// shortSegmentError explains a segment stored on fewer than need
// providers. Providers that refused to keep more for the account
// (shardstore.ErrOverAllowance) are named first, with their own plain
// words, which say what the user can do about it.
func shortSegmentError(index uint64, got, total, need int, errs []error) error {
	var refused, other []error
	for _, e := range errs {
		switch {
		case e == nil:
		case errors.Is(e, shardstore.ErrOverAllowance):
			refused = append(refused, e)
		default:
			other = append(other, e)
		}
	}
	if len(refused) == 0 {
		return fmt.Errorf("jellyfish: segment %d: only %d of %d shards stored, need %d: %w", index, got, total, need, errors.Join(uniqueErrs(other)...))
	}
	return fmt.Errorf("jellyfish: segment %d: only %d of %d shards stored, need %d; providers that keep no more for this account refused %d of them: %w",
		index, got, total, need, len(refused), errors.Join(uniqueErrs(append(refused, other...))...))
}

// cancelStragglers cancels the uploads that have sent for grace or
// longer, and returns when to look again: the soonest another reaches
// grace, or grace while some wait.
func cancelStragglers(runs []putRun, grace time.Duration) time.Duration {
	now := time.Now().UnixNano()
	next := grace
	for i := range runs {
		r := &runs[i]
		if r.ended || r.state.Load() != putSending {
			continue
		}
		if ran := time.Duration(now - r.since.Load()); ran >= grace {
			r.cancel()
		} else {
			next = min(next, grace-ran)
		}
	}
	return max(next, minStragglerGrace)
}

func uniqueErrs(errs []error) []error {
	seen := map[string]bool{}
	var out []error
	for _, e := range errs {
		if e != nil && !seen[e.Error()] {
			seen[e.Error()] = true
			out = append(out, e)
		}
	}
	if len(out) > 3 {
		out = out[:3]
	}
	return out
}

// Open returns a reader of bytes [off, off+n) of the object (n < 0: to the
// end), fetching only the covering segments, k shards at a time from their
// holders and more when some fail.
func (s *objectStore) Open(ctx context.Context, ref *ObjRef, off, n int64) (io.ReadCloser, error) {
	dec, err := codec.NewDecoder(ref.Layout, ref.Key)
	if err != nil {
		return nil, err
	}
	// Segments wait mostly on the network, not the CPU: read further ahead
	// than the codec's default of one segment per core.
	return dec.NewReader(ctx, objFetcher{s, ref}, off, n, codec.WithReadAhead(segmentsInFlight))
}

// objFetcher fetches one object's segments. The shard protocol verified
// every shard against its ID on the way in, so the decoder need not hash
// them again.
type objFetcher struct {
	s   *objectStore
	ref *ObjRef
}

func (f objFetcher) FetchVerified(ctx context.Context, seg int, _ codec.SegmentInfo) ([]codec.VerifiedShard, error) {
	return f.s.fetchSegment(ctx, f.ref, seg)
}

func (f objFetcher) FetchSegment(ctx context.Context, seg int, info codec.SegmentInfo) ([][]byte, error) {
	vs, err := f.FetchVerified(ctx, seg, info)
	out := make([][]byte, len(vs))
	for i, v := range vs {
		out[i] = v.Data
	}
	return out, err
}

// hedgeAfter is how long a segment fetch waits without progress before it
// asks one more holder.
const hedgeAfter = 1500 * time.Millisecond

// fetchSegment gets k good shards of a segment: k fetches start at once,
// each failure starts the next candidate, and a stall starts one more.
func (s *objectStore) fetchSegment(ctx context.Context, ref *ObjRef, seg int) ([]codec.VerifiedShard, error) {
	k := ref.Layout.K
	type cand struct {
		idx    int
		holder peer.ID
	}
	var cands []cand
	for i := range ref.Holder[seg] {
		if h := ref.HolderOf(seg, i); h != "" {
			cands = append(cands, cand{i, h})
		}
	}
	outer := ctx
	ctx, cancel := s.withNetwork(ctx)
	defer cancel()
	type result struct {
		shard codec.VerifiedShard
		err   error
	}
	results := make(chan result)
	// send hands a result over unless the segment is done.
	send := func(r result) {
		select {
		case results <- r:
		case <-ctx.Done():
		}
	}
	next := 0
	start := func() {
		c := cands[next]
		next++
		go func() {
			release, err := s.slots.acquire(ctx, c.holder)
			if err != nil {
				send(result{err: err})
				return
			}
			defer release()
			// The shard protocol client hashes what it receives against the
			// ID asked for and fails on a mismatch; the decoder then checks
			// only that the ID belongs to the segment.
			info := &ref.Layout.Segments[seg]
			id := info.IDs[c.idx]
			data, err := s.getShard(ctx, c.holder, id, codec.HeaderSize+(info.CipherLen+k-1)/k)
			if err != nil {
				fs.Debugf(nil, "jellyfish: segment %d shard %d from %s: %v", seg, c.idx, c.holder.ShortString(), err)
			}
			send(result{codec.VerifiedShard{ID: id, Data: data}, err})
		}()
	}
	for next < len(cands) && next < k {
		start()
	}
	// Holders recorded after the object was stored are asked only when
	// the reference's own ones are not enough.
	located := false
	moreHolders := func() bool {
		if located || s.locate == nil {
			return false
		}
		located = true
		seen := map[cand]bool{}
		for _, c := range cands {
			seen[c] = true
		}
		n := len(cands)
		for i, id := range ref.Layout.Segments[seg].IDs {
			for _, h := range s.locate(ctx, id) {
				if c := (cand{i, h}); !seen[c] {
					seen[c] = true
					cands = append(cands, c)
				}
			}
		}
		return len(cands) > n
	}
	// A holder that neither answers nor fails (a dead node's dial timing
	// out) is hedged: after hedgeAfter without progress another holder is
	// asked too.
	hedge := time.NewTimer(hedgeAfter)
	defer hedge.Stop()
	var good []codec.VerifiedShard
	var errs []error
	for pending := next; pending > 0 || (len(good) < k && next == len(cands) && moreHolders()); {
		if pending == 0 {
			for next < len(cands) && pending < k-len(good) {
				start()
				pending++
			}
			continue
		}
		select {
		case r := <-results:
			pending--
			hedge.Reset(hedgeAfter)
			if r.err == nil {
				good = append(good, r.shard)
				if len(good) == k {
					return good, nil
				}
				continue
			}
			errs = append(errs, r.err)
			if next < len(cands) {
				start()
				pending++
			}
		case <-hedge.C:
			if next < len(cands) {
				start()
				pending++
			}
			hedge.Reset(hedgeAfter)
		case <-ctx.Done():
			return nil, s.unreachable(outer, ctx.Err())
		}
	}
	if ctx.Err() != nil {
		return nil, s.unreachable(outer, ctx.Err())
	}
	if len(good) < k && len(errs) > 0 {
		if err := s.unreachable(ctx, errs[0]); err != errs[0] {
			return nil, err
		}
	}
	// Fewer than k: say how many were found, how many failed their check,
	// and what the holders that gave none said (a dead node, a refusal,
	// a dial the host is still backing off from).
	if len(good) < k && len(errs) > 0 {
		bad := 0
		for _, err := range errs {
			if errors.Is(err, shardproto.ErrIntegrity) {
				bad++
			}
		}
		tf := &codec.TooFewShardsError{Segment: uint64(seg), Good: len(good), Bad: bad, Need: k}
		return nil, fmt.Errorf("%w (%d holders): %w", tf, len(cands), errors.Join(uniqueErrs(errs)...))
	}
	return good, nil
}

func (s *objectStore) getShard(ctx context.Context, holder peer.ID, id codec.ShardID, want int) ([]byte, error) {
	rc, size, err := s.shards.Get(ctx, holder, id)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if size != int64(want) {
		return nil, fmt.Errorf("jellyfish: holder offers shard %s of %d bytes, the layout says %d", id.Short(), size, want)
	}
	// One buffer of the known size, read to the end: the reader reports
	// EOF only once the bytes hash to id.
	buf := make([]byte, want)
	if _, err := io.ReadFull(rc, buf); err != nil {
		return nil, err
	}
	if n, err := rc.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		if err == nil || err == io.EOF {
			err = fmt.Errorf("jellyfish: shard %s longer than %d bytes", id.Short(), want)
		}
		return nil, err
	}
	return buf, nil
}

// Delete asks every holder to drop the object's shards; best effort.
func (s *objectStore) Delete(ctx context.Context, ref *ObjRef) error {
	var errs []error
	for _, sh := range ref.Shards() {
		if err := s.shards.Delete(ctx, sh.Holder, sh.ID); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(uniqueErrs(errs)...)
}

// repairQueue records segments stored below full redundancy. The owner's
// node repairs them; until that exists the queue is reported by `backend
// status`.
type repairQueue struct {
	mu      sync.Mutex
	pending int
	shards  int
}

func (q *repairQueue) add(seg uint64, missing int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.pending++
	q.shards += missing
	fs.Debugf(nil, "jellyfish: segment %d stored %d shards short of full redundancy: queued for repair", seg, missing)
}

func (q *repairQueue) stats() (segments, shards int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.pending, q.shards
}
