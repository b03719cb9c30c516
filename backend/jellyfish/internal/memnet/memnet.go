// Package memnet is an in-memory stand-in for the peer network, for fast
// unit tests of the backend: provider nodes that keep shards in maps, a
// record store, and switches that make nodes or records fail, or nodes
// stall. It checks
// what a real holder checks (a shard's bytes hash to its ID, a get returns
// what was put) and nothing of the network's security: owner signatures,
// quotas and leases are not modelled. Each node has a key and signs its
// answers to proofs and renewals in the shard protocol's format, so the
// evidence a client keeps of a failed audit verifies as the real one does.
// The real network is tested by fstests/.
package memnet

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/zeebo/blake3"

	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish/placement"
	"github.com/jellyfish-p2p/jellyfish/codec"
	"github.com/jellyfish-p2p/jellyfish/karma"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardproto"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardstore"
)

// ErrDown is what a node that is switched off answers.
var ErrDown = errors.New("memnet: node is down")

// Network is a set of in-memory provider nodes and a record store. It is
// safe for concurrent use.
type Network struct {
	mu       sync.Mutex
	nodes    []peer.ID
	keys     map[peer.ID]crypto.PrivKey
	shards   map[peer.ID]map[codec.ShardID][]byte
	down     map[peer.ID]bool
	records  map[string][]byte
	recErr   error
	lostAck  func(key string) error
	getErr   map[string]error
	putBytes int64
	puts     int
	deletes  int
	renewals int
	liars    map[peer.ID]bool
	recHook  func(op, key string, value []byte)
	stalled  map[peer.ID]chan struct{} // closed when the node answers again
	inFlight map[peer.ID]int
	peak     map[peer.ID]int
	groups   map[peer.ID]placement.Node
	reports  map[peer.ID][]karma.DeletedPart  // reports each node recorded
	holdings map[peer.ID][]shardproto.Holding // the latest holdings statement each node took
	// holdingsIn counts the entries of every statement each node was
	// sent; uncounting nodes answer as providers that vetted no node of
	// the account do.
	holdingsIn map[peer.ID]int
	uncounting map[peer.ID]bool
	doubt      atomic.Bool
}

// New returns a network of n provider nodes.
func New(n int) (*Network, error) {
	nw := &Network{shards: map[peer.ID]map[codec.ShardID][]byte{}, keys: map[peer.ID]crypto.PrivKey{}, down: map[peer.ID]bool{}, records: map[string][]byte{},
		stalled: map[peer.ID]chan struct{}{}, inFlight: map[peer.ID]int{}, peak: map[peer.ID]int{}}
	for range n {
		priv, pub, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			return nil, err
		}
		id, err := peer.IDFromPublicKey(pub)
		if err != nil {
			return nil, err
		}
		nw.nodes = append(nw.nodes, id)
		nw.keys[id] = priv
		nw.shards[id] = map[codec.ShardID][]byte{}
	}
	sort.Slice(nw.nodes, func(i, j int) bool { return nw.nodes[i] < nw.nodes[j] })
	return nw, nil
}

// Nodes returns the provider nodes.
func (n *Network) Nodes() []peer.ID {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]peer.ID(nil), n.nodes...)
}

// SetDown switches node p off (it answers nothing) or back on.
func (n *Network) SetDown(p peer.ID, down bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.down[p] = down
}

// Stall makes node p take every shard put, get and renewal and answer none
// (a holder that accepts streams and never replies): each waits until its
// context ends, then fails with the context's error. Stall(p, false) lets
// the waiting ones go on.
func (n *Network) Stall(p peer.ID, stall bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	ch, ok := n.stalled[p]
	switch {
	case stall && !ok:
		n.stalled[p] = make(chan struct{})
	case !stall && ok:
		close(ch)
		delete(n.stalled, p)
	}
}

// InFlight returns how many shard puts and gets node p is serving now,
// and the most it served at once.
func (n *Network) InFlight(p peer.ID) (now, peak int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.inFlight[p], n.peak[p]
}

