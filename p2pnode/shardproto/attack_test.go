package shardproto

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jellyfish-p2p/jellyfish/codec"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardstore"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
)

// The tests in this file run attacks from many peers at once and check
// that an honest client is served while the attackers still hold all the
// holder lets them hold. Attackers get distinct addresses from hosts
// listening on distinct 127.x.y.z addresses (Linux routes all of 127/8 to
// the loopback interface, and libp2p's TCP dials from its listen address,
// so the holder sees that address as the remote one; attackerHosts checks).

// attackerHosts starts n hosts spread over the addresses ips (round
// robin), connects each to holder and checks that the holder sees it
// coming from its address.
func attackerHosts(t *testing.T, holder host.Host, n int, ips []string) []host.Host {
	t.Helper()
	hs := make([]host.Host, n)
	for i := range hs {
		ip := ips[i%len(ips)]
		h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/" + ip + "/tcp/0"))
		if err != nil {
			t.Fatalf("host on %s: %v", ip, err)
		}
		t.Cleanup(func() { h.Close() })
		connect(t, h, holder)
		want := netip.MustParsePrefix(ip + "/32")
		for _, c := range holder.Network().ConnsToPeer(h.ID()) {
			if got := addrGroup(c.RemoteMultiaddr()); got != want {
				t.Fatalf("the holder sees a host listening on %s as %s (%s): the test needs distinct source addresses", ip, c.RemoteMultiaddr(), got)
			}
		}
		hs[i] = h
	}
	return hs
}

// longCtx is a context for the attack tests, which wait longer than ctxT.
func longCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func loopbackIPs(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s.%d", prefix, i+1)
	}
	return out
}

// heldStream is an attacker's stream; ended is closed once the holder
// ended it (an answer and close, or a reset).
type heldStream struct {
	st    network.Stream
	ended chan struct{}
	err   error // how it ended, once ended is closed
	resp  *response
}

func (h *heldStream) open() bool {
	select {
	case <-h.ended:
		return false
	default:
		return true
	}
}

// watch reads the holder's answer, if any, until the stream ends.
func (h *heldStream) watch(typ byte) {
	defer close(h.ended)
	buf, _, err := readFrame(h.st, MaxHeaderSize, nil)
	if err != nil {
		h.err = err
		return
	}
	h.resp, h.err = decodeResponse(typ, buf)
	io.Copy(io.Discard, h.st)
}

func countOpen(ss []*heldStream) int {
	n := 0
	for _, s := range ss {
		if s.open() {
			n++
		}
	}
	return n
}

