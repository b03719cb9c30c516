package node_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	"github.com/libp2p/go-libp2p/core/routing"
	"github.com/multiformats/go-base32"
	"google.golang.org/protobuf/proto"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/node"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/record"
)

// countingPutter records every put and the most that ran at once.
type countingPutter struct {
	inFlight, maxInFlight atomic.Int64
	mu                    sync.Mutex
	puts                  map[string]int
}

func (p *countingPutter) PutValue(ctx context.Context, key string, value []byte, _ ...routing.Option) error {
	n := p.inFlight.Add(1)
	defer p.inFlight.Add(-1)
	for {
		m := p.maxInFlight.Load()
		if n <= m || p.maxInFlight.CompareAndSwap(m, n) {
			break
		}
	}
	// A put is a network round trip; a short wait lets puts overlap.
	time.Sleep(2 * time.Millisecond)
	p.mu.Lock()
	p.puts[key]++
	p.mu.Unlock()
	return nil
}

// pagingStore counts the queries made and the most entries one query
// returned, that is the most the republisher held at once.
type pagingStore struct {
	ds.Datastore
	queries, maxEntries atomic.Int64
}

func (s *pagingStore) Query(ctx context.Context, q dsq.Query) (dsq.Results, error) {
	res, err := s.Datastore.Query(ctx, q)
	if err != nil {
		return nil, err
	}
	s.queries.Add(1)
	all, err := res.Rest()
	if err != nil {
		return nil, err
	}
	if n := int64(len(all)); n > s.maxEntries.Load() {
		s.maxEntries.Store(n)
	}
	return dsq.ResultsWithEntries(q, all), nil
}

// DropExpired gives the store the ability the node's record store has,
// so the round deletes expired records as it goes.
func (s *pagingStore) DropExpired(ctx context.Context, k ds.Key, seen []byte) (bool, error) {
	cur, err := s.Get(ctx, k)
	if err != nil || string(cur) != string(seen) {
		return false, err
	}
	return true, s.Delete(ctx, k)
}

// storeAsDHT files a record the way kad-dht's value store does.
func storeAsDHT(t testing.TB, store ds.Datastore, key string, value []byte) {
	t.Helper()
	data, err := proto.Marshal(&recpb.Record{Key: []byte(key), Value: value, TimeReceived: time.Now().UTC().Format(time.RFC3339Nano)})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Put(context.Background(), ds.NewKey("/jf/"+base32.RawStdEncoding.EncodeToString([]byte(key))), data); err != nil {
		t.Fatal(err)
	}
}

// TestRepublisherStreamsAndBoundsParallelism fills a Pebble store with
// 300 records, one in ten expired, and checks that one round re-puts
// every valid one exactly once, plus an owned record the store lacks,
// reading the store in pages of 32 keys and running at most 8 puts at
// once, and deletes the expired ones as it goes without skipping a
// record (deletions move the next page's offset).
func TestRepublisherStreamsAndBoundsParallelism(t *testing.T) {
	ctx := testCtx(t, time.Minute)
	pebble, err := node.OpenDatastore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer pebble.Close()
	store := &pagingStore{Datastore: pebble}
	now := time.Now()
	v, err := record.NewValidator(record.WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}

	const n, page, parallel = 300, 32, 8
	want := map[string]bool{}
	for i := range n {
		priv := newKey(t)
		expires := now.Add(time.Hour)
		if i%10 == 0 {
			expires = now.Add(-time.Minute) // signed, stored, since expired
		}
		key, value := nodeRecord(t, priv, 1, expires)
		storeAsDHT(t, store, key, value)
		if expires.After(now) {
			want[key] = true
		}
	}
	// Something else in the database is not read.
	if err := store.Put(ctx, ds.NewKey("/hwm/x"), []byte("mark")); err != nil {
		t.Fatal(err)
	}

	putter := &countingPutter{puts: map[string]int{}}
	r, err := node.NewRepublisher(putter, store, v, time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)),
		node.RepublishPage(page), node.RepublishParallel(parallel))
	if err != nil {
		t.Fatal(err)
	}
	ownKey, own := nodeRecord(t, newKey(t), 1, now.Add(time.Hour))
	r.Own(ownKey, own)
	want[ownKey] = true

	st, err := r.RepublishOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v; %d queries, at most %d entries each, %d puts at once", st, store.queries.Load(), store.maxEntries.Load(), putter.maxInFlight.Load())
	const expired = n / 10
	if st.Held != n-expired || st.Expired != expired || st.Deleted != expired || st.Put != n-expired+1 || st.Failed != 0 || st.Skipped != 0 {
		t.Fatalf("round %+v", st)
	}
	if len(putter.puts) != len(want) {
		t.Fatalf("%d keys re-put, want %d", len(putter.puts), len(want))
	}
	for key, c := range putter.puts {
		if !want[key] || c != 1 {
			t.Fatalf("%s re-put %d times (wanted: %v)", key, c, want[key])
		}
	}
	if m := store.maxEntries.Load(); m > page {
		t.Fatalf("one query returned %d entries, page is %d", m, page)
	}
	if q := store.queries.Load(); q != int64((n+page-1)/page) || st.Pages != int(q) {
		t.Fatalf("%d queries and %d pages for %d records in pages of %d", q, st.Pages, n, page)
	}
	left, err := store.Datastore.Query(ctx, dsq.Query{Prefix: "/jf", KeysOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if all, _ := left.Rest(); len(all) != n-expired {
		t.Fatalf("%d records left in the store, want %d", len(all), n-expired)
	}
	if m := putter.maxInFlight.Load(); m > parallel || m < 2 || st.MaxInFlight != int(m) {
		t.Fatalf("%d puts at once (round says %d), want 2..%d", m, st.MaxInFlight, parallel)
	}

	if _, err := node.NewRepublisher(putter, store, v, time.Hour, nil, node.RepublishParallel(0)); !errors.Is(err, node.ErrConfig) {
		t.Fatalf("parallelism 0: %v", err)
	}
}