// serve counts a shard put or get at node p while it runs, and holds it
// while p is stalled. The caller calls done when the request ends.
func (n *Network) serve(ctx context.Context, p peer.ID) (done func(), err error) {
	n.mu.Lock()
	n.inFlight[p]++
	n.peak[p] = max(n.peak[p], n.inFlight[p])
	stall := n.stalled[p]
	n.mu.Unlock()
	done = func() {
		n.mu.Lock()
		n.inFlight[p]--
		n.mu.Unlock()
	}
	if stall != nil {
		select {
		case <-stall:
		case <-ctx.Done():
			done()
			return nil, ctx.Err()
		}
	}
	return done, nil
}

// FailGetOnce makes the next Get of key fail with err.
func (n *Network) FailGetOnce(key string, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.getErr == nil {
		n.getErr = map[string]error{}
	}
	n.getErr[key] = err
}

// FailRecords makes every record Put and Get fail with err (nil: work).
func (n *Network) FailRecords(err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.recErr = err
}

// LoseRecordAnswers makes every record put whose key fail says a non-nil
// error store the record and then return that error, as a put whose
// answers were lost in the network does (nil fail: answer truly).
func (n *Network) LoseRecordAnswers(fail func(key string) error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.lostAck = fail
}

// Stats returns the shard puts the nodes accepted, their bytes, and the
// deletes.
func (n *Network) Stats() (puts int, bytes int64, deletes int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.puts, n.putBytes, n.deletes
}

// Held returns the number of shards held, over every node.
func (n *Network) Held() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for _, m := range n.shards {
		c += len(m)
	}
	return c
}

// Holders returns the nodes holding shard id, up or down.
func (n *Network) Holders(id codec.ShardID) []peer.ID {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []peer.ID
	for _, p := range n.nodes {
		if _, ok := n.shards[p][id]; ok {
			out = append(out, p)
		}
	}
	return out
}

// Drop removes shard id from every node (a holder that lost it).
func (n *Network) Drop(id codec.ShardID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, m := range n.shards {
		delete(m, id)
	}
}

// Providers returns the nodes that are up.
func (n *Network) Providers(ctx context.Context) ([]peer.ID, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []peer.ID
	for _, p := range n.nodes {
		if !n.down[p] {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("memnet: no provider node is up")
	}
	return out, nil
}

// SetGroups sets the placement groups (verified owner, network) the
// network reports for its nodes; nodes missing from g have none.
func (n *Network) SetGroups(g map[peer.ID]placement.Node) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.groups = maps.Clone(g)
}

// ProviderGroups returns the groups SetGroups set for nodes.
func (n *Network) ProviderGroups(nodes []peer.ID) []placement.Node {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]placement.Node, len(nodes))
	for i, p := range nodes {
		out[i] = n.groups[p]
	}
	return out
}

// OwnedCapacity reports no owned nodes.
func (n *Network) OwnedCapacity(ctx context.Context, owner peer.ID) (int64, int, error) {
	return 0, 0, nil
}

// Peers returns the number of nodes that are up.
func (n *Network) Peers() int {
	p, _ := n.Providers(context.Background())
	return len(p)
}

// Close does nothing.
func (n *Network) Close() error { return nil }

// Records returns the record store.
func (n *Network) Records() account.Records { return records{n} }

type records struct{ n *Network }

// SetRecordHook sets a function called with every record put, before it
// is stored (op "put"), and every record got, after it was read (op
// "get"); nil removes it. It runs outside the network's lock, so a test
// may block in it to order concurrent writers.
func (n *Network) SetRecordHook(h func(op, key string, value []byte)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.recHook = h
}

func (n *Network) hook() func(op, key string, value []byte) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.recHook
}

func (r records) Put(ctx context.Context, key string, value []byte) error {
	if h := r.n.hook(); h != nil {
		h("put", key, value)
	}
	r.n.mu.Lock()
	defer r.n.mu.Unlock()
	if r.n.recErr != nil {
		return r.n.recErr
	}
	r.n.records[key] = bytes.Clone(value)
	if r.n.lostAck != nil {
		return r.n.lostAck(key)
	}
	return nil
}

func (r records) Get(ctx context.Context, key string) ([]byte, error) {
	v, err := r.get(key)
	if h := r.n.hook(); h != nil && err == nil {
		h("get", key, v)
	}
	return v, err
}

