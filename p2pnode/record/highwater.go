package record

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
	"github.com/multiformats/go-base32"
)

// HighWater remembers, per DHT key, the highest sequence number seen in a
// valid record. Implementations must be safe for concurrent use and must
// never lower a mark except by forgetting it (see DatastoreHighWater.Prune).
type HighWater interface {
	// Seen returns the mark for key, 0 if none.
	Seen(key string) (uint64, error)
	// Observe raises the mark for key to seq if seq is higher. A bounded
	// store may decline to keep a mark for a key it has none for; it then
	// returns nil, and Seen keeps answering 0.
	Observe(key string, seq uint64) error
}

// highWaterTimeout bounds one datastore operation. librecord.Validator has
// no context, so the store makes its own.
const highWaterTimeout = 10 * time.Second

// Mark values: the sequence number, then when the mark was last raised, in
// Unix seconds, both big-endian. Values of markSizeV0 bytes, written before
// marks carried a time, hold only the sequence number.
const (
	markSize   = 16
	markSizeV0 = 8
)

// MarkPolicy bounds and ages a DatastoreHighWater.
type MarkPolicy struct {
	// Scopes tell each key's kind and publisher. Nil counts nothing,
	// limits nothing and prunes nothing.
	Scopes *Scopes
	// Limits bound the marks kept. Observe keeps no mark for a new key
	// that would pass one of them.
	Limits Limits
	// Admit, if set, is asked before a key gets its first mark; false
	// keeps none. A node keeps marks only for records it could store, so
	// a flood it refuses leaves no marks behind.
	Admit func(key string, s Scope) bool
	// Retain is how long after it was last raised Prune keeps the mark of
	// a kind without KeepMarks. Zero or less keeps every mark.
	Retain time.Duration
	// Clock stamps marks and tells Prune the time; nil means time.Now.
	Clock Clock
}

// DatastoreHighWater keeps high-water marks in a datastore under a prefix,
// one value per key (see markSize), so they survive restarts. Hot marks are
// cached in memory. With a MarkPolicy it counts its marks per Scope, keeps
// them within Limits and prunes those that protect nothing any more.
type DatastoreHighWater struct {
	store  ds.Datastore
	prefix ds.Key
	policy MarkPolicy
	quota  *Quota // nil without policy.Scopes

	mu    sync.Mutex
	cache map[string]uint64
}

var _ HighWater = (*DatastoreHighWater)(nil)

// maxCachedMarks bounds the in-memory cache; past it the cache is dropped
// and refilled from the datastore.
const maxCachedMarks = 1 << 16

// NewDatastoreHighWater stores marks in store below prefix (for example
// "/jf-hwm"), with no limit and no pruning. The caller owns store and
// closes it after the last use.
func NewDatastoreHighWater(store ds.Datastore, prefix string) *DatastoreHighWater {
	h, _ := OpenDatastoreHighWater(context.Background(), store, prefix, MarkPolicy{})
	return h
}

// OpenDatastoreHighWater is NewDatastoreHighWater under policy p. When p
// has Scopes it counts the marks already stored, one datastore scan of
// keys only, so a store that grew past p.Limits under an older version
// keeps its marks and takes new keys again once below them.
func OpenDatastoreHighWater(ctx context.Context, store ds.Datastore, prefix string, p MarkPolicy) (*DatastoreHighWater, error) {
	if p.Clock == nil {
		p.Clock = time.Now
	}
	h := &DatastoreHighWater{store: store, prefix: ds.NewKey(prefix), policy: p, cache: map[string]uint64{}}
	if p.Scopes == nil {
		return h, nil
	}
	h.quota = NewQuota(p.Limits)
	res, err := store.Query(ctx, dsq.Query{Prefix: h.prefix.String(), KeysOnly: true})
	if err != nil {
		return nil, fmt.Errorf("record: count high-water marks: %w", err)
	}
	defer res.Close()
	for e := range res.Next() {
		if e.Error != nil {
			return nil, fmt.Errorf("record: count high-water marks: %w", e.Error)
		}
		h.quota.Add(h.scopeOfStored(e.Key))
	}
	return h, nil
}

func (h *DatastoreHighWater) dsKey(key string) ds.Key {
	return h.prefix.ChildString(base32.RawStdEncoding.EncodeToString([]byte(key)))
}

// keyOf returns the DHT key of a stored mark's datastore key.
func (h *DatastoreHighWater) keyOf(dsKey string) (string, bool) {
	enc, ok := strings.CutPrefix(dsKey, h.prefix.String()+"/")
	if !ok {
		return "", false
	}
	key, err := base32.RawStdEncoding.DecodeString(enc)
	if err != nil {
		return "", false
	}
	return string(key), true
}

// scopeOfStored returns the scope a stored mark counts in; one whose key
// does not parse (none should exist) counts in a kind of its own and is
// kept.
func (h *DatastoreHighWater) scopeOfStored(dsKey string) Scope {
	if key, ok := h.keyOf(dsKey); ok {
		if s, err := h.policy.Scopes.Scope(key); err == nil {
			return s
		}
	}
	return Scope{KeepMarks: true}
}

// parseMark decodes a stored mark; stamped is false for a mark written
// before marks carried a time.
func parseMark(buf []byte) (seq uint64, raised time.Time, stamped bool, err error) {
	switch len(buf) {
	case markSize:
		return binary.BigEndian.Uint64(buf), time.Unix(int64(binary.BigEndian.Uint64(buf[8:])), 0), true, nil
	case markSizeV0:
		return binary.BigEndian.Uint64(buf), time.Time{}, false, nil
	}
	return 0, time.Time{}, false, fmt.Errorf("record: high-water mark of %d bytes: %w", len(buf), ErrMalformed)
}

