package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	"github.com/libp2p/go-libp2p/core/routing"
	"google.golang.org/protobuf/proto"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/record"
)

// ValuePutter stores a value in the DHT; *dht.IpfsDHT implements it.
type ValuePutter interface {
	PutValue(ctx context.Context, key string, value []byte, opts ...routing.Option) error
}

// putTimeout bounds the re-put of one record.
const putTimeout = time.Minute

// Republisher re-puts records so they outlive kad-dht's age limit and their
// owners' absence: every round it re-puts every record held in the DHT's
// datastore that is still valid (signature, expiry, high-water mark), plus
// the records this node owns (see Own) even if its own store lost them.
type Republisher struct {
	putter    ValuePutter
	store     ds.Datastore
	validator *record.Validator
	interval  time.Duration
	log       *slog.Logger

	mu    sync.Mutex
	owned map[string][]byte
}

// RepublishStats counts the outcome of one round.
type RepublishStats struct {
	// Held is the number of valid records found in the datastore.
	Held int
	// Skipped counts stored entries that were expired, invalid or corrupt.
	Skipped int
	// Put counts records re-put without error; Failed the others.
	Put, Failed int
}

// NewRepublisher returns a republisher that reads records from store (the
// datastore handed to the DHT), checks them with v and re-puts them through
// p every interval (with ±10% jitter so nodes do not re-put in lockstep).
func NewRepublisher(p ValuePutter, store ds.Datastore, v *record.Validator, interval time.Duration, log *slog.Logger) *Republisher {
	return &Republisher{putter: p, store: store, validator: v, interval: interval, log: log, owned: map[string][]byte{}}
}

// Own adds a record this node published to the set it re-puts every round,
// replacing an older value for the same key. It is dropped once it expires.
func (r *Republisher) Own(key string, value []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.owned[key] = value
}

// Run re-puts every interval until ctx is cancelled. It returns at once if
// the interval is not positive.
func (r *Republisher) Run(ctx context.Context) {
	if r.interval <= 0 {
		return
	}
	for {
		jitter := time.Duration((rand.Float64()*0.2 - 0.1) * float64(r.interval))
		t := time.NewTimer(r.interval + jitter)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		st, err := r.RepublishOnce(ctx)
		if err != nil && ctx.Err() == nil {
			r.log.Warn("republish round failed", "err", err)
			continue
		}
		r.log.Debug("republished records", "held", st.Held, "put", st.Put, "failed", st.Failed, "skipped", st.Skipped)
	}
}

// RepublishOnce runs one round now and reports what it did. Records are
// re-put one at a time so a round never floods the network; an error is
// returned only when the datastore cannot be read or ctx ends.
func (r *Republisher) RepublishOnce(ctx context.Context) (RepublishStats, error) {
	var st RepublishStats
	recs, skipped, err := r.held(ctx)
	if err != nil {
		return st, err
	}
	st.Skipped = skipped
	st.Held = len(recs)

	r.mu.Lock()
	for key, value := range r.owned {
		if _, err := r.validator.Check(key, value); err != nil {
			if errors.Is(err, record.ErrExpired) || errors.Is(err, record.ErrStale) {
				delete(r.owned, key)
			}
			continue
		}
		if _, ok := recs[key]; !ok {
			recs[key] = value
		}
	}
	r.mu.Unlock()

	keys := make([]string, 0, len(recs))
	for k := range recs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		if ctx.Err() != nil {
			return st, ctx.Err()
		}
		pctx, cancel := context.WithTimeout(ctx, putTimeout)
		err := r.putter.PutValue(pctx, key, recs[key])
		cancel()
		if err != nil {
			st.Failed++
			r.log.Debug("republish failed", "key", key, "err", err)
			continue
		}
		st.Put++
	}
	return st, nil
}

// held reads every Jellyfish record in the datastore and keeps the valid
// ones, keyed by DHT key. kad-dht stores each record under
// /<namespace>/<base32 key> as a protobuf carrying the full key.
func (r *Republisher) held(ctx context.Context) (map[string][]byte, int, error) {
	res, err := r.store.Query(ctx, dsq.Query{Prefix: "/" + record.Namespace})
	if err != nil {
		return nil, 0, fmt.Errorf("node: republish: query datastore: %w", err)
	}
	defer res.Close()
	recs := map[string][]byte{}
	skipped := 0
	for e := range res.Next() {
		if e.Error != nil {
			return nil, 0, fmt.Errorf("node: republish: read datastore: %w", e.Error)
		}
		var rec recpb.Record
		if err := proto.Unmarshal(e.Value, &rec); err != nil {
			skipped++
			continue
		}
		key := string(rec.GetKey())
		if _, err := r.validator.Check(key, rec.GetValue()); err != nil {
			skipped++
			continue
		}
		recs[key] = rec.GetValue()
	}
	return recs, skipped, nil
}