func (r records) get(key string) ([]byte, error) {
	r.n.mu.Lock()
	defer r.n.mu.Unlock()
	if r.n.recErr != nil {
		return nil, r.n.recErr
	}
	if err := r.n.getErr[key]; err != nil {
		delete(r.n.getErr, key)
		return nil, err
	}
	v, ok := r.n.records[key]
	if !ok {
		return nil, account.ErrNotFound
	}
	return bytes.Clone(v), nil
}

// Shards returns the shard protocol of the network as seen by owner (nil:
// an anonymous reader, for tests that only fetch).
func (n *Network) Shards(owner crypto.PrivKey) *Shards {
	var o shardstore.Owner
	if owner != nil {
		o, _ = shardproto.OwnerOf(owner.GetPublic())
	}
	return &Shards{n: n, owner: o}
}

// Shards stores and fetches shards on the network's nodes, as the shard
// protocol client does.
type Shards struct {
	n     *Network
	owner shardstore.Owner
}

func (s *Shards) node(p peer.ID) (map[codec.ShardID][]byte, error) {
	m, ok := s.n.shards[p]
	if !ok {
		return nil, fmt.Errorf("memnet: no node %s", p)
	}
	if s.n.down[p] {
		return nil, ErrDown
	}
	return m, nil
}

// RepairReader is PutReader: the in-memory nodes have no caps.
func (s *Shards) RepairReader(ctx context.Context, p peer.ID, id codec.ShardID, size int64, r io.Reader, lease time.Time) (shardproto.Receipt, error) {
	return s.PutReader(ctx, p, id, size, r, lease)
}

// PutReader stores size bytes from r as shard id on node p, after checking
// they hash to id.
func (s *Shards) PutReader(ctx context.Context, p peer.ID, id codec.ShardID, size int64, r io.Reader, lease time.Time) (shardproto.Receipt, error) {
	done, err := s.n.serve(ctx, p)
	if err != nil {
		return shardproto.Receipt{}, err
	}
	defer done()
	data := make([]byte, size)
	if _, err := io.ReadFull(r, data); err != nil {
		return shardproto.Receipt{}, err
	}
	if blake3.Sum256(data) != id {
		return shardproto.Receipt{}, shardproto.ErrIntegrity
	}
	s.n.mu.Lock()
	defer s.n.mu.Unlock()
	m, err := s.node(p)
	if err != nil {
		return shardproto.Receipt{}, err
	}
	m[id] = data
	s.n.puts++
	s.n.putBytes += size
	return shardproto.Receipt{Holder: p, Shard: id, Size: size, Lease: lease, Issued: time.Now()}, nil
}

