package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	"github.com/libp2p/go-libp2p/core/routing"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/record"
)

// ValuePutter stores a value in the DHT; *dht.IpfsDHT implements it.
type ValuePutter interface {
	PutValue(ctx context.Context, key string, value []byte, opts ...routing.Option) error
}

// putTimeout bounds the re-put of one record.
const putTimeout = time.Minute

// Defaults of the republisher's options.
const (
	// DefaultRepublishParallel is how many records a round re-puts at once.
	DefaultRepublishParallel = 8
	// DefaultRepublishPage is how many datastore keys a round reads at a
	// time.
	DefaultRepublishPage = 4096
)

// Republisher re-puts records so they outlive kad-dht's age limit and their
// owners' absence: every round it re-puts every record held in the DHT's
// datastore that is still valid (signature, expiry, high-water mark), plus
// the records this node owns (see Own) even if its own store lost them.
// A round streams the datastore a page of keys at a time and re-puts with
// bounded parallelism, so its memory does not grow with the store.
type Republisher struct {
	putter    ValuePutter
	store     ds.Datastore
	validator *record.Validator
	interval  time.Duration
	log       *slog.Logger
	parallel  int
	page      int
	owned     *ownedRecords
}

// RepublishOption configures a Republisher.
type RepublishOption func(*Republisher) error

// RepublishParallel sets how many records a round re-puts at once.
func RepublishParallel(n int) RepublishOption {
	return func(r *Republisher) error {
		if n < 1 {
			return fmt.Errorf("%w: republish parallelism %d", ErrConfig, n)
		}
		r.parallel = n
		return nil
	}
}

// RepublishPage sets how many datastore keys a round reads at a time.
func RepublishPage(n int) RepublishOption {
	return func(r *Republisher) error {
		if n < 1 {
			return fmt.Errorf("%w: republish page of %d keys", ErrConfig, n)
		}
		r.page = n
		return nil
	}
}

// withOwned shares the node's set of owned records with its record store.
func withOwned(o *ownedRecords) RepublishOption {
	return func(r *Republisher) error {
		r.owned = o
		return nil
	}
}

// RepublishStats counts the outcome of one round.
type RepublishStats struct {
	// Held is the number of valid records found in the datastore.
	Held int
	// Skipped counts stored entries that were invalid or corrupt, Expired
	// those whose signed expiry had passed, Deleted the expired ones the
	// datastore let the round delete (the node's record store does, for
	// kinds whose marks are pruned, and never races a new record).
	Skipped, Expired, Deleted int
	// Put counts records re-put without error; Failed the others.
	Put, Failed int
	// Pages is the number of datastore pages read; MaxInFlight the most
	// re-puts that ran at once.
	Pages, MaxInFlight int
	// Took is how long the round ran.
	Took time.Duration
}

// NewRepublisher returns a republisher that reads records from store (the
// datastore handed to the DHT), checks them with v and re-puts them through
// p every interval (with ±10% jitter so nodes do not re-put in lockstep).
func NewRepublisher(p ValuePutter, store ds.Datastore, v *record.Validator, interval time.Duration, log *slog.Logger, opts ...RepublishOption) (*Republisher, error) {
	r := &Republisher{
		putter: p, store: store, validator: v, interval: interval, log: log,
		parallel: DefaultRepublishParallel, page: DefaultRepublishPage,
	}
	for _, o := range opts {
		if err := o(r); err != nil {
			return nil, err
		}
	}
	if r.owned == nil {
		r.owned = newOwnedRecords()
	}
	return r, nil
}

// Own adds a record this node published to the set it re-puts every round,
// replacing an older value for the same key. It is dropped once it expires.
func (r *Republisher) Own(key string, value []byte) { r.owned.set(key, value) }

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
		args := []any{"held", st.Held, "put", st.Put, "failed", st.Failed, "skipped", st.Skipped,
			"expired", st.Expired, "deleted", st.Deleted, "pages", st.Pages, "max_in_flight", st.MaxInFlight,
			"took", st.Took.Round(time.Millisecond)}
		if s, ok := r.store.(interface{ Stats() record.QuotaStats }); ok {
			q := s.Stats()
			args = append(args, "stored", q.Keys, "refused_since_start", q.Refused)
		}
		r.log.Info("republished records", args...)
	}
}

// expiredDropper is the ability to delete an expired record only if its
// entry still holds the bytes read, where the store's policy allows; the
// node's recordStore has it.
type expiredDropper interface {
	DropExpired(ctx context.Context, k ds.Key, seen []byte) (bool, error)
}

// round is the shared state of one RepublishOnce.
type round struct {
	mu       sync.Mutex
	st       RepublishStats
	owned    map[string][]byte // owned records not yet found in the store
	inFlight atomic.Int64
}

func (rd *round) count(f func(*RepublishStats)) {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	f(&rd.st)
}