// halfHeaders opens per streams from each host and writes the first bytes
// of a request header whose end never comes.
func halfHeaders(t *testing.T, ctx context.Context, hs []host.Host, holder host.Host, per int) []*heldStream {
	t.Helper()
	var mu sync.Mutex
	var out []*heldStream
	var wg sync.WaitGroup
	for _, h := range hs {
		for range per {
			wg.Add(1)
			go func() {
				defer wg.Done()
				st, err := h.NewStream(ctx, holder.ID(), ID)
				if err != nil {
					return
				}
				// A 200-byte get header of which 5 bytes are sent.
				st.Write([]byte{0, 0, 0, 200, msgGet})
				hs := &heldStream{st: st, ended: make(chan struct{})}
				go hs.watch(msgGet)
				mu.Lock()
				out = append(out, hs)
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, s := range out {
			s.st.Reset()
		}
	})
	return out
}

// honestRounds puts n new 100 kB shards and reads each back, and returns
// how many of the 2n operations succeeded.
func honestRounds(t *testing.T, ctx context.Context, e *env, seed uint64, n int) int {
	t.Helper()
	ok := 0
	for i := range n {
		data, id := shard(seed+uint64(i), 100_000)
		if _, err := e.client.Put(ctx, e.holder.ID(), id, data, time.Now().Add(time.Hour)); err != nil {
			t.Errorf("honest put %d: %v", i, err)
			continue
		}
		ok++
		r, _, err := e.client.Get(ctx, e.holder.ID(), id)
		if err != nil {
			t.Errorf("honest get %d: %v", i, err)
			continue
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("honest get %d: %d bytes, %v", i, len(got), err)
			continue
		}
		ok++
	}
	return ok
}

// TestHalfHeadersLeaveRoomForHonest: attackers open streams and send the
// first bytes of a request header, never the rest, from 8 peers on 8
// addresses (8 streams each, what used to fill every serving slot), then
// from 50 peers on 4 addresses. The holder's header timeout is two minutes,
// so nothing ends their streams but the admission itself. Honest puts and
// gets succeed while the attackers' streams are still open and pending.
func TestHalfHeadersLeaveRoomForHonest(t *testing.T) {
	const rounds = 5
	e := newEnv(t, nil, WithHeaderTimeout(2*time.Minute))
	ctx := longCtx(t)

	first := halfHeaders(t, ctx, attackerHosts(t, e.holder, 8, loopbackIPs("127.0.1", 8)), e.holder, 8)
	waitFor(t, 20*time.Second, "64 half headers pending", func() bool { return e.svc.gate.stats().Pending == 64 })
	ok := honestRounds(t, ctx, e, 1000, rounds)
	held := countOpen(first)
	gs := e.svc.gate.stats()
	t.Logf("hostile half-headers, 8 peers x 8 streams on 8 addresses: honest-ok=%d/%d held-by-attackers=%d streams (%d pending, %d pushed out)",
		ok, 2*rounds, held, gs.Pending, gs.Evicted)
	if ok != 2*rounds || held != 64 || gs.Pending != 64 {
		t.Fatalf("honest-ok %d/%d with %d of 64 attacker streams open, %d pending", ok, 2*rounds, held, gs.Pending)
	}

	// 50 identities from 4 addresses, 8 streams each: each address keeps
	// DefaultMaxAddrPending of them; its newer streams push out its older
	// ones, never anyone else's.
	addrs := loopbackIPs("127.0.2", 4)
	second := halfHeaders(t, ctx, attackerHosts(t, e.holder, 50, addrs), e.holder, 8)
	waitFor(t, 30*time.Second, "the second wave settled", func() bool {
		gs := e.svc.gate.stats()
		for _, a := range addrs {
			if gs.PendingByAddr[netip.MustParsePrefix(a+"/32")] != DefaultMaxAddrPending {
				return false
			}
		}
		return countOpen(second) == 4*DefaultMaxAddrPending
	})
	ok = honestRounds(t, ctx, e, 2000, rounds)
	held1, held2 := countOpen(first), countOpen(second)
	gs = e.svc.gate.stats()
	t.Logf("hostile half-headers, 50 peers x 8 streams on 4 addresses: honest-ok=%d/%d held-by-attackers=%d streams (%d of the first wave, %d of %d of the second; %d pending, %d pushed out)",
		ok, 2*rounds, held1+held2, held1, held2, len(second), gs.Pending, gs.Evicted)
	if ok != 2*rounds || held1 != 64 || held2 != 4*DefaultMaxAddrPending {
		t.Fatalf("honest-ok %d/%d with attacker streams open: %d of 64 and %d of %d", ok, 2*rounds, held1, held2, 4*DefaultMaxAddrPending)
	}
	if gs.PeakServing > 2 {
		t.Fatalf("%d streams served at once: half headers reached serving slots", gs.PeakServing)
	}
}

// TestHalfHeadersFillingThePool: when half headers fill every pending
// place, a new stream pushes out the oldest, so honest requests, whose
// headers follow at once, are still served; the attackers keep the rest.
func TestHalfHeadersFillingThePool(t *testing.T) {
	const (
		rounds = 5
		pool   = 48
	)
	e := newEnv(t, nil, WithHeaderTimeout(2*time.Minute), WithMaxPending(pool, 32, 16))
	ctx := longCtx(t)
	att := halfHeaders(t, ctx, attackerHosts(t, e.holder, 8, loopbackIPs("127.0.4", 8)), e.holder, 8)
	waitFor(t, 20*time.Second, "the pool full", func() bool {
		return e.svc.gate.stats().Pending == pool && countOpen(att) == pool
	})
	ok := honestRounds(t, ctx, e, 3000, rounds)
	held := countOpen(att)
	gs := e.svc.gate.stats()
	t.Logf("hostile half-headers filling a pool of %d: honest-ok=%d/%d held-by-attackers=%d streams (%d pushed out)",
		pool, ok, 2*rounds, held, gs.Evicted)
	// Each honest stream pushed out at most one attacker stream; allow as
	// many again for retries.
	if ok != 2*rounds || held < pool-4*rounds {
		t.Fatalf("honest-ok %d/%d, attackers hold %d of %d", ok, 2*rounds, held, pool)
	}
}

// slowPut is an attacker's put with a valid owner signature whose body
// trickles in until stop is closed.
func slowPut(ctx context.Context, h host.Host, holder host.Host, ownerKey []byte, sign func([]byte) ([]byte, error), size int64, stop <-chan struct{}) (*heldStream, error) {
	var id codec.ShardID
	crand.Read(id[:])
	ts := time.Now()
	lease := ts.Add(time.Hour)
	sig, err := sign(putSigned(holder.ID(), id, size, lease, ts))
	if err != nil {
		return nil, err
	}
	st, err := h.NewStream(ctx, holder.ID(), ID)
	if err != nil {
		return nil, err
	}
	req := &request{typ: msgPut, id: id, size: size, lease: lease, ts: ts, key: ownerKey, sig: sig}
	if err := writeFrame(st, req.encode()); err != nil {
		st.Reset()
		return nil, err
	}
	hs := &heldStream{st: st, ended: make(chan struct{})}
	go hs.watch(msgPut)
	go func() {
		chunk := make([]byte, 1<<10)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-hs.ended:
				return
			case <-tick.C:
				if _, err := st.Write(chunk); err != nil {
					return
				}
			}
		}
	}()
	return hs, nil
}