// Get returns shard id from node p.
func (s *Shards) Get(ctx context.Context, p peer.ID, id codec.ShardID) (io.ReadCloser, int64, error) {
	done, err := s.n.serve(ctx, p)
	if err != nil {
		return nil, 0, err
	}
	defer done()
	s.n.mu.Lock()
	defer s.n.mu.Unlock()
	m, err := s.node(p)
	if err != nil {
		return nil, 0, err
	}
	data, ok := m[id]
	if !ok {
		return nil, 0, shardproto.ErrNotFound
	}
	// Like the protocol client: bytes that do not hash to id fail.
	if blake3.Sum256(data) != id {
		return io.NopCloser(io.MultiReader(bytes.NewReader(data), errReader{shardproto.ErrIntegrity})), int64(len(data)), nil
	}
	return io.NopCloser(bytes.NewReader(bytes.Clone(data))), int64(len(data)), nil
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// Corrupt flips a byte of shard id on every node holding it.
func (n *Network) Corrupt(id codec.ShardID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, m := range n.shards {
		if d, ok := m[id]; ok && len(d) > 0 {
			d[len(d)-1] ^= 0xff
		}
	}
}

// Delete removes shard id from node p.
func (s *Shards) Delete(ctx context.Context, p peer.ID, id codec.ShardID) error {
	s.n.mu.Lock()
	defer s.n.mu.Unlock()
	m, err := s.node(p)
	if err != nil {
		return err
	}
	if _, ok := m[id]; !ok {
		return shardproto.ErrNotFound
	}
	delete(m, id)
	s.n.deletes++
	return nil
}

// RenewReceipts checks which of ids node p holds (this network keeps
// shards until they are deleted or dropped, so leases are not kept) and
// returns the others, and p's signed receipt for each MaxRenewIDs of ids,
// as the shard protocol's client does. A liar claims and signs for every
// shard asked about.
func (s *Shards) RenewReceipts(ctx context.Context, p peer.ID, ids []codec.ShardID, until time.Time) ([]codec.ShardID, []shardproto.Renewal, error) {
	// A stalled node holds renewals too, until it answers again or ctx ends.
	served, err := s.n.serve(ctx, p)
	if err != nil {
		return nil, nil, err
	}
	defer served()
	s.n.mu.Lock()
	defer s.n.mu.Unlock()
	m, err := s.node(p)
	if err != nil {
		return nil, nil, err
	}
	var missing []codec.ShardID
	var done []shardproto.Renewal
	for len(ids) > 0 {
		batch := ids[:min(len(ids), shardproto.MaxRenewIDs)]
		ids = ids[len(batch):]
		var renewed []codec.ShardID
		for _, id := range batch {
			if _, ok := m[id]; ok || s.n.liars[p] {
				renewed = append(renewed, id)
			} else {
				missing = append(missing, id)
			}
		}
		if !s.n.liars[p] {
			s.n.renewals += len(renewed)
		}
		rr := shardproto.RenewReceipt{Owner: s.owner, Until: until, Issued: time.Now()}
		rr.Root, rr.Count = shardproto.RenewRoot(renewed)
		if err := rr.Sign(s.n.keys[p]); err != nil {
			return missing, done, err
		}
		done = append(done, shardproto.Renewal{IDs: renewed, Receipt: rr})
	}
	return missing, done, nil
}

// Proof returns the given leaves of shard id from node p and p's signed
// answer, as the protocol client does: a shard p does not hold is a
// *shardproto.NotFoundError, and bytes that do not hash to id give proofs
// that do not verify, a *shardproto.BadProofError.
func (s *Shards) Proof(ctx context.Context, p peer.ID, id codec.ShardID, leaves []int64) ([][]byte, shardproto.ProofAnswer, error) {
	s.n.mu.Lock()
	defer s.n.mu.Unlock()
	m, err := s.node(p)
	if err != nil {
		return nil, shardproto.ProofAnswer{}, err
	}
	var nonce [32]byte
	rand.Read(nonce[:])
	data, ok := m[id]
	if !ok {
		a := shardproto.NotFoundAnswer{Owner: s.owner, Shard: id, Nonce: nonce, Issued: time.Now()}
		if err := a.Sign(s.n.keys[p]); err != nil {
			return nil, shardproto.ProofAnswer{}, err
		}
		return nil, shardproto.ProofAnswer{}, &shardproto.NotFoundError{Answer: a}
	}
	tree, _ := codec.Tree(data)
	size := int64(len(data))
	a := shardproto.ProofAnswer{Owner: s.owner, Shard: id, Nonce: nonce, Leaves: slices.Clone(leaves), Issued: time.Now()}
	for _, l := range leaves {
		off := l * codec.LeafSize
		if l < 0 || off >= size {
			return nil, shardproto.ProofAnswer{}, fmt.Errorf("memnet: leaf %d outside a %d-byte shard", l, size)
		}
		n := min(codec.LeafSize, size-off)
		start, end := codec.LeafSpan(off, n, size)
		proof, err := codec.Prove(tree, data[start:end], off, n)
		if err != nil {
			return nil, shardproto.ProofAnswer{}, err
		}
		a.Proofs = append(a.Proofs, proof)
	}
	if err := a.Sign(s.n.keys[p]); err != nil {
		return nil, shardproto.ProofAnswer{}, err
	}
	out, err := shardproto.CheckProofAnswer(a)
	if err != nil {
		return nil, a, &shardproto.BadProofError{Answer: a, Err: err}
	}
	return out, a, nil
}

// SetLiar makes node p claim, when renewing, to hold every shard asked
// about, and sign its renew receipt for them (a provider that receipted
// shards, then deleted them). Its proof requests still answer what it
// holds: a signed NotFound for what it dropped.
func (n *Network) SetLiar(p peer.ID, liar bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.liars == nil {
		n.liars = map[peer.ID]bool{}
	}
	n.liars[p] = liar
}

// Retain drops, on every node, every shard not in keep (as providers
// collect shards whose lease was not renewed), and returns how many.
func (n *Network) Retain(keep map[codec.ShardID]bool) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	dropped := 0
	for _, m := range n.shards {
		for id := range m {
			if !keep[id] {
				delete(m, id)
				dropped++
			}
		}
	}
	return dropped
}