// RepublishOnce runs one round now and reports what it did. It reads the
// datastore a page of keys at a time (ordered by key, each page a new
// query) and re-puts at most the configured number of records at once; an
// error is returned only when the datastore cannot be read or ctx ends.
func (r *Republisher) RepublishOnce(ctx context.Context) (RepublishStats, error) {
	start := time.Now()
	rd := &round{owned: r.ownedValid()}
	g := &errgroup.Group{}
	g.SetLimit(r.parallel)

	for offset := 0; ; {
		keys, err := r.pageAt(ctx, offset)
		if err != nil {
			return rd.st, err
		}
		rd.st.Pages++
		var deleted atomic.Int64
		for _, k := range keys {
			if ctx.Err() != nil {
				break
			}
			g.Go(func() error {
				if r.one(ctx, rd, k) {
					deleted.Add(1)
				}
				return nil
			})
		}
		// Waiting for the page keeps the next offset exact: entries this
		// round deleted no longer count.
		_ = g.Wait()
		if err := ctx.Err(); err != nil {
			return rd.st, err
		}
		if len(keys) < r.page {
			break
		}
		offset += len(keys) - int(deleted.Load())
	}

	for key, value := range rd.owned {
		if ctx.Err() != nil {
			break
		}
		g.Go(func() error {
			r.put(ctx, rd, key, value)
			return nil
		})
	}
	_ = g.Wait()
	rd.st.Took = time.Since(start)
	return rd.st, ctx.Err()
}

// ownedValid returns the owned records that still validate, and forgets
// the expired and superseded ones.
func (r *Republisher) ownedValid() map[string][]byte {
	owned := r.owned.snapshot()
	for key, value := range owned {
		if _, err := r.validator.Check(key, value); err != nil {
			if errors.Is(err, record.ErrExpired) || errors.Is(err, record.ErrStale) {
				r.owned.drop(key, value)
			}
			delete(owned, key)
		}
	}
	return owned
}

// pageAt returns up to r.page record keys of the datastore from offset on,
// in key order, and closes the query before returning.
func (r *Republisher) pageAt(ctx context.Context, offset int) ([]ds.Key, error) {
	res, err := r.store.Query(ctx, dsq.Query{
		Prefix:   "/" + record.Namespace,
		KeysOnly: true,
		Orders:   []dsq.Order{dsq.OrderByKey{}},
		Offset:   offset,
		Limit:    r.page,
	})
	if err != nil {
		return nil, fmt.Errorf("node: republish: query datastore: %w", err)
	}
	defer res.Close()
	keys := make([]ds.Key, 0, r.page)
	for e := range res.Next() {
		if e.Error != nil {
			return nil, fmt.Errorf("node: republish: read datastore: %w", e.Error)
		}
		keys = append(keys, ds.RawKey(e.Key))
	}
	return keys, nil
}

// one handles the stored entry at k: it re-puts a valid record and deletes
// an expired one, and reports whether it deleted the entry. kad-dht stores
// each record under /<namespace>/<base32 key> as a protobuf carrying the
// full key.
func (r *Republisher) one(ctx context.Context, rd *round, k ds.Key) bool {
	raw, err := r.store.Get(ctx, k)
	if errors.Is(err, ds.ErrNotFound) {
		return false
	}
	if err != nil {
		rd.count(func(st *RepublishStats) { st.Skipped++ })
		r.log.Debug("republish: read failed", "dskey", k.String(), "err", err)
		return false
	}
	var rec recpb.Record
	if err := proto.Unmarshal(raw, &rec); err != nil || recordDsKey(string(rec.GetKey())) != k {
		rd.count(func(st *RepublishStats) { st.Skipped++ })
		return false
	}
	key := string(rec.GetKey())
	if _, err := r.validator.Check(key, rec.GetValue()); err != nil {
		if !errors.Is(err, record.ErrExpired) {
			rd.count(func(st *RepublishStats) { st.Skipped++ })
			return false
		}
		deleted := false
		if d, ok := r.store.(expiredDropper); ok {
			deleted, err = d.DropExpired(ctx, k, raw)
			if err != nil {
				r.log.Debug("republish: delete expired record failed", "key", key, "err", err)
			}
		}
		rd.count(func(st *RepublishStats) {
			st.Expired++
			if deleted {
				st.Deleted++
			}
		})
		return deleted
	}
	rd.count(func(st *RepublishStats) {
		st.Held++
		delete(rd.owned, key)
	})
	r.put(ctx, rd, key, rec.GetValue())
	return false
}

// put re-puts one record and counts the outcome.
func (r *Republisher) put(ctx context.Context, rd *round, key string, value []byte) {
	n := int(rd.inFlight.Add(1))
	defer rd.inFlight.Add(-1)
	rd.count(func(st *RepublishStats) { st.MaxInFlight = max(st.MaxInFlight, n) })
	pctx, cancel := context.WithTimeout(ctx, putTimeout)
	err := r.putter.PutValue(pctx, key, value)
	cancel()
	if err != nil {
		rd.count(func(st *RepublishStats) { st.Failed++ })
		r.log.Debug("republish failed", "key", key, "err", err)
		return
	}
	rd.count(func(st *RepublishStats) { st.Put++ })
}
