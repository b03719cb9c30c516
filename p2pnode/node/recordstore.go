package node

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"maps"
	"strings"
	"sync"
	"time"

	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	"github.com/multiformats/go-base32"
	"google.golang.org/protobuf/proto"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/record"
)

// recordNsPrefix is where kad-dht's value store files Jellyfish records:
// "/jf/<base32 of the full DHT key>", each a protobuf record carrying the
// key, the value and the time it was received.
const recordNsPrefix = "/" + record.Namespace + "/"

// recordDsKey is the datastore key kad-dht stores the record of key under
// (its valueDsKey).
func recordDsKey(key string) ds.Key {
	return ds.NewKey(recordNsPrefix + base32.RawStdEncoding.EncodeToString([]byte(key)))
}

// recordKeyOf returns the DHT key of a record's datastore key.
func recordKeyOf(k ds.Key) (string, bool) {
	enc, ok := strings.CutPrefix(k.String(), recordNsPrefix)
	if !ok {
		return "", false
	}
	key, err := base32.RawStdEncoding.DecodeString(enc)
	if err != nil {
		return "", false
	}
	return string(key), true
}

// refusalLogEvery is the most often the store logs that it refused keys.
const refusalLogEvery = time.Minute

// recordStore is the datastore the DHT keeps its records in. kad-dht's
// value store validates a PUT_VALUE (which raises the key's high-water
// mark), compares it with the stored record by Select and only then calls
// Put, so Put sees exactly the records the node is about to store. It
// counts them per scope and refuses a record under a new key when a
// limit is reached, or when the key got no high-water mark (the mark store
// declined it): kad-dht then answers the PUT_VALUE by resetting the stream,
// as it does for an invalid record. A record under a key already stored
// is always taken, and so are the node's own records (ownedRecords),
// counted but never refused. Writes other than Jellyfish records pass
// through uncounted; only the value store writes here, and its validator
// admits only "/jf/" keys.
type recordStore struct {
	ds.Batching
	scopes *record.Scopes
	quota  *record.Quota
	owned  *ownedRecords
	// marks is the node's mark store; set before the DHT starts.
	marks record.HighWater
	log   *slog.Logger

	seed  maphash.Seed
	locks [64]sync.Mutex

	logMu    sync.Mutex
	lastLog  time.Time
	unlogged map[string]uint64
}

var _ ds.Batching = (*recordStore)(nil)

// openRecordStore wraps child, counting the records it already holds (a
// scan of keys only); a store above limits keeps what it has and takes
// new keys again once below them.
func openRecordStore(ctx context.Context, child ds.Batching, scopes *record.Scopes, limits record.Limits, owned *ownedRecords, log *slog.Logger) (*recordStore, error) {
	s := &recordStore{
		Batching: child,
		scopes:   scopes,
		quota:    record.NewQuota(limits),
		owned:    owned,
		log:      log,
		seed:     maphash.MakeSeed(),
		unlogged: map[string]uint64{},
	}
	res, err := child.Query(ctx, dsq.Query{Prefix: "/" + record.Namespace, KeysOnly: true})
	if err != nil {
		return nil, fmt.Errorf("node: count stored records: %w", err)
	}
	defer res.Close()
	for e := range res.Next() {
		if e.Error != nil {
			return nil, fmt.Errorf("node: count stored records: %w", e.Error)
		}
		if sc, ok := s.scopeOf(ds.RawKey(e.Key)); ok {
			s.quota.Add(sc)
		}
	}
	return s, nil
}

// scopeOf returns the scope a datastore key counts in, false for keys
// that are not Jellyfish records.
func (s *recordStore) scopeOf(k ds.Key) (record.Scope, bool) {
	key, ok := recordKeyOf(k)
	if !ok {
		return record.Scope{}, false
	}
	sc, err := s.scopes.Scope(key)
	return sc, err == nil
}

func (s *recordStore) lock(k ds.Key) *sync.Mutex {
	return &s.locks[maphash.String(s.seed, k.String())%uint64(len(s.locks))]
}

// Put implements ds.Write; see recordStore.
func (s *recordStore) Put(ctx context.Context, k ds.Key, value []byte) error {
	sc, ok := s.scopeOf(k)
	if !ok {
		return s.Batching.Put(ctx, k, value)
	}
	mu := s.lock(k)
	mu.Lock()
	defer mu.Unlock()
	stored, err := s.Batching.Has(ctx, k)
	if err != nil {
		return err
	}
	if stored {
		return s.Batching.Put(ctx, k, value)
	}
	key, _ := recordKeyOf(k)
	if s.owned.has(key) {
		s.quota.Add(sc)
	} else if err := s.admit(key, sc, value); err != nil {
		s.refused(sc, err)
		return fmt.Errorf("node: store %q: %w", key, err)
	}
	if err := s.Batching.Put(ctx, k, value); err != nil {
		s.quota.Remove(sc)
		return err
	}
	return nil
}

