package shardproto

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jellyfish-p2p/jellyfish/codec"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardstore"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

func newHost(t testing.TB, opts ...libp2p.Option) host.Host {
	t.Helper()
	opts = append([]libp2p.Option{libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0")}, opts...)
	h, err := libp2p.New(opts...)
	if err != nil {
		t.Fatalf("libp2p.New: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func connect(t testing.TB, a, b host.Host) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		t.Fatalf("connect: %v", err)
	}
}

// env is a holder (host, disk store, service) and an owner's client on
// another host, connected over 127.0.0.1.
type env struct {
	holder   host.Host
	dir      string // the disk store's directory
	disk     *shardstore.Disk
	svc      *Service
	ch       host.Host
	client   *Client
	ownerKey crypto.PrivKey
}

func ed25519Key(t testing.TB) crypto.PrivKey {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newEnv(t testing.TB, storeOpts []shardstore.Option, svcOpts ...Option) *env {
	t.Helper()
	return newEnvWith(t, storeOpts, nil, svcOpts...)
}

// newEnvWith is newEnv with the service serving wrap(disk) (nil: the disk).
func newEnvWith(t testing.TB, storeOpts []shardstore.Option, wrap func(*shardstore.Disk) Backend, svcOpts ...Option) *env {
	t.Helper()
	e := &env{holder: newHost(t), dir: t.TempDir(), ch: newHost(t), ownerKey: ed25519Key(t)}
	var err error
	e.disk, err = shardstore.New(e.dir, storeOpts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.disk.Close() })
	var backend Backend = e.disk
	if wrap != nil {
		backend = wrap(e.disk)
	}
	e.svc, err = NewService(e.holder, backend, svcOpts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.svc.Close() })
	e.client, err = NewClient(e.ch, e.ownerKey)
	if err != nil {
		t.Fatal(err)
	}
	connect(t, e.ch, e.holder)
	return e
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func shard(seed uint64, n int) ([]byte, codec.ShardID) {
	rng := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b, codec.IDOf(b)
}

func TestPutGetAcrossNodes(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	p := e.holder.ID()
	lease := time.Now().Add(time.Hour).Truncate(time.Second)
	for i, n := range []int{1, 5000, codec.LeafSize, 7*codec.LeafSize + 3, 1 << 20} {
		data, id := shard(uint64(i), n)
		rc, err := e.client.Put(ctx, p, id, data, lease)
		if err != nil {
			t.Fatalf("Put %d bytes: %v", n, err)
		}
		if err := VerifyReceipt(rc); err != nil || rc.Holder != p || rc.Shard != id || rc.Size != int64(n) || !rc.Lease.Equal(lease) || rc.Owner != e.client.Owner() {
			t.Fatalf("receipt %+v: %v", rc, err)
		}
		r, size, err := e.client.Get(ctx, p, id)
		if err != nil || size != int64(n) {
			t.Fatalf("Get: %d %v", size, err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("Get %d bytes: %d bytes, %v", n, len(got), err)
		}
		for _, rg := range [][2]int64{{0, 1}, {int64(n) - 1, 1}, {int64(n) / 3, max(int64(n)/2, 1)}} {
			if rg[0]+rg[1] > int64(n) {
				continue
			}
			b, err := e.client.GetRange(ctx, p, id, rg[0], rg[1])
			if err != nil || !bytes.Equal(b, data[rg[0]:rg[0]+rg[1]]) {
				t.Fatalf("GetRange %v of %d: %v", rg, n, err)
			}
		}
		info, err := e.client.Stat(ctx, p, id)
		if err != nil || info.Size != int64(n) || info.Refs != 1 || !info.Lease.Equal(lease) || info.Owners != nil {
			t.Fatalf("Stat %+v %v", info, err)
		}
	}
	// Not found crosses the wire as the sentinel.
	_, missing := shard(99, 10)
	if _, err := e.client.Stat(ctx, p, missing); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Stat of a missing shard: %v", err)
	}
	if _, _, err := e.client.Get(ctx, p, missing); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of a missing shard: %v", err)
	}
	if _, err := e.client.GetRange(ctx, p, missing, 0, 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetRange of a missing shard: %v", err)
	}
	// A held shard is not sent again: the body reader is never touched.
	data, id := shard(0, 1)
	if _, err := e.client.PutReader(ctx, p, id, int64(len(data)), iotestErrReader{}, lease.Add(time.Hour)); err != nil {
		t.Fatalf("second put of a held shard: %v", err)
	}
	if info, _ := e.disk.Stat(ctx, id); !info.Lease.Equal(lease.Add(time.Hour)) {
		t.Fatalf("second put did not extend the lease: %v", info.Lease)
	}
}

// iotestErrReader fails every read.
type iotestErrReader struct{}

func (iotestErrReader) Read([]byte) (int, error) { return 0, errors.New("body must not be read") }

func TestRemoteSatisfiesStore(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	stores := map[string]shardstore.Store{
		"local":  e.disk.For(shardstore.Owner{7}),
		"remote": e.client.Remote(e.holder.ID()),
	}
	for name, s := range stores {
		data, id := shard(uint64(len(name)), 3*codec.LeafSize+10)
		lease := time.Now().Add(time.Hour)
		if err := s.Put(ctx, id, int64(len(data)), bytes.NewReader(data), lease); err != nil {
			t.Fatalf("%s: Put: %v", name, err)
		}
		r, _, err := s.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s: Get: %v", name, err)
		}
		a := s.(shardstore.Auditee)
		var salt [32]byte
		salt[3] = 9
		if ans, err := a.Challenge(ctx, id, salt); err != nil || ans != shardstore.ChallengeAnswer(salt, data) {
			t.Fatalf("%s: Challenge: %v", name, err)
		}
		proof, err := a.Prove(ctx, id, codec.LeafSize, 10)
		if err != nil {
			t.Fatal(err)
		}
		if b, err := codec.VerifyRange(id, proof, codec.LeafSize, 10); err != nil || !bytes.Equal(b, data[codec.LeafSize:codec.LeafSize+10]) {
			t.Fatalf("%s: Prove: %v", name, err)
		}
		if missing, err := s.Renew(ctx, []codec.ShardID{id}, lease.Add(time.Hour)); err != nil || len(missing) != 0 {
			t.Fatalf("%s: Renew: %v %v", name, missing, err)
		}
		if err := s.Delete(ctx, id); err != nil {
			t.Fatalf("%s: Delete: %v", name, err)
		}
		if _, err := s.Stat(ctx, id); !errors.Is(err, shardstore.ErrNotFound) {
			t.Fatalf("%s: Stat after delete: %v", name, err)
		}
	}
}

func TestPutRefusesMismatchingBytes(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	data, id := shard(1, 100_000)
	bad := bytes.Clone(data)
	bad[50_000] ^= 1
	_, err := e.client.Put(ctx, e.holder.ID(), id, bad, time.Now().Add(time.Hour))
	if !errors.Is(err, ErrIntegrity) {
		t.Fatalf("mismatching bytes: %v, want ErrIntegrity", err)
	}
	if _, err := e.client.Stat(ctx, e.holder.ID(), id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("refused shard is listed: %v", err)
	}
	if u := e.disk.Usage(); u.Used != 0 || u.Reserved != 0 || u.Shards != 0 {
		t.Fatalf("usage %+v", u)
	}
}

// countReader counts the bytes read from a body.
type countReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// maxWasted bounds the body a client sends before it reads a holder's
// early answer: one stream flow-control window (256 KiB for yamux) plus
// the client's copy buffer, with room to spare.
const maxWasted = 1 << 20

func TestQuotaFullAcrossNodes(t *testing.T) {
	e := newEnv(t, []shardstore.Option{shardstore.WithQuotaBytes(100_000)})
	ctx := ctxT(t)
	p := e.holder.ID()
	d1, id1 := shard(1, 60_000)
	if _, err := e.client.Put(ctx, p, id1, d1, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	// The body follows the header at once, but the holder answers the
	// refusal without reading it and the client stops within a window.
	d2, id2 := shard(2, 16<<20)
	cr := &countReader{r: bytes.NewReader(d2)}
	_, err := e.client.PutReader(ctx, p, id2, int64(len(d2)), cr, time.Now().Add(time.Hour))
	if !errors.Is(err, ErrQuotaExceeded) || !strings.Contains(err.Error(), "100000") {
		t.Fatalf("put over quota: %v", err)
	}
	t.Logf("refused 16 MiB put: %d body bytes sent", cr.n.Load())
	if n := cr.n.Load(); n > maxWasted {
		t.Fatalf("%d body bytes sent although the holder's quota was full", n)
	}
	if _, err := e.client.Stat(ctx, p, id2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("refused shard stored: %v", err)
	}
	if u := e.disk.Usage(); u.Used != 60_000 || u.Reserved != 0 {
		t.Fatalf("usage %+v", u)
	}
	// Too large for the holder at all.
	big := make([]byte, 10)
	if _, err := e.client.PutReader(ctx, p, codec.IDOf(big), shardstore.DefaultMaxShardSize+1, bytes.NewReader(big), time.Now().Add(time.Hour)); !errors.Is(err, shardstore.ErrTooLarge) {
		t.Fatalf("oversized put: %v", err)
	}
}

// A put of a shard the holder already has is answered with a receipt at
// once: the client sends at most a window of the body.
func TestDuplicatePutSendsLittle(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	p := e.holder.ID()
	data, id := shard(3, 16<<20)
	if _, err := e.client.Put(ctx, p, id, data, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	other, err := NewClient(e.ch, ed25519Key(t))
	if err != nil {
		t.Fatal(err)
	}
	cr := &countReader{r: bytes.NewReader(data)}
	rc, err := other.PutReader(ctx, p, id, int64(len(data)), cr, time.Now().Add(2*time.Hour))
	if err != nil || rc.Owner != other.Owner() {
		t.Fatalf("duplicate put: %+v %v", rc, err)
	}
	t.Logf("duplicate 16 MiB put: %d body bytes sent", cr.n.Load())
	if n := cr.n.Load(); n > maxWasted {
		t.Fatalf("%d body bytes sent for a shard the holder has", n)
	}
	if info, err := e.disk.Stat(ctx, id); err != nil || info.Refs != 2 {
		t.Fatalf("Stat %+v %v", info, err)
	}
}

// rawCall sends a hand-made request with the client's stream machinery.
func rawCall(ctx context.Context, c *Client, p peer.ID, req *request) (*response, error) {
	cl, resp, err := c.roundTrip(ctx, p, req)
	if err != nil {
		return nil, err
	}
	cl.finish(nil)
	return resp, nil
}

func TestDeleteNeedsOwnerSignature(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	p := e.holder.ID()
	data, id := shard(3, 40_000)
	if _, err := e.client.Put(ctx, p, id, data, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	kb := e.client.keyBytes
	sign := func(k crypto.PrivKey, msg []byte) []byte {
		s, err := k.Sign(msg)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	other := ed25519Key(t)
	otherKB, _ := crypto.MarshalPublicKey(other.GetPublic())
	for name, req := range map[string]*request{
		"unsigned":           {typ: msgDelete, id: id, ts: now, key: kb},
		"garbage signature":  {typ: msgDelete, id: id, ts: now, key: kb, sig: bytes.Repeat([]byte{1}, 64)},
		"signed by another":  {typ: msgDelete, id: id, ts: now, key: kb, sig: sign(other, deleteSigned(p, id, now))},
		"for another holder": {typ: msgDelete, id: id, ts: now, key: kb, sig: sign(e.ownerKey, deleteSigned(e.ch.ID(), id, now))},
		"other shard signed": {typ: msgDelete, id: id, ts: now, key: kb, sig: sign(e.ownerKey, deleteSigned(p, codec.ShardID{1}, now))},
		"stale":              {typ: msgDelete, id: id, ts: now.Add(-time.Hour), key: kb, sig: sign(e.ownerKey, deleteSigned(p, id, now.Add(-time.Hour)))},
		"no key":             {typ: msgDelete, id: id, ts: now, sig: sign(e.ownerKey, deleteSigned(p, id, now))},
	} {
		if _, err := rawCall(ctx, e.client, p, req); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("%s delete: %v, want ErrUnauthorized", name, err)
		}
	}
	// A validly signed delete by an owner holding no reference changes nothing.
	if _, err := rawCall(ctx, e.client, p, &request{typ: msgDelete, id: id, ts: now, key: otherKB, sig: sign(other, deleteSigned(p, id, now))}); !errors.Is(err, ErrNotFound) {
		t.Errorf("delete by a non-owner: %v, want ErrNotFound", err)
	}
	if info, err := e.disk.Stat(ctx, id); err != nil || info.Refs != 1 {
		t.Fatalf("shard damaged by refused deletes: %+v %v", info, err)
	}
	if err := e.client.Delete(ctx, p, id); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.Stat(ctx, p, id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	if err := e.client.Delete(ctx, p, id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

func TestReceiptsVerifyOffline(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	data, id := shard(4, 20_000)
	rc, err := e.client.Put(ctx, e.holder.ID(), id, data, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	back, err := UnmarshalReceipt(rc.Marshal())
	if err != nil || VerifyReceipt(back) != nil {
		t.Fatalf("marshalled receipt: %v", err)
	}
	tamper := map[string]func(r *Receipt){
		"size":      func(r *Receipt) { r.Size++ },
		"lease":     func(r *Receipt) { r.Lease = r.Lease.Add(time.Hour) },
		"shard":     func(r *Receipt) { r.Shard[0] ^= 1 },
		"owner":     func(r *Receipt) { r.Owner[0] ^= 1 },
		"issued":    func(r *Receipt) { r.Issued = r.Issued.Add(time.Second) },
		"holder":    func(r *Receipt) { r.Holder = e.ch.ID() },
		"signature": func(r *Receipt) { r.Signature = bytes.Clone(r.Signature); r.Signature[0] ^= 1 },
		"key": func(r *Receipt) {
			k := ed25519Key(t)
			r.HolderKey, _ = crypto.MarshalPublicKey(k.GetPublic())
			r.Signature, _ = k.Sign(r.signed())
		},
	}
	for name, f := range tamper {
		r := back
		f(&r)
		if err := VerifyReceipt(r); !errors.Is(err, ErrBadSignature) {
			t.Errorf("receipt with tampered %s verified (%v)", name, err)
		}
	}
	b := rc.Marshal()
	for _, cut := range []int{0, 3, len(b) / 2, len(b) - 1} {
		if _, err := UnmarshalReceipt(b[:cut]); err == nil {
			t.Errorf("receipt cut at %d decoded", cut)
		}
	}
}

func TestRenewAcrossNodes(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	p := e.holder.ID()
	var ids []codec.ShardID
	for i := 0; i < 4; i++ {
		data, id := shard(uint64(10+i), 1000+i)
		if _, err := e.client.Put(ctx, p, id, data, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	_, ghost := shard(50, 5)
	until := time.Now().Add(48 * time.Hour).Truncate(time.Millisecond)
	missing, err := e.client.Renew(ctx, p, append(ids, ghost), until)
	if err != nil || len(missing) != 1 || missing[0] != ghost {
		t.Fatalf("Renew: %v %v", missing, err)
	}
	for _, id := range ids {
		if info, _ := e.disk.Stat(ctx, id); !info.Lease.Equal(until) {
			t.Fatalf("lease %v, want %v", info.Lease, until)
		}
	}
	if st, _ := e.disk.GC(ctx, time.Now().Add(2*time.Hour)); st.Shards != 0 {
		t.Fatalf("renewed shards collected: %+v", st)
	}
	// A renewal signed for other shards is refused as a whole.
	now := time.Now()
	sig, _ := e.ownerKey.Sign(renewSigned(p, ids[:1], until, now))
	if _, err := rawCall(ctx, e.client, p, &request{typ: msgRenew, ids: ids, lease: until.Add(time.Hour), ts: now, key: e.client.keyBytes, sig: sig}); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("renew with a signature over other IDs: %v", err)
	}
}

func TestChallengeAndProofAcrossNodes(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	p := e.holder.ID()
	data, id := shard(5, 20*codec.LeafSize+999)
	rc, err := e.client.Put(ctx, p, id, data, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var salt [32]byte
	salt[0], salt[31] = 0xaa, 0x55
	a, err := e.client.Challenge(ctx, p, id, salt)
	if err != nil {
		t.Fatal(err)
	}
	if a.Answer != shardstore.ChallengeAnswer(salt, data) {
		t.Fatal("holder's answer differs from the owner's precomputed answer")
	}
	// The signed answer stands on its own as evidence, next to the receipt.
	a2, err := UnmarshalChallengeAnswer(a.Marshal())
	if err != nil || VerifyChallengeAnswer(a2) != nil || VerifyReceipt(rc) != nil {
		t.Fatalf("signed answer: %v", err)
	}
	a2.Answer[0] ^= 1
	if err := VerifyChallengeAnswer(a2); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("altered answer verified: %v", err)
	}
	leaves := []int64{0, 7, 19, 20}
	got, _, err := e.client.Proof(ctx, p, id, leaves)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range leaves {
		off := l * codec.LeafSize
		if !bytes.Equal(got[i], data[off:min(off+codec.LeafSize, int64(len(data)))]) {
			t.Fatalf("leaf %d differs", l)
		}
	}
	if _, _, err := e.client.Proof(ctx, p, id, []int64{21}); !errors.Is(err, shardstore.ErrInvalid) {
		t.Fatalf("leaf past the end: %v", err)
	}
	if _, _, err := e.client.Proof(ctx, p, id, make([]int64, MaxProofLeaves+1)); !errors.Is(err, shardstore.ErrInvalid) {
		t.Fatalf("too many leaves: %v", err)
	}
}

// settable is a clock a test moves.
type settable struct {
	mu  sync.Mutex
	now time.Time
}

func (c *settable) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *settable) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestChallengeOnlyForOwnersOncePerInterval(t *testing.T) {
	clk := &settable{now: time.Now()}
	e := newEnv(t, []shardstore.Option{shardstore.WithClock(clk.Now)}, WithClock(clk.Now))
	ctx := ctxT(t)
	p := e.holder.ID()
	owner, err := NewClient(e.ch, e.ownerKey, WithClientClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := NewClient(e.ch, ed25519Key(t), WithClientClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	data, id := shard(8, 3*codec.LeafSize+5)
	if _, err := owner.Put(ctx, p, id, data, clk.Now().Add(90*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	salt := [32]byte{1}
	// Anyone may ask for leaf proofs, as often as they like.
	for range 3 {
		if _, _, err := stranger.Proof(ctx, p, id, []int64{0, 3}); err != nil {
			t.Fatalf("stranger's proof: %v", err)
		}
	}
	// A whole-shard challenge only for an owner.
	if _, err := stranger.Challenge(ctx, p, id, salt); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("stranger's challenge: %v", err)
	}
	ts := clk.Now()
	sig, _ := e.ownerKey.Sign(challengeSigned(p, id, [32]byte{9}, ts))
	if _, err := rawCall(ctx, owner, p, &request{typ: msgChallenge, id: id, salt: salt, ts: ts, key: owner.keyBytes, sig: sig}); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("challenge signed over another salt: %v", err)
	}
	if _, err := rawCall(ctx, owner, p, &request{typ: msgChallenge, id: id, salt: salt, ts: ts, key: owner.keyBytes}); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("unsigned challenge: %v", err)
	}
	a, err := owner.Challenge(ctx, p, id, salt)
	if err != nil || a.Answer != shardstore.ChallengeAnswer(salt, data) {
		t.Fatalf("owner's challenge: %v", err)
	}
	// Once per shard and owner in the interval, whatever the salt.
	clk.Add(DefaultChallengeInterval - time.Hour)
	if _, err := owner.Challenge(ctx, p, id, [32]byte{2}); !errors.Is(err, ErrTooSoon) {
		t.Fatalf("second challenge an hour before the interval ends: %v", err)
	}
	clk.Add(2 * time.Hour)
	if a, err := owner.Challenge(ctx, p, id, [32]byte{2}); err != nil || a.Answer != shardstore.ChallengeAnswer([32]byte{2}, data) {
		t.Fatalf("challenge an hour after the interval: %v", err)
	}
	if st := e.svc.challenges.counts(); st.Admitted != 2 || st.TooSoon != 1 || st.HashedBytes != 2*int64(len(data)) {
		t.Fatalf("challenge counts %+v", st)
	}
}

// lyingBackend serves a store but corrupts what it sends.
type lyingBackend struct{ *shardstore.Disk }

func (l lyingBackend) Get(ctx context.Context, id codec.ShardID) (io.ReadCloser, int64, error) {
	rc, n, err := l.Disk.Get(ctx, id)
	if err != nil {
		return nil, 0, err
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	b[len(b)/2] ^= 1
	return io.NopCloser(bytes.NewReader(b)), n, nil
}

func (l lyingBackend) Prove(ctx context.Context, id codec.ShardID, off, n int64) ([]byte, error) {
	p, err := l.Disk.Prove(ctx, id, off, n)
	if err == nil {
		p[len(p)-1] ^= 1
	}
	return p, err
}

func (l lyingBackend) Challenge(ctx context.Context, id codec.ShardID, salt [32]byte) ([32]byte, error) {
	return [32]byte{1, 2, 3}, nil
}

func TestClientCatchesLyingHolder(t *testing.T) {
	holder, ch := newHost(t), newHost(t)
	disk, err := shardstore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer disk.Close()
	svc, err := NewService(holder, lyingBackend{disk})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	c, err := NewClient(ch, ed25519Key(t))
	if err != nil {
		t.Fatal(err)
	}
	connect(t, ch, holder)
	ctx := ctxT(t)
	p := holder.ID()
	data, id := shard(6, 5*codec.LeafSize)
	rc, err := c.Put(ctx, p, id, data, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	r, _, err := c.Get(ctx, p, id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(r); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("corrupted get: %v, want ErrIntegrity", err)
	}
	r.Close()
	if _, err := c.GetRange(ctx, p, id, 100, 1000); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("corrupted range: %v, want ErrIntegrity", err)
	}
	if _, _, err := c.Proof(ctx, p, id, []int64{2}); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("corrupted leaf: %v, want ErrIntegrity", err)
	}
	// A wrong challenge answer comes signed: evidence with the receipt.
	var salt [32]byte
	a, err := c.Challenge(ctx, p, id, salt)
	if err != nil {
		t.Fatal(err)
	}
	if a.Answer == shardstore.ChallengeAnswer(salt, data) || VerifyChallengeAnswer(a) != nil || VerifyReceipt(rc) != nil || a.Holder != rc.Holder {
		t.Fatal("wrong answer is not usable evidence")
	}
}

func TestSignatureWindowUsesClock(t *testing.T) {
	holderNow := time.Now().Add(-24 * time.Hour)
	e := newEnv(t, nil, WithClock(func() time.Time { return holderNow }))
	data, id := shard(7, 100)
	// The client signs with the real time, a day ahead of the holder.
	if _, err := e.client.Put(ctxT(t), e.holder.ID(), id, data, time.Now().Add(time.Hour)); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("put signed outside the window: %v", err)
	}
}