// TestSlowPutsHoldBoundedReservations: 50 identities, each with its own
// owner key, on 4 addresses, start as many validly signed 16 MiB puts as
// the holder admits (8 each, the per-peer cap) and trickle their bodies
// (1 KiB every 250 ms) to hold the space reserved for them. The holder's
// store has the default quota (tier 0, 1 GiB) and largest shard (64 MiB);
// the minimum rate is lowered to 16 KiB/s, so that only the stall timeout,
// not the body deadline (over 17 minutes here), can end the puts early.
//
// Without the reservation shares the admitted puts would reserve the
// whole quota (4 addresses x 16 serving slots x 16 MiB = 1 GiB). With
// them, each address holds at most max(64 MiB, free/8) <= 128 MiB; an
// honest 100 kB put from another address succeeds while they hold it;
// and once the attackers stop sending, the stall timeout releases every
// reservation.
func TestSlowPutsHoldBoundedReservations(t *testing.T) {
	const (
		ids    = 50
		perID  = DefaultMaxPeerStreams
		size   = 16 << 20
		rounds = 3
	)
	e := newEnv(t, nil, WithMinRate(16<<10))
	ctx := longCtx(t)
	addrs := loopbackIPs("127.0.3", 4)
	hs := attackerHosts(t, e.holder, ids, addrs)
	stop := make(chan struct{})
	var stopOnce sync.Once
	stopAll := func() { stopOnce.Do(func() { close(stop) }) }
	t.Cleanup(stopAll)

	var mu sync.Mutex
	var puts []*heldStream
	var wg sync.WaitGroup
	for _, h := range hs {
		key := ed25519Key(t)
		kb, err := crypto.MarshalPublicKey(key.GetPublic())
		if err != nil {
			t.Fatal(err)
		}
		for range perID {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p, err := slowPut(ctx, h, e.holder, kb, key.Sign, size, stop)
				if err != nil {
					return
				}
				mu.Lock()
				puts = append(puts, p)
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, p := range puts {
			p.st.Reset()
		}
	})
	// Settled: every attacker put still open holds its reservation, and
	// no stream waits for admission.
	waitFor(t, 60*time.Second, "the attack settled", func() bool {
		u := e.disk.Usage()
		gs := e.svc.gate.stats()
		return gs.Pending == 0 && gs.Serving == countOpen(puts) && u.Reserved == int64(countOpen(puts))*size
	})
	before := e.disk.Usage()
	ok := 0
	for i := range rounds {
		data, id := shard(uint64(4000+i), 100_000)
		if _, err := e.client.Put(ctx, e.holder.ID(), id, data, time.Now().Add(time.Hour)); err != nil {
			t.Errorf("honest put %d: %v", i, err)
			continue
		}
		ok++
	}
	after := e.disk.Usage()
	held := countOpen(puts)

	var busy, refused int
	for _, p := range puts {
		if p.open() {
			continue
		}
		var se *network.StreamError
		switch {
		case p.resp != nil && p.resp.status == StatusBusy:
			busy++
		case errors.As(p.err, &se) && se.ErrorCode == network.StreamResourceLimitExceeded:
			refused++
		}
	}
	limit := max(int64(shardstore.DefaultMaxShardSize), before.Quota/shardstore.DefaultReservationShare)
	var attackers int64
	for _, a := range addrs {
		attackers += after.ReservedBySource[netip.MustParsePrefix(a+"/32")]
	}
	t.Logf("hostile slow-puts, 50 owner keys on 4 addresses: honest-ok=%d/%d reserved-by-attackers=%d MiB of a %d MiB quota (%d puts held; %d answered Busy, %d refused a slot, of %d)",
		ok, rounds, attackers>>20, after.Quota>>20, held, busy, refused, len(puts))
	if ok != rounds {
		t.Fatalf("honest-ok %d/%d", ok, rounds)
	}
	for _, u := range []shardstore.Usage{before, after} {
		if len(u.ReservedBySource) != len(addrs) {
			t.Fatalf("reservations from %d sources, want the %d attacker addresses: %v", len(u.ReservedBySource), len(addrs), u.ReservedBySource)
		}
		for src, n := range u.ReservedBySource {
			if n <= 0 || n > limit {
				t.Fatalf("source %s holds %d bytes reserved, want 0 < n <= %d", src, n, limit)
			}
		}
		for o, n := range u.ReservedByOwner {
			if n > limit {
				t.Fatalf("owner %s holds %d bytes reserved, limit %d", o.Short(), n, limit)
			}
		}
	}
	if after.Reserved != before.Reserved || held == 0 || busy == 0 {
		t.Fatalf("the attack did not hold through the honest puts, or the shares never refused it: reserved %d then %d, %d held, %d busy",
			before.Reserved, after.Reserved, held, busy)
	}

	// The attackers stop sending: the stall timeout ends their puts and
	// frees what they reserved, long before the body deadline.
	stopAll()
	start := time.Now()
	waitFor(t, 60*time.Second, "the reservations released", func() bool {
		return e.disk.Usage().Reserved == 0 && countOpen(puts) == 0
	})
	t.Logf("hostile slow-puts: the reservations were released %v after the attackers stalled (stall timeout %v, body deadline %v)",
		time.Since(start).Round(100*time.Millisecond), DefaultStallTimeout, e.svc.cfg.bodyTimeout(size))
}