// admit counts a new key of scope sc, or says why not: a limit is
// reached, or its record has a sequence number above 0 and the mark store
// kept no mark for it, so after the record expired this node could not
// tell the key was ever used.
func (s *recordStore) admit(key string, sc record.Scope, value []byte) error {
	if err := s.quota.Admit(sc); err != nil {
		return err
	}
	var pr recpb.Record
	if err := proto.Unmarshal(value, &pr); err != nil {
		s.quota.Remove(sc)
		return fmt.Errorf("node: stored record: %w", err)
	}
	rec, err := record.Decode(pr.GetValue())
	if err != nil {
		s.quota.Remove(sc)
		return err
	}
	if rec.Seq == 0 || s.marks == nil {
		return nil
	}
	mark, err := s.marks.Seen(key)
	if err != nil {
		s.quota.Remove(sc)
		return err
	}
	if mark < rec.Seq {
		s.quota.Remove(sc)
		s.quota.Refuse(sc)
		return fmt.Errorf("%w: no high-water mark kept for seq %d", record.ErrFull, rec.Seq)
	}
	return nil
}

// refused logs refusals, at most once every refusalLogEvery with the
// number of keys refused per kind since the last line.
func (s *recordStore) refused(sc record.Scope, err error) {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	s.unlogged[sc.Kind]++
	now := time.Now()
	if now.Sub(s.lastLog) < refusalLogEvery {
		return
	}
	st := s.quota.Stats()
	s.log.Warn("record store full: refusing records under new keys",
		"refused", maps.Clone(s.unlogged), "refused_total", st.Refused, "records", st.Keys, "last_err", err)
	clear(s.unlogged)
	s.lastLog = now
}

// mayMark is the mark store's MarkPolicy.Admit: a key gets its first mark
// only if the node could store its record, so records refused for a full
// store leave no marks behind.
func (s *recordStore) mayMark(key string, sc record.Scope) bool {
	if s.owned.has(key) || s.quota.Fits(sc) {
		return true
	}
	stored, err := s.Batching.Has(context.Background(), recordDsKey(key))
	return err == nil && stored
}

// Delete implements ds.Write.
func (s *recordStore) Delete(ctx context.Context, k ds.Key) error {
	sc, ok := s.scopeOf(k)
	if !ok {
		return s.Batching.Delete(ctx, k)
	}
	mu := s.lock(k)
	mu.Lock()
	defer mu.Unlock()
	return s.deleteLocked(ctx, k, sc)
}

func (s *recordStore) deleteLocked(ctx context.Context, k ds.Key, sc record.Scope) error {
	stored, err := s.Batching.Has(ctx, k)
	if err != nil {
		return err
	}
	if err := s.Batching.Delete(ctx, k); err != nil {
		return err
	}
	if stored {
		s.quota.Remove(sc)
	}
	return nil
}

// DropExpired deletes the expired record at k if the entry still holds
// exactly seen (a record stored there meanwhile stays), and reports
// whether it did. A record of a kind that keeps its marks stays until
// kad-dht's age limit removes it, 40 days after it was received: were its
// slot freed at expiry, a flood of short-lived login records could come
// back every republishing round, and every round would leave marks that
// are kept for ever.
func (s *recordStore) DropExpired(ctx context.Context, k ds.Key, seen []byte) (bool, error) {
	sc, ok := s.scopeOf(k)
	if !ok || sc.KeepMarks {
		return false, nil
	}
	mu := s.lock(k)
	mu.Lock()
	defer mu.Unlock()
	cur, err := s.Batching.Get(ctx, k)
	if errors.Is(err, ds.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if string(cur) != string(seen) {
		return false, nil
	}
	return true, s.deleteLocked(ctx, k, sc)
}

// Batch implements ds.Batching: the batch applies its writes through Put
// and Delete, so they are counted and limited too.
func (s *recordStore) Batch(context.Context) (ds.Batch, error) {
	return ds.NewBasicBatch(s), nil
}

// Close does nothing: the node closes its database itself.
func (s *recordStore) Close() error { return nil }

// Stats counts the records stored and the new keys refused since the
// node started.
func (s *recordStore) Stats() record.QuotaStats { return s.quota.Stats() }

// ownedRecords are the records this node published itself (PutRecord):
// the republisher re-puts them, and the record store takes them whatever
// its limits. Safe for concurrent use.
type ownedRecords struct {
	mu sync.Mutex
	m  map[string][]byte
}

func newOwnedRecords() *ownedRecords { return &ownedRecords{m: map[string][]byte{}} }

func (o *ownedRecords) set(key string, value []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.m[key] = value
}

func (o *ownedRecords) has(key string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	_, ok := o.m[key]
	return ok
}

func (o *ownedRecords) snapshot() map[string][]byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	return maps.Clone(o.m)
}

// drop forgets key if it still holds value.
func (o *ownedRecords) drop(key string, value []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if v, ok := o.m[key]; ok && string(v) == string(value) {
		delete(o.m, key)
	}
}
