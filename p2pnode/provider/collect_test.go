package provider_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jellyfish-p2p/jellyfish/codec"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/client"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/localnet"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/node"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/provider"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardproto"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardstore"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/testnet"
)

const day = 24 * time.Hour

// simClock is the network's time: the wall clock plus an offset the test
// moves, so libp2p's own timers keep running.
type simClock struct{ off atomic.Int64 }

func (c *simClock) Now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *simClock) Advance(d time.Duration) { c.off.Add(int64(d)) }

// setTo moves the clock so that Now is t (give or take the time passing).
func (c *simClock) setTo(t time.Time) { c.Advance(time.Until(t) - time.Duration(c.off.Load())) }

// syncBuffer is a log sink safe for the provider's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// collectWorld is a three-provider network on loopback under one moved
// clock, with a client that stores shards on node 0.
type collectWorld struct {
	clock  *simClock
	nw     *testnet.Network
	fleet  *provider.Fleet
	holder peer.ID
	c      *client.Client
}

func newCollectWorld(t *testing.T, ctx context.Context, interval time.Duration, log *slog.Logger) *collectWorld {
	return newCollectWorldDoubting(t, ctx, interval, log, nil)
}

// newCollectWorldDoubting is newCollectWorld with node 0's collection held
// while doubt reports true (provider.Config.ClockInDoubt).
func newCollectWorldDoubting(t *testing.T, ctx context.Context, interval time.Duration, log *slog.Logger, doubt func() bool) *collectWorld {
	t.Helper()
	clock := &simClock{}
	fleet := provider.NewFleet(provider.TestnetConfig{
		QuotaBytes: quota,
		Base:       localnet.Options{Clock: clock.Now},
		Provider: func(i int, cfg *provider.Config) {
			cfg.CollectInterval = interval
			if log != nil && i == 0 {
				cfg.Logger = log
			}
			if i == 0 {
				cfg.ClockInDoubt = doubt
			}
		},
	})
	nw := testnet.New(t, 3, fleet.Options())
	c, err := client.New(ctx, client.Config{
		DataDir: t.TempDir(), Bootstrap: nw.Node(0).Addrs(),
		Configure: func(cfg *node.Config) { cfg.Clock = clock.Now },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &collectWorld{clock: clock, nw: nw, fleet: fleet, holder: nw.ID(0), c: c}
}

// owner returns a shard client signing as a new owner key, with the
// network's clock.
func (w *collectWorld) owner(t *testing.T) *shardproto.Client {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := w.c.Shards(k, shardproto.WithClientClock(w.clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

func (w *collectWorld) store() *shardstore.Disk { return w.fleet.Provider(0).Store() }

// readable reports whether the holder still serves id with its bytes.
func (w *collectWorld) readable(t *testing.T, ctx context.Context, sc *shardproto.Client, id codec.ShardID, data []byte) bool {
	t.Helper()
	r, _, err := sc.Get(ctx, w.holder, id)
	if errors.Is(err, shardstore.ErrNotFound) {
		return false
	}
	if err != nil {
		t.Fatalf("get %s: %v", id.Short(), err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("get %s: %d bytes, %v", id.Short(), len(got), err)
	}
	return true
}

// TestCollectAfterGrace: a provider keeps a shard until every owner's
// lease ended more than the grace period (30 days) ago. A shard renewed
// before its lease ended is never collected, however far the clock moves
// past its first lease; an unrenewed one is still held and readable an
// hour before lease + grace and gone an hour after, and the provider's
// disk usage drops by its size. A shard shared with an owner whose lease
// is long stays, only the lapsed owner's reference goes.
func TestCollectAfterGrace(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	w := newCollectWorld(t, ctx, -1, nil)
	a, b := w.owner(t), w.owner(t)

	t0 := w.clock.Now()
	lease := t0.Add(10 * day)
	renewed, lapsed, shared := randBytes(t, 200_000), randBytes(t, 300_000), randBytes(t, 100_000)
	idRenewed, idLapsed, idShared := codec.IDOf(renewed), codec.IDOf(lapsed), codec.IDOf(shared)
	for _, s := range []struct {
		sc    *shardproto.Client
		data  []byte
		lease time.Time
	}{
		{a, renewed, lease}, {a, lapsed, lease}, {a, shared, lease}, {b, shared, t0.Add(300 * day)},
	} {
		if _, err := s.sc.Put(ctx, w.holder, codec.IDOf(s.data), s.data, s.lease); err != nil {
			t.Fatal(err)
		}
	}
	before := w.store().Usage()
	if before.Shards != 3 || before.Used != 600_000 {
		t.Fatalf("usage after the puts: %+v", before)
	}

	// Day 9: the owner renews one shard for 200 days.
	w.clock.Advance(9 * day)
	if missing, err := a.Renew(ctx, w.holder, []codec.ShardID{idRenewed}, t0.Add(200*day)); err != nil || len(missing) != 0 {
		t.Fatalf("renew: missing %v, %v", missing, err)
	}

	// An hour before lease + grace: nothing goes.
	w.clock.setTo(lease.Add(provider.DefaultCollectGrace - time.Hour))
	st, err := w.fleet.Provider(0).Collect(ctx)
	if err != nil || st != (shardstore.GCStats{}) {
		t.Fatalf("collection an hour before lease + grace: %+v, %v", st, err)
	}
	for _, s := range []struct {
		id   codec.ShardID
		data []byte
	}{{idRenewed, renewed}, {idLapsed, lapsed}, {idShared, shared}} {
		if !w.readable(t, ctx, a, s.id, s.data) {
			t.Fatalf("shard %s gone before lease + grace", s.id.Short())
		}
	}
	if u := w.store().Usage(); u.Used != before.Used {
		t.Fatalf("usage moved without collection: %d, was %d", u.Used, before.Used)
	}

	// An hour after: the lapsed shard and owner a's reference to the
	// shared one go.
	w.clock.Advance(2 * time.Hour)
	st, err = w.fleet.Provider(0).Collect(ctx)
	if err != nil || st.Shards != 1 || st.Bytes != int64(len(lapsed)) || st.Refs != 2 {
		t.Fatalf("collection an hour after lease + grace: %+v, %v", st, err)
	}
	if w.readable(t, ctx, a, idLapsed, lapsed) {
		t.Fatal("the unrenewed shard is still served")
	}
	if _, err := a.Stat(ctx, w.holder, idLapsed); !errors.Is(err, shardstore.ErrNotFound) {
		t.Fatalf("stat of the collected shard: %v", err)
	}
	if !w.readable(t, ctx, a, idShared, shared) {
		t.Fatal("the shard another owner still leases was collected")
	}
	info, err := w.store().Stat(ctx, idShared)
	if err != nil || info.Refs != 1 || info.Owners[0].Owner != b.Owner() {
		t.Fatalf("shared shard after collection: %+v, %v", info, err)
	}
	u := w.store().Usage()
	if u.Used != before.Used-int64(len(lapsed)) || u.Shards != 2 {
		t.Fatalf("usage after collection: %+v, want %d bytes in 2 shards", u, before.Used-int64(len(lapsed)))
	}
	if got, want := u.PerOwner[a.Owner()], int64(len(renewed)); got != want {
		t.Fatalf("owner a charged %d, want %d", got, want)
	}

	// Far past the renewed shard's first lease + grace (but inside its
	// renewal): it stays, readable.
	w.clock.setTo(t0.Add(190 * day))
	if st, err := w.fleet.Provider(0).Collect(ctx); err != nil || st.Shards != 0 {
		t.Fatalf("collection at day 190: %+v, %v", st, err)
	}
	if !w.readable(t, ctx, a, idRenewed, renewed) {
		t.Fatal("the renewed shard was collected")
	}
	// And its renewal, too, ends with a grace period.
	w.clock.setTo(t0.Add(200*day + provider.DefaultCollectGrace + time.Hour))
	if st, err := w.fleet.Provider(0).Collect(ctx); err != nil || st.Shards != 1 {
		t.Fatalf("collection past the renewal + grace: %+v, %v", st, err)
	}
	if w.readable(t, ctx, a, idRenewed, renewed) {
		t.Fatal("the renewed shard outlived its renewal + grace")
	}
}

// TestCollectHeldWhileClockInDoubt: with the network's clocks more than a
// month from the provider's (timeproto.Corrected.InDoubt), a round past
// every lease and grace deletes nothing, fails with ErrClockInDoubt and
// says so in the collections; once the doubt ends, the same round
// collects the lapsed shard.
func TestCollectHeldWhileClockInDoubt(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var doubt atomic.Bool
	w := newCollectWorldDoubting(t, ctx, -1, nil, doubt.Load)
	a := w.owner(t)
	data := randBytes(t, 100_000)
	id := codec.IDOf(data)
	lease := w.clock.Now().Add(10 * day)
	if _, err := a.Put(ctx, w.holder, id, data, lease); err != nil {
		t.Fatal(err)
	}
	// The clock a year on, and the network saying it is wrong.
	w.clock.Advance(365 * day)
	doubt.Store(true)
	st, err := w.fleet.Provider(0).Collect(ctx)
	if !errors.Is(err, provider.ErrClockInDoubt) || st != (shardstore.GCStats{}) {
		t.Fatalf("collection with the clock in doubt: %+v, %v", st, err)
	}
	if !w.readable(t, ctx, a, id, data) {
		t.Fatal("a shard was deleted while the clock was in doubt")
	}
	if c := w.fleet.Provider(0).Collections(); c.Rounds != 1 || c.Failed != 1 || !errors.Is(c.Last.Err, provider.ErrClockInDoubt) {
		t.Fatalf("collections: %+v", c)
	}
	doubt.Store(false)
	if st, err := w.fleet.Provider(0).Collect(ctx); err != nil || st.Shards != 1 {
		t.Fatalf("collection once the doubt ended: %+v, %v", st, err)
	}
	if w.readable(t, ctx, a, id, data) {
		t.Fatal("the lapsed shard is still served after the doubt ended")
	}
}

// TestCollectLoop: the provider's own loop collects, by the node's clock,
// without anyone calling Collect, and logs each round with what it freed.
func TestCollectLoop(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	logs := &syncBuffer{}
	w := newCollectWorld(t, ctx, 50*time.Millisecond, slog.New(slog.NewTextHandler(logs, nil)))
	a := w.owner(t)
	data := randBytes(t, 123_456)
	id := codec.IDOf(data)
	if _, err := a.Put(ctx, w.holder, id, data, w.clock.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	// Rounds run, but keep the shard within its lease.
	if err := testnet.WaitFor(ctx, func() bool { return strings.Contains(logs.String(), `msg="shard collection"`) }); err != nil {
		t.Fatalf("no collection round logged: %v", err)
	}
	if !w.readable(t, ctx, a, id, data) {
		t.Fatal("shard collected within its lease")
	}
	w.clock.Advance(time.Hour + provider.DefaultCollectGrace + time.Minute)
	if err := testnet.WaitFor(ctx, func() bool { return w.store().Usage().Shards == 0 }); err != nil {
		t.Fatalf("the loop never collected the shard: %+v", w.store().Usage())
	}
	if !strings.Contains(logs.String(), "shards_removed=1 bytes_freed=123456") {
		t.Fatalf("no round logged the freed shard:\n%s", logs.String())
	}
}