func encodeMark(seq uint64, raised time.Time) []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, markSize), seq)
	return binary.BigEndian.AppendUint64(b, uint64(raised.Unix()))
}

// Seen implements HighWater.
func (h *DatastoreHighWater) Seen(key string) (uint64, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seenLocked(key)
}

func (h *DatastoreHighWater) seenLocked(key string) (uint64, error) {
	if seq, ok := h.cache[key]; ok {
		return seq, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), highWaterTimeout)
	defer cancel()
	buf, err := h.store.Get(ctx, h.dsKey(key))
	if errors.Is(err, ds.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("record: read high-water mark: %w", err)
	}
	seq, _, _, err := parseMark(buf)
	if err != nil {
		return 0, err
	}
	h.remember(key, seq)
	return seq, nil
}

func (h *DatastoreHighWater) remember(key string, seq uint64) {
	if len(h.cache) >= maxCachedMarks {
		clear(h.cache)
	}
	h.cache[key] = seq
}

// Observe implements HighWater. The mark is written to the datastore before
// it is cached, so a failed write leaves no mark that a restart would lose.
// Under a MarkPolicy, a key without a mark gets one only if policy.Admit
// allows it and no limit is reached; otherwise the refusal is counted and
// Observe returns nil.
func (h *DatastoreHighWater) Observe(key string, seq uint64) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	cur, err := h.seenLocked(key)
	if err != nil {
		return err
	}
	if seq <= cur {
		return nil
	}
	// Marks are only ever written above 0, so cur == 0 means no mark.
	var counted *Scope
	if cur == 0 && h.quota != nil {
		s, err := h.policy.Scopes.Scope(key)
		if err != nil {
			return err
		}
		if h.policy.Admit != nil && !h.policy.Admit(key, s) {
			h.quota.Refuse(s)
			return nil
		}
		if h.quota.Admit(s) != nil {
			return nil
		}
		counted = &s
	}
	ctx, cancel := context.WithTimeout(context.Background(), highWaterTimeout)
	defer cancel()
	if err := h.store.Put(ctx, h.dsKey(key), encodeMark(seq, h.policy.Clock())); err != nil {
		if counted != nil {
			h.quota.Remove(*counted)
		}
		return fmt.Errorf("record: write high-water mark: %w", err)
	}
	h.remember(key, seq)
	return nil
}

// Stats counts the marks kept and the new keys refused a mark since the
// store was opened; zero without MarkPolicy.Scopes.
func (h *DatastoreHighWater) Stats() QuotaStats {
	if h.quota == nil {
		return QuotaStats{}
	}
	return h.quota.Stats()
}

// PruneStats is what one Prune did.
type PruneStats struct {
	// Kept counts the marks left in place, Pruned those deleted.
	Kept, Pruned int
	// Stamped counts marks without a time (written by an earlier version)
	// that were given the current time, so they are pruned Retain later.
	Stamped int
}

// Prune deletes every mark that protects nothing any more: a mark of a
// kind without KeepMarks, last raised more than policy.Retain ago. By then
// every record with a lower sequence number has expired (an honest owner
// signs them before the one that raised the mark, at most the maximum
// lifetime ahead), so a replay fails its expiry check without the mark.
// Marks of kinds that keep them, and of kinds the Scopes do not know, stay.
// Prune streams the store and holds one mark at a time.
func (h *DatastoreHighWater) Prune(ctx context.Context) (PruneStats, error) {
	var st PruneStats
	if h.quota == nil || h.policy.Retain <= 0 {
		return st, nil
	}
	now := h.policy.Clock()
	res, err := h.store.Query(ctx, dsq.Query{Prefix: h.prefix.String()})
	if err != nil {
		return st, fmt.Errorf("record: prune high-water marks: %w", err)
	}
	defer res.Close()
	for e := range res.Next() {
		if e.Error != nil {
			return st, fmt.Errorf("record: prune high-water marks: %w", e.Error)
		}
		if err := ctx.Err(); err != nil {
			return st, err
		}
		key, ok := h.keyOf(e.Key)
		s := h.scopeOfStored(e.Key)
		_, raised, stamped, err := parseMark(e.Value)
		switch {
		case !ok || s.KeepMarks || err != nil:
			st.Kept++
		case !stamped:
			done, err := h.replace(ctx, key, e.Value, encodeMark(binary.BigEndian.Uint64(e.Value), now))
			if err != nil {
				return st, err
			}
			if done {
				st.Stamped++
			}
			st.Kept++
		case now.Sub(raised) <= h.policy.Retain:
			st.Kept++
		default:
			done, err := h.replace(ctx, key, e.Value, nil)
			if err != nil {
				return st, err
			}
			if !done {
				st.Kept++
				continue
			}
			h.quota.Remove(s)
			st.Pruned++
		}
	}
	return st, nil
}

// replace writes next (deletes the mark if next is nil) at key if the mark
// stored there is still seen, so a mark raised meanwhile stays, and
// reports whether it did.
func (h *DatastoreHighWater) replace(ctx context.Context, key string, seen, next []byte) (bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	k := h.dsKey(key)
	cur, err := h.store.Get(ctx, k)
	if errors.Is(err, ds.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("record: prune high-water mark: %w", err)
	}
	if string(cur) != string(seen) {
		return false, nil
	}
	if next != nil {
		err = h.store.Put(ctx, k, next)
	} else {
		err = h.store.Delete(ctx, k)
		delete(h.cache, key)
	}
	if err != nil {
		return false, fmt.Errorf("record: prune high-water mark: %w", err)
	}
	return true, nil
}
