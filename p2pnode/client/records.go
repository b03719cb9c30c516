package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	kb "github.com/libp2p/go-libp2p-kbucket"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/node"
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
// remote peers serve the record (or a newer one). Get returns the best
// valid record. Both map network conditions to account's sentinels: no
// peers, timeouts and unconfirmed puts match account.ErrUnreachable, a key
// nobody holds matches account.ErrNotFound. Neither waits longer than its
// timeout, whatever ctx says.
type Records struct {
	n          *node.Node
	getTimeout time.Duration
	putTimeout time.Duration
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

// Get returns the best valid record at key.
func (r *Records) Get(ctx context.Context, key string) ([]byte, error) {
	if _, err := r.peers("get", key); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, r.getTimeout)
	defer cancel()
	_, value, err := r.n.GetRecord(ctx, key)
	switch {
	case err == nil:
		return value, nil
	case errors.Is(err, routing.ErrNotFound) && len(r.n.Host().Network().Peers()) == 0:
		// kad-dht says "not found" also when no peer answered at all; a
		// lookup that reached anyone leaves a connection behind.
		return nil, fmt.Errorf("client: get %q: %w: no peer answered", key, account.ErrUnreachable)
	case errors.Is(err, routing.ErrNotFound):
		return nil, fmt.Errorf("client: get %q: %w", key, account.ErrNotFound)
	case isNetwork(err):
		return nil, fmt.Errorf("client: get %q: %w: %w", key, account.ErrUnreachable, err)
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