// Renewals counts shard leases renewed.
func (n *Network) Renewals() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.renewals
}

// Holding returns how many of its shards node p holds.
func (n *Network) Holding(p peer.ID) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.shards[p])
}

// Wipe drops every shard node p holds (a provider that deleted what it
// receipted): it answers proof requests for them with a signed NotFound.
func (n *Network) Wipe(p peer.ID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.shards[p] = map[codec.ShardID][]byte{}
}

// RecordsSnapshot returns a copy of every record stored, by key.
func (n *Network) RecordsSnapshot() map[string][]byte {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make(map[string][]byte, len(n.records))
	for k, v := range n.records {
		out[k] = bytes.Clone(v)
	}
	return out
}

// DeleteRecords removes every record whose key starts with prefix (records
// the network forgot: expired, or lost with the nodes holding them), and
// returns how many.
func (n *Network) DeleteRecords(prefix string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for k := range n.records {
		if strings.HasPrefix(k, prefix) {
			delete(n.records, k)
			c++
		}
	}
	return c
}

// Report takes a report at node p as a provider watching every node does:
// it records it when it is evidence (karma.CheckDeletedPart with
// shardproto.KarmaEvidence, by the real clock, as memnet signs) and
// refuses it otherwise.
func (s *Shards) Report(ctx context.Context, p peer.ID, r karma.DeletedPart) (string, error) {
	s.n.mu.Lock()
	defer s.n.mu.Unlock()
	if _, err := s.node(p); err != nil {
		return "", err
	}
	if _, err := karma.CheckDeletedPart(r, shardproto.KarmaEvidence{}, time.Now()); err != nil {
		return "", fmt.Errorf("memnet: %w: %v", shardstore.ErrInvalid, err)
	}
	if s.n.reports == nil {
		s.n.reports = map[peer.ID][]karma.DeletedPart{}
	}
	s.n.reports[p] = append(s.n.reports[p], r)
	return "recorded", nil
}

// Holdings takes account's statement of what holders keep for it at node
// p, as a provider that vetted the account does: it keeps the latest.
func (s *Shards) Holdings(ctx context.Context, p peer.ID, hs []shardproto.Holding) (string, error) {
	s.n.mu.Lock()
	defer s.n.mu.Unlock()
	if _, err := s.node(p); err != nil {
		return "", err
	}
	if s.n.holdingsIn == nil {
		s.n.holdingsIn = map[peer.ID]int{}
	}
	s.n.holdingsIn[p] += len(hs)
	if s.n.uncounting[p] {
		return "not counted: the account is vetting here; statements count once a node of it is vetted here", nil
	}
	if s.n.holdings == nil {
		s.n.holdings = map[peer.ID][]shardproto.Holding{}
	}
	s.n.holdings[p] = slices.Clone(hs)
	return fmt.Sprintf("counted %d of %d", len(hs), len(hs)), nil
}

// SetClockInDoubt says whether the network finds the clock of the
// sessions using it in doubt (more than a month from its own), as a real
// network's clock comparison does.
func (n *Network) SetClockInDoubt(on bool) { n.doubt.Store(on) }

// ClockInDoubt reports what SetClockInDoubt set.
func (n *Network) ClockInDoubt() bool { return n.doubt.Load() }

// SetUncounting makes node p answer holdings statements as a provider
// that vetted no node of the account: not counted, and not kept.
func (n *Network) SetUncounting(p peer.ID, on bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.uncounting == nil {
		n.uncounting = map[peer.ID]bool{}
	}
	n.uncounting[p] = on
}

// HoldingsReceived returns how many holdings entries node p was sent in
// all, counted or not.
func (n *Network) HoldingsReceived(p peer.ID) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.holdingsIn[p]
}

// Holdings returns the latest statement of holdings node p took.
func (n *Network) Holdings(p peer.ID) []shardproto.Holding {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.holdings[p])
}

// Reports returns the reports node p recorded.
func (n *Network) Reports(p peer.ID) []karma.DeletedPart {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.reports[p])
}
