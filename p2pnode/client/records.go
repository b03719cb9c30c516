package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	kb "github.com/libp2p/go-libp2p-kbucket"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/node"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/record"
)

// Defaults of the records adapter.
const (
	// DefaultGetTimeout bounds one record lookup.
	DefaultGetTimeout = 20 * time.Second
	// DefaultPutTimeout bounds one confirmed put.
	DefaultPutTimeout = 45 * time.Second
	// MaxConfirmations is how many remote peers must confirm a put when
	// the routing table holds at least that many.
	MaxConfirmations = 3
)

// Records is account.Records on a node's DHT. Put is a confirmed put: it
// succeeds only when min(MaxConfirmations, peers in the routing table)
// remote peers serve the record (or a newer one). Get is a quorum read:
// the best valid record any of the peers closest to the key serves. Both
// map network conditions to account's sentinels: no peers, timeouts,
// unconfirmed puts and lookups too few peers answered match
// account.ErrUnreachable; only a key that the same number of the closest
// peers answered for without a record matches account.ErrNotFound.
// Neither waits longer than its timeout, whatever ctx says.
type Records struct {
	n          *node.Node
	getTimeout time.Duration
	putTimeout time.Duration
	// widest is the largest routing table this adapter has seen: Get's
	// quorum does not shrink when peers drop out of the table.
	widest atomic.Int64
}

var (
	_ account.Records    = (*Records)(nil)
	_ account.MarkReader = (*Records)(nil)
)

// NodeRecords returns the account.Records adapter of n with the default
// timeouts.
func NodeRecords(n *node.Node) *Records {
	return &Records{n: n, getTimeout: DefaultGetTimeout, putTimeout: DefaultPutTimeout}
}

// peers returns the routing table size, or ErrUnreachable when it is empty.
func (r *Records) peers(op, key string) (int, error) {
	size := r.n.DHT().RoutingTable().Size()
	for w := r.widest.Load(); int64(size) > w && !r.widest.CompareAndSwap(w, int64(size)); w = r.widest.Load() {
	}
	if size == 0 {
		return 0, fmt.Errorf("client: %s %q: %w: no peers in the routing table", op, key, account.ErrUnreachable)
	}
	return size, nil
}

// Put stores value at key and waits for remote confirmation.
func (r *Records) Put(ctx context.Context, key string, value []byte) error {
	size, err := r.peers("put", key)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, r.putTimeout)
	defer cancel()
	want := min(MaxConfirmations, size)
	got, err := r.n.PutRecordConfirmed(ctx, key, value, want)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, node.ErrNotConfirmed), isNetwork(err):
		return fmt.Errorf("client: put %q: %w: %d of %d confirmations: %w", key, account.ErrUnreachable, got, want, err)
	}
	return fmt.Errorf("client: put %q: %w", key, err)
}

// ErrTooFewAnswers is returned by Get (wrapped, together with
// account.ErrUnreachable) when no record was found but fewer of the peers
// closest to the key answered than a "not found" needs. The record may
// well be there, held by the peers that did not answer: callers must treat
// it as "unknown", never as "absent".
var ErrTooFewAnswers = errors.New("client: too few of the peers closest to the key answered")

// StaleError is Get's error when the only records the peers serve are
// older than this node has seen (its high-water mark): it matches
// record.ErrStale, and Value is the best of those records. A caller that
// itself signed the newer record and lost it (a process killed between
// signing and storing) may go on from Value; anyone else must treat it as
// a rollback.
type StaleError struct {
	Key             string
	Value           []byte
	Stale, Answered int
	// Seen is this node's high-water mark of Key: a record put again
	// must have a sequence number at least this high.
	Seen uint64
}

// SeenSeq returns Seen and StaleRecord returns Value; callers outside
// this package match them with errors.As on an interface, without
// importing the client.
func (e *StaleError) SeenSeq() uint64 { return e.Seen }

// StaleRecord returns Value.
func (e *StaleError) StaleRecord() []byte { return e.Value }

func (e *StaleError) Error() string {
	return fmt.Sprintf("client: get %q: %v: %d of %d peers answering serve only records older than this node has seen", e.Key, record.ErrStale, e.Stale, e.Answered)
}

