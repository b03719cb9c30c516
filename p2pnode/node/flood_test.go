package node_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"maps"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	pb "github.com/libp2p/go-libp2p-kad-dht/pb"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/node"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/record"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/testnet"
)

// simClock is a settable clock: real time plus an offset.
type simClock struct{ off atomic.Int64 }

func (c *simClock) Now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *simClock) Advance(d time.Duration) { c.off.Add(int64(d)) }

func newKey(t testing.TB) crypto.PrivKey {
	t.Helper()
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

func idOf(t testing.TB, priv crypto.PrivKey) peer.ID {
	t.Helper()
	id, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func sign(t testing.TB, priv crypto.PrivKey, key string, kind record.Kind, seq uint64, expires time.Time, body []byte) []byte {
	t.Helper()
	r := record.Record{Kind: kind, Seq: seq, Expires: expires, Body: body}
	v, err := r.Sign(key, priv)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// loginTombstone is the body of a login record in the tombstone state: a
// header only (docs/design.md §3.2).
var loginTombstone = []byte{1, 2, 0, 0, 0, 3, 0, 1, 0, 0, 4}

func loginRecord(t testing.TB, priv crypto.PrivKey, seq uint64, expires time.Time) (string, []byte) {
	t.Helper()
	key, err := account.LoginKey(priv.GetPublic())
	if err != nil {
		t.Fatal(err)
	}
	return key, sign(t, priv, key, account.KindLogin, seq, expires, loginTombstone)
}

func headRecord(t testing.TB, identity crypto.PrivKey, device byte, seq uint64, expires time.Time) (string, []byte) {
	t.Helper()
	var dev account.DeviceID
	dev[0] = device
	key := account.HeadKey(idOf(t, identity), dev)
	return key, sign(t, identity, key, account.KindHead, seq, expires, []byte("sealed head"))
}

func nodeRecord(t testing.TB, priv crypto.PrivKey, seq uint64, expires time.Time) (string, []byte) {
	t.Helper()
	return record.NodeKey(idOf(t, priv)), signNode(t, priv, seq, expires)
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestRecordFloodIsBounded floods one node with valid records under fresh
// keys, sent straight to it with raw PUT_VALUE messages as an attacker
// would, and checks that it stores no more than its limits per kind, per
// publisher and in total, keeps no marks for what it refused, counts the
// refusals, still takes updates of stored keys and new keys of other
// kinds and publishers while there is room for them, and always takes its
// own records.
func TestRecordFloodIsBounded(t *testing.T) {
	const perKind, perPublisher, total = 40, 5, 80
	nw := testnet.New(t, 2, testnet.Options{
		RepublishInterval: -1,
		Configure: func(_ int, cfg *node.Config) {
			cfg.RecordKinds = account.RecordKinds()
			cfg.RecordLimits = record.Limits{Total: total, PerKind: perKind, PerPublisher: perPublisher}
		},
	})
	ctx := testCtx(t, 2*time.Minute)
	sender, target := nw.Node(0), nw.Node(1)
	pm, err := pb.NewProtocolMessenger(sender.DHT().MessageSender())
	if err != nil {
		t.Fatal(err)
	}
	var puts, failed int
	put := func(key string, value []byte) error {
		puts++
		err := pm.PutValue(ctx, target.ID(), &recpb.Record{Key: []byte(key), Value: value})
		if err != nil {
			failed++
		}
		return err
	}
	served := func(key string) []byte {
		t.Helper()
		rec, _, err := pm.GetValue(ctx, target.ID(), key)
		if err != nil {
			t.Fatalf("raw get %s: %v", key, err)
		}
		return rec.GetValue()
	}
	exp := time.Now().Add(time.Hour)
	before := target.StoreStats()
	if before.Records.Keys != 0 {
		t.Fatalf("target starts with %d records", before.Records.Keys)
	}

	// Honest records stored before the flood.
	honestKey, honest1 := nodeRecord(t, sender.PrivateKey(), 1, exp)
	if err := put(honestKey, honest1); err != nil {
		t.Fatal(err)
	}
	alice := newKey(t)
	if k, v := headRecord(t, alice, 0, 1, exp); put(k, v) != nil {
		t.Fatal("honest head refused")
	}

	// The flood: node records under fresh keys, many times the kind's limit.
	const flood = 600
	heap0 := heapInUse()
	floodKeys := make([]string, 0, flood)
	var accepted []string
	acceptedValues := map[string]crypto.PrivKey{}
	for range flood {
		priv := newKey(t)
		k, v := nodeRecord(t, priv, 1, exp)
		floodKeys = append(floodKeys, k)
		if put(k, v) == nil {
			accepted = append(accepted, k)
			acceptedValues[k] = priv
		}
	}
	heapGrowth := int64(heapInUse()) - int64(heap0)
	st := target.StoreStats()
	if len(accepted) != perKind-1 || st.Records.Kinds["node"] != perKind {
		t.Fatalf("flood of %d: %d accepted, %d node records stored; want %d and %d", flood, len(accepted), st.Records.Kinds["node"], perKind-1, perKind)
	}
	if st.Marks.Kinds["node"] != perKind {
		t.Fatalf("%d node marks kept, want %d: refused records left marks", st.Marks.Kinds["node"], perKind)
	}
	servedFlood := 0
	for _, k := range floodKeys {
		if served(k) != nil {
			servedFlood++
		}
	}
	if servedFlood != perKind-1 {
		t.Fatalf("target serves %d flood records, want %d", servedFlood, perKind-1)
	}
	t.Logf("flood of %d node records: %d stored, %d refusals counted, heap grew %d KiB", flood, len(accepted), st.Records.Refused, heapGrowth>>10)
	// kad-dht's message sender retries a put once when the stream is
	// reset, so a refused put may be counted twice.
	refusedPuts := uint64(flood - len(accepted))
	if st.Records.RefusedKinds["node"] < refusedPuts || st.Records.RefusedKinds["node"] > 2*refusedPuts {
		t.Fatalf("%d node refusals counted for %d refused puts", st.Records.RefusedKinds["node"], refusedPuts)
	}
	if heapGrowth > 32<<20 {
		t.Fatalf("heap grew by %d MiB during the flood", heapGrowth>>20)
	}

	// Updates of stored keys are always taken: the honest record and a
	// record the flood got in.
	honest2 := signNode(t, sender.PrivateKey(), 2, exp)
	if err := put(honestKey, honest2); err != nil {
		t.Fatalf("update of an honest record refused: %v", err)
	}
	if !bytes.Equal(served(honestKey), honest2) {
		t.Fatal("target does not serve the update")
	}
	if k, v := nodeRecord(t, acceptedValues[accepted[0]], 2, exp); put(k, v) != nil {
		t.Fatal("update of a stored flood record refused")
	}

	// Another kind has room of its own.
	if k, v := loginRecord(t, newKey(t), 1, exp); put(k, v) != nil {
		t.Fatal("a new login record was refused because node records are full")
	}
	// Per publisher: alice gets perPublisher heads, bob still gets his.
	aliceOK := 1
	for d := byte(1); d < 8; d++ {
		if k, v := headRecord(t, alice, d, 1, exp); put(k, v) == nil {
			aliceOK++
		}
	}
	if aliceOK != perPublisher {
		t.Fatalf("alice stored %d heads, want %d", aliceOK, perPublisher)
	}
	bob := newKey(t)
	bobKey, bob1 := headRecord(t, bob, 0, 1, exp)
	if err := put(bobKey, bob1); err != nil {
		t.Fatalf("another publisher's head refused: %v", err)
	}

	// The total: 40 node + 6 head + 1 login leave 33 of 80 for logins.
	logins := 0
	for range 60 {
		if k, v := loginRecord(t, newKey(t), 1, exp); put(k, v) == nil {
			logins++
		}
	}
	if logins != total-perKind-perPublisher-1-1 {
		t.Fatalf("%d more logins stored, want %d", logins, total-perKind-perPublisher-1-1)
	}
	st = target.StoreStats()
	if st.Records.Keys != total {
		t.Fatalf("%d records stored, want the total limit %d", st.Records.Keys, total)
	}
	if k, v := headRecord(t, newKey(t), 0, 1, exp); put(k, v) == nil {
		t.Fatal("a new key was stored over the total limit")
	}
	if _, bob2 := headRecord(t, bob, 0, 2, exp); put(bobKey, bob2) != nil {
		t.Fatal("update refused at the total limit")
	}

	// The node's own records are taken whatever the limits.
	own, err := target.PublishNodeRecord(ctx, record.NodeInfo{Owner: []byte("target")})
	if err != nil {
		t.Fatalf("own record refused by a full node: %v", err)
	}
	if !bytes.Equal(served(record.NodeKey(target.ID())), own) {
		t.Fatal("target does not serve its own record")
	}
	st = target.StoreStats()
	if st.Records.Keys != total+1 {
		t.Fatalf("%d records after the own record, want %d", st.Records.Keys, total+1)
	}
	t.Logf("%d puts, %d refused; target stores %d records (%v), keeps %d marks, counted %d refusals (%v)",
		puts, failed, st.Records.Keys, st.Records.Kinds, st.Marks.Keys, st.Records.Refused, st.Records.RefusedKinds)

	// The counts survive a restart: they are recounted from the database.
	if err := nw.Restart(ctx, 1); err != nil {
		t.Fatal(err)
	}
	re := nw.Node(1).StoreStats()
	if re.Records.Keys != st.Records.Keys || re.Marks.Keys != st.Marks.Keys {
		t.Fatalf("after restart %d records and %d marks, before %d and %d", re.Records.Keys, re.Marks.Keys, st.Records.Keys, st.Marks.Keys)
	}
}

// TestMarksPrunedAfterMaxAgeButLoginMarksStay moves the nodes' clock past
// the longest record lifetime plus the margin: the marks of node and head
// records go (a replay of those records fails its expiry check anyway),
// the login mark stays for ever, because it is what tells an expired
// account from a free name. The republisher drops the expired records.
func TestMarksPrunedAfterMaxAgeButLoginMarksStay(t *testing.T) {
	clock := &simClock{}
	nw := testnet.New(t, 2, testnet.Options{
		Clock:             clock.Now,
		RepublishInterval: -1,
		Configure:         func(_ int, cfg *node.Config) { cfg.RecordKinds = account.RecordKinds() },
	})
	ctx := testCtx(t, time.Minute)
	writer, holder := nw.Node(0), nw.Node(1)
	start := clock.Now()

	nodeKey, node4 := nodeRecord(t, writer.PrivateKey(), 4, start.Add(node.NodeRecordLifetime))
	_, node5 := nodeRecord(t, writer.PrivateKey(), 5, start.Add(node.NodeRecordLifetime))
	identity, login := newKey(t), newKey(t)
	headKey, head := headRecord(t, identity, 1, 3, start.Add(35*24*time.Hour))
	loginKey, login1 := loginRecord(t, login, 1, start.Add(35*24*time.Hour))
	for key, value := range map[string][]byte{nodeKey: node5, headKey: head, loginKey: login1} {
		if _, err := writer.PutRecordConfirmed(ctx, key, value, 1); err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
	}
	marks := func(n *node.Node) map[string]uint64 {
		t.Helper()
		m := map[string]uint64{}
		for _, key := range []string{nodeKey, headKey, loginKey} {
			seq, err := n.Mark(key)
			if err != nil {
				t.Fatal(err)
			}
			m[key] = seq
		}
		return m
	}
	want := map[string]uint64{nodeKey: 5, headKey: 3, loginKey: 1}
	for _, n := range []*node.Node{writer, holder} {
		if got := marks(n); !maps.Equal(got, want) {
			t.Fatalf("marks %v, want %v", got, want)
		}
	}
	if err := holder.Validator().Validate(nodeKey, node4); !errors.Is(err, record.ErrStale) {
		t.Fatalf("replay of seq 4 while the mark is 5: %v", err)
	}

	// One hour inside max lifetime + margin: every mark stays, and the
	// republisher drops the expired records, except the login record,
	// which keeps its slot until kad-dht's age limit.
	retain := record.DefaultMaxLifetime + node.DefaultMarkMargin
	clock.Advance(retain - time.Hour)
	for _, n := range []*node.Node{writer, holder} {
		st, err := n.PruneMarks(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Pruned != 0 {
			t.Fatalf("pruned %d marks inside the retention", st.Pruned)
		}
		rst, err := n.Republisher().RepublishOnce(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if rst.Expired != 3 || rst.Deleted != 2 || rst.Held != 0 {
			t.Fatalf("republish round after expiry: %+v", rst)
		}
		if rs := n.StoreStats().Records; rs.Keys != 1 || rs.Kinds["login"] != 1 {
			t.Fatalf("records left after the expired ones were dropped: %+v", rs)
		}
	}

	// Past it: node and head marks go, the login mark stays.
	clock.Advance(2 * time.Hour)
	want = map[string]uint64{nodeKey: 0, headKey: 0, loginKey: 1}
	for _, n := range []*node.Node{writer, holder} {
		st, err := n.PruneMarks(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Pruned != 2 || st.Kept != 1 {
			t.Fatalf("prune past the retention: %+v", st)
		}
		if got := marks(n); !maps.Equal(got, want) {
			t.Fatalf("marks after prune %v, want %v", got, want)
		}
		if ms := n.StoreStats().Marks; ms.Keys != 1 || ms.Kinds["login"] != 1 {
			t.Fatalf("mark counts after prune %+v", ms)
		}
	}
	// Without the mark, the replay still fails: it expired.
	if err := holder.Validator().Validate(nodeKey, node4); !errors.Is(err, record.ErrExpired) {
		t.Fatalf("replay after the mark was pruned: %v", err)
	}
	// The network still reports the expired account's login mark.
	peerMarks, err := writer.PeerMarks(ctx, loginKey)
	if err != nil || peerMarks[holder.ID()] != 1 {
		t.Fatalf("peer marks of the expired login %v, %v", peerMarks, err)
	}

	// Years later, across a restart, the login mark is still there.
	clock.Advance(10 * 365 * 24 * time.Hour)
	if err := nw.Restart(ctx, 1); err != nil {
		t.Fatal(err)
	}
	holder = nw.Node(1)
	if _, err := holder.PruneMarks(ctx); err != nil {
		t.Fatal(err)
	}
	if seq, err := holder.Mark(loginKey); err != nil || seq != 1 {
		t.Fatalf("login mark ten years on: %d, %v", seq, err)
	}
}