// hashCounter serves a disk and counts the shard bytes its challenges
// read: each Disk.Challenge reads and hashes the whole shard.
type hashCounter struct {
	*shardstore.Disk
	hashed atomic.Int64
}

func (h *hashCounter) Challenge(ctx context.Context, id codec.ShardID, salt [32]byte) ([32]byte, error) {
	if info, err := h.Disk.Stat(ctx, id); err == nil {
		h.hashed.Add(info.Size)
	}
	return h.Disk.Challenge(ctx, id, salt)
}

// TestChallengeFloodIsBounded: a salted-hash challenge is a request of
// about 200 bytes that makes the holder read and hash a whole shard. 16
// owner keys on 2 addresses each hold a reference to one 2 MiB shard (one
// upload, the others deduplicated) and ask for 10 challenges each. The
// holder hashes each key's shard at most once in the challenge interval,
// and each address at most its budget (8 MiB here, no refill: the holder's
// clock stands still); everything else is answered TooSoon or Busy without
// a read. Leaf proofs are served throughout, a stranger's challenge is
// refused, and the honest owner's challenge of its own shard succeeds.
func TestChallengeFloodIsBounded(t *testing.T) {
	const (
		keys   = 16
		per    = 10
		size   = 2 << 20
		burst  = 8 << 20
		nAddrs = 2
	)
	clk := &settable{now: time.Now()}
	var counter *hashCounter
	e := newEnvWith(t, []shardstore.Option{shardstore.WithClock(clk.Now), shardstore.WithMaxShardSize(burst)},
		func(d *shardstore.Disk) Backend { counter = &hashCounter{Disk: d}; return counter },
		WithClock(clk.Now), WithMaxShardSize(burst), WithChallengeBudget(burst, 1))
	ctx := longCtx(t)
	p := e.holder.ID()
	honest, err := NewClient(e.ch, e.ownerKey, WithClientClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	mine, mineID := shard(5000, size)
	if _, err := honest.Put(ctx, p, mineID, mine, clk.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}

	addrs := loopbackIPs("127.0.4", nAddrs)
	hs := attackerHosts(t, e.holder, keys, addrs)
	theirs, theirID := shard(5001, size)
	clients := make([]*Client, keys)
	for i, h := range hs {
		if clients[i], err = NewClient(h, ed25519Key(t), WithClientClock(clk.Now)); err != nil {
			t.Fatal(err)
		}
		// The first put stores the shard; the others only add a reference.
		if _, err := clients[i].Put(ctx, p, theirID, theirs, clk.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if info, err := e.disk.Stat(ctx, theirID); err != nil || info.Refs != keys {
		t.Fatalf("attackers' shard: %+v %v", info, err)
	}

	// What one challenge request weighs on the wire.
	sig, _ := ed25519Key(t).Sign(challengeSigned(p, theirID, [32]byte{}, clk.Now()))
	reqBytes := int64(4 + len((&request{typ: msgChallenge, id: theirID, ts: clk.Now(), key: clients[0].keyBytes, sig: sig}).encode()))

	// flood has every key ask for per challenges, wave w's salts, while the
	// honest owner audits its shard with leaf proofs; it returns the
	// attackers' answers by kind and how many honest proofs succeeded.
	okByAddr := map[string]int{}
	var proofs int
	flood := func(w int) (ok, tooSoon, busy, proofsOK int) {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i, c := range clients {
			wg.Go(func() {
				for j := range per {
					salt := [32]byte{byte(i), byte(j), byte(w)}
					a, err := c.Challenge(ctx, p, theirID, salt)
					mu.Lock()
					switch {
					case err == nil && a.Answer == shardstore.ChallengeAnswer(salt, theirs):
						ok++
						okByAddr[addrs[i%nAddrs]]++
					case errors.Is(err, ErrTooSoon):
						tooSoon++
					case errors.Is(err, ErrBusy):
						busy++
					default:
						t.Errorf("wave %d: attacker %d challenge %d: %v", w, i, j, err)
					}
					mu.Unlock()
				}
			})
		}
		wg.Go(func() {
			for j := range 10 {
				_, _, err := honest.Proof(ctx, p, mineID, []int64{int64(j) % codec.LeafCount(size)})
				mu.Lock()
				proofs++
				if err == nil {
					proofsOK++
				} else {
					t.Errorf("wave %d: honest proof %d: %v", w, j, err)
				}
				mu.Unlock()
			}
		})
		wg.Wait()
		return ok, tooSoon, busy, proofsOK
	}
	ok, tooSoon, busy, honestOK := flood(1)
	hashed1 := counter.hashed.Load()
	ok2, tooSoon2, busy2, honestOK2 := flood(2)
	honestOK += honestOK2
	// After the floods: the honest owner's own challenge, from its own
	// address, and a stranger's refused.
	salt := [32]byte{42}
	if a, err := honest.Challenge(ctx, p, mineID, salt); err != nil || a.Answer != shardstore.ChallengeAnswer(salt, mine) {
		t.Errorf("honest challenge after the flood: %v", err)
	} else {
		honestOK++
	}
	stranger, err := NewClient(e.ch, ed25519Key(t), WithClientClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stranger.Challenge(ctx, p, mineID, salt); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("a stranger's challenge: %v", err)
	}

	requests := int64(keys * per)
	hashed := counter.hashed.Load() - size // less the honest owner's challenge
	st := e.svc.challenges.counts()
	t.Logf("hostile challenges, %d owner keys on %d addresses x %d challenges of a %d MiB shard: honest-ok=%d/%d hashed-by-holder=%d MiB for %d requests of %d bytes (%d answered, %d too soon, %d busy): %.0f bytes hashed per request byte, %d without the limits; a second wave of %d: %d MiB more hashed (%d answered, %d too soon, %d busy)",
		keys, nAddrs, per, size>>20, honestOK, proofs+1, hashed1>>20, requests, reqBytes, ok, tooSoon, busy,
		float64(hashed1)/float64(requests*reqBytes), size/reqBytes, requests, (hashed-hashed1)>>20, ok2, tooSoon2, busy2)
	if honestOK != proofs+1 {
		t.Fatalf("honest-ok %d/%d", honestOK, proofs+1)
	}
	if ok+tooSoon+busy != int(requests) || tooSoon == 0 || busy == 0 || ok2+tooSoon2+busy2 != int(requests) {
		t.Fatalf("first wave %d answered, %d too soon, %d busy; second %d, %d, %d; of %d requests each", ok, tooSoon, busy, ok2, tooSoon2, busy2, requests)
	}
	// Each address had at most its budget hashed, each key at most once,
	// and more requests brought nothing more.
	for a, n := range okByAddr {
		if int64(n)*size > burst {
			t.Fatalf("address %s had %d challenges of %d bytes hashed, budget %d", a, n, size, burst)
		}
	}
	if hashed1 != int64(ok)*size || hashed1 > nAddrs*burst || ok > keys {
		t.Fatalf("holder hashed %d bytes for %d answered challenges, bound %d", hashed1, ok, nAddrs*burst)
	}
	if ok2 != 0 || hashed != hashed1 {
		t.Fatalf("the second wave had %d challenges answered, %d more bytes hashed", ok2, hashed-hashed1)
	}
	if st.Admitted != ok+1 || st.HashedBytes != hashed+size {
		t.Fatalf("service counted %+v", st)
	}
}

// TestFullPeerIsRefusedBeforeItsSignatureIsChecked: checking an owner's
// signature costs the holder more than the request costs the sender, so a
// peer whose serving slots are all taken is refused before its signature
// is looked at. A put with a bad signature from a peer holding its one
// slot is reset as Busy, not answered Unauthorized; once the slot is free
// the same put is answered Unauthorized, which shows the signature was not
// checked before.
func TestFullPeerIsRefusedBeforeItsSignatureIsChecked(t *testing.T) {
	e := newEnv(t, nil, WithMaxStreams(16, 16, 1))
	ctx := ctxT(t)
	h := attackerHosts(t, e.holder, 1, loopbackIPs("127.0.4", 1))[0]
	key := ed25519Key(t)
	kb, err := crypto.MarshalPublicKey(key.GetPublic())
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var stopOnce sync.Once
	stopAll := func() { stopOnce.Do(func() { close(stop) }) }
	t.Cleanup(stopAll)
	held, err := slowPut(ctx, h, e.holder, kb, key.Sign, 16<<20, stop)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { held.st.Reset() })
	waitFor(t, 10*time.Second, "the slow put served", func() bool { return e.svc.gate.stats().Serving == 1 })

	badSign := func([]byte) ([]byte, error) { return make([]byte, 64), nil }
	refused := e.svc.gate.stats().Refused
	p, err := slowPut(ctx, h, e.holder, kb, badSign, 1<<20, stop)
	if err != nil {
		t.Fatal(err)
	}
	<-p.ended
	var se *network.StreamError
	if p.resp != nil || !errors.As(p.err, &se) || se.ErrorCode != network.StreamResourceLimitExceeded {
		t.Fatalf("a bad put from a peer with no free slot: answer %+v, error %v; want a Busy reset before the signature check", p.resp, p.err)
	}
	if got := e.svc.gate.stats().Refused; got != refused+1 {
		t.Fatalf("refused count %d, want %d", got, refused+1)
	}
	if !held.open() {
		t.Fatal("the held put ended")
	}

	stopAll()
	held.st.Reset()
	waitFor(t, 30*time.Second, "the slot freed", func() bool { return e.svc.gate.stats().Serving == 0 })
	p, err = slowPut(ctx, h, e.holder, kb, badSign, 1<<20, make(chan struct{}))
	if err != nil {
		t.Fatal(err)
	}
	<-p.ended
	if p.resp == nil || p.resp.status != StatusUnauthorized {
		t.Fatalf("a bad put with a free slot: answer %+v, error %v; want Unauthorized", p.resp, p.err)
	}
}

// TestRefusalsOverBudgetAreHeld: a peer that keeps sending requests its
// full slots refuse gets its first DefaultRefusalBurst refusals at once and
// the next ones only after the hold, and the holder counts them; another
// peer's request is served meanwhile.
func TestRefusalsOverBudgetAreHeld(t *testing.T) {
	const hold = 300 * time.Millisecond
	e := newEnv(t, nil, WithMaxStreams(16, 16, 1), WithRefusalHold(hold))
	// No refill: the loop below may run slowly on a busy machine.
	e.svc.refusals.rate = 0
	ctx := ctxT(t)
	h := attackerHosts(t, e.holder, 1, loopbackIPs("127.0.5", 1))[0]
	key := ed25519Key(t)
	kb, err := crypto.MarshalPublicKey(key.GetPublic())
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	held, err := slowPut(ctx, h, e.holder, kb, key.Sign, 16<<20, stop)
	if err != nil {
		t.Fatal(err)
	}
	defer held.st.Reset()
	waitFor(t, 10*time.Second, "the slow put served", func() bool { return e.svc.gate.stats().Serving == 1 })

	const over = 4
	for i := range DefaultRefusalBurst + over {
		start := time.Now()
		p, err := slowPut(ctx, h, e.holder, kb, key.Sign, 1<<20, stop)
		if err != nil {
			t.Fatal(err)
		}
		<-p.ended
		var se *network.StreamError
		if !errors.As(p.err, &se) || se.ErrorCode != network.StreamResourceLimitExceeded {
			t.Fatalf("request %d: %v, want the retry code", i, p.err)
		}
		if took := time.Since(start); i >= DefaultRefusalBurst && took < hold {
			t.Fatalf("refusal %d, past the budget, came after %v, before the hold of %v", i, took, hold)
		}
	}
	if st := e.svc.Stats(); st.RefusalsHeld != over {
		t.Fatalf("the holder counts %d held refusals, want %d", st.RefusalsHeld, over)
	}
	data, id := shard(4100, 10_000)
	if _, err := e.client.Put(ctx, e.holder.ID(), id, data, time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("another peer's put: %v", err)
	}
}