func (e *StaleError) Unwrap() error { return record.ErrStale }

// Get returns the best valid record at key: it asks every peer closest to
// key (node.ReadRecord) and takes the best answer by the validator's
// Select rule, so a peer serving an older record, or none, cannot hide a
// newer one that another peer serves. It answers "not found"
// (account.ErrNotFound) only when at least the quorum, min(MaxConfirmations,
// the largest routing table this adapter has seen), of the peers closest
// to the key answered without a valid record (the routing table drops
// peers as their connections go, and a quorum that shrank with it would
// let the two peers still reachable stand for the six that are not); fewer answers give ErrTooFewAnswers. When the only records
// served are older than this node has seen (its high-water mark), the
// error is a *StaleError. A record a peer served is returned however few
// peers answered: it is signed and at least as new as anything this node
// saw, though with few answers a newer one may exist. This node's own
// stored copy alone is not an answer: returned only when a quorum of
// peers answered without anything better, else ErrTooFewAnswers (a lookup
// cut short must not pass off what this node kept as the newest).
func (r *Records) Get(ctx context.Context, key string) ([]byte, error) {
	if _, err := r.peers("get", key); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, r.getTimeout)
	defer cancel()
	quorum := int(min(MaxConfirmations, r.widest.Load()))
	rd, err := r.n.ReadRecord(ctx, key, quorum)
	switch {
	case rd.Value != nil && (rd.FromPeers > 0 || rd.Answered >= quorum):
		return rd.Value, nil
	case rd.Value == nil && rd.Stale > 0:
		seen, _ := r.n.Mark(key)
		return nil, &StaleError{Key: key, Value: rd.StaleValue, Stale: rd.Stale, Answered: rd.Answered, Seen: seen}
	case rd.Answered >= quorum:
		return nil, fmt.Errorf("client: get %q: %w", key, account.ErrNotFound)
	case err == nil || isNetwork(err):
		return nil, fmt.Errorf("client: get %q: %w: %w: %d of %d asked answered, %d needed to tell that there is none", key, account.ErrUnreachable, ErrTooFewAnswers, rd.Answered, rd.Asked, quorum)
	}
	return nil, fmt.Errorf("client: get %q: %w", key, err)
}

// Mark returns the high-water mark the network holds for key: the highest
// sequence number that at least min(MaxConfirmations, peers answering) of
// the peers closest to key report having seen in a valid record there —
// so fewer liars than that cannot raise it — or this node's own mark if
// that is higher (its own validator checked that record). Marks outlive
// records: a key whose record expired keeps its mark. No peer answering
// matches account.ErrUnreachable.
func (r *Records) Mark(ctx context.Context, key string) (uint64, error) {
	if _, err := r.peers("mark", key); err != nil {
		return 0, err
	}
	own, err := r.n.Mark(key)
	if err != nil {
		return 0, fmt.Errorf("client: mark %q: %w", key, err)
	}
	ctx, cancel := context.WithTimeout(ctx, r.getTimeout)
	defer cancel()
	marks, err := r.n.PeerMarks(ctx, key)
	if len(marks) == 0 {
		if err == nil {
			err = errors.New("no peer answered")
		}
		return 0, fmt.Errorf("client: mark %q: %w: %w", key, account.ErrUnreachable, err)
	}
	return max(own, QuorumMark(marks, MaxConfirmations)), nil
}

// QuorumMark returns the highest mark at least min(quorum, len(marks)) of
// marks reach: the quorum-th highest (0 for no marks).
func QuorumMark(marks map[peer.ID]uint64, quorum int) uint64 {
	if len(marks) == 0 || quorum < 1 {
		return 0
	}
	all := make([]uint64, 0, len(marks))
	for _, m := range marks {
		all = append(all, m)
	}
	slices.Sort(all)
	slices.Reverse(all)
	return all[min(quorum, len(all))-1]
}

// isNetwork reports errors that mean the network did not answer in time.
func isNetwork(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.Is(err, node.ErrNoPeersReachable) ||
		// kad-dht's "failed to find any peer in table": the table emptied
		// since peers() looked.
		errors.Is(err, kb.ErrLookupFailure)
}
