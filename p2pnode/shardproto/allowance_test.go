package shardproto

import (
	"bytes"
	"context"
	"errors"
	"github.com/libp2p/go-libp2p/core/network"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardstore"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TestOverAllowanceAcrossNodes: a put past the allowance the admission
// policy gives the owner's account is refused with its own status, the
// holder's plain words and the sentinel; the body is not read; the
// policy is asked about the account the owner key names, and only for new
// references.
func TestOverAllowanceAcrossNodes(t *testing.T) {
	var (
		mu      sync.Mutex
		asked   []peer.ID
		repairs int
	)
	admit := func(ctx context.Context, account peer.ID, repair bool) shardstore.Allowance {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, account)
		if repair {
			repairs++
			return shardstore.Allowance{Max: 125_000, Who: "a repair"}
		}
		return shardstore.Allowance{Max: 100_000, Who: "an account that shares no node", Advice: "run a node (jellyfish node) linked to your account to store more"}
	}
	e := newEnv(t, nil, WithAdmission(admit))
	ctx := ctxT(t)
	p := e.holder.ID()
	lease := time.Now().Add(time.Hour)
	d1, id1 := shard(41, 60_000)
	if _, err := e.client.Put(ctx, p, id1, d1, lease); err != nil {
		t.Fatal(err)
	}
	d2, id2 := shard(42, 16<<20)
	cr := &countReader{r: bytes.NewReader(d2)}
	_, err := e.client.PutReader(ctx, p, id2, int64(len(d2)), cr, lease)
	var re *RemoteError
	if !errors.Is(err, ErrOverAllowance) || !errors.As(err, &re) || re.Status != StatusOverAllowance {
		t.Fatalf("put over the allowance: %v", err)
	}
	want := "holder " + p.String()[:14] + "…: this provider keeps at most 97.6 KiB for an account that shares no node (it holds 58.5 KiB of yours); run a node (jellyfish node) linked to your account to store more"
	if err.Error() != want {
		t.Fatalf("message\n%q, want\n%q", err.Error(), want)
	}
	if n := cr.n.Load(); n > maxWasted {
		t.Fatalf("%d body bytes sent although the put was refused", n)
	}
	// A re-put of what the owner references passes without asking.
	if _, err := e.client.Put(ctx, p, id1, d1, lease.Add(time.Minute)); err != nil {
		t.Fatalf("re-put: %v", err)
	}
	account, _ := peer.IDFromPrivateKey(e.ownerKey)
	mu.Lock()
	if len(asked) != 2 || asked[0] != account || asked[1] != account {
		t.Fatalf("asked about %v, want %s twice", asked, account)
	}
	mu.Unlock()
	// Usage says what the owner holds and what the allowance leaves it.
	held, room, err := e.client.Usage(ctx, p)
	if err != nil || held != 60_000 || room != 40_000 {
		t.Fatalf("usage: held %d, room %d, %v; want 60000 and 40000", held, room, err)
	}
	if n := e.svc.Stats().Answered("usage", StatusOK); n != 1 {
		t.Fatalf("%d usage requests counted", n)
	}
	if n := e.svc.Stats().Answered("put", StatusOverAllowance); n != 1 || StatusOverAllowance.String() != "over_allowance" {
		t.Fatalf("%d puts counted as %s", n, StatusOverAllowance)
	}

	// A repair's put is admitted under the repair allowance: 60,000 bytes
	// more pass where a put of them would not, and past 125,000 a repair
	// is refused too.
	d3, id3 := shard(43, 60_000)
	if _, err := e.client.PutReader(ctx, p, id3, int64(len(d3)), bytes.NewReader(d3), lease); !errors.Is(err, ErrOverAllowance) {
		t.Fatalf("put past the cap: %v", err)
	}
	rc, err := e.client.RepairReader(ctx, p, id3, int64(len(d3)), bytes.NewReader(d3), lease)
	if err != nil || rc.Shard != id3 {
		t.Fatalf("repair within the slack: %+v %v", rc, err)
	}
	d4, id4 := shard(44, 10_000)
	if _, err := e.client.RepairReader(ctx, p, id4, int64(len(d4)), bytes.NewReader(d4), lease); !errors.Is(err, ErrOverAllowance) || !strings.Contains(err.Error(), "for a repair") {
		t.Fatalf("repair past the slack: %v", err)
	}
	mu.Lock()
	if repairs != 2 {
		t.Fatalf("%d repairs asked about, want 2", repairs)
	}
	mu.Unlock()
	if held, _, err := e.client.Usage(ctx, p); err != nil || held != 120_000 {
		t.Fatalf("usage after the repair: %d %v", held, err)
	}
}

// peekedStream replays the bytes a handler read ahead, then the stream.
type peekedStream struct {
	network.Stream
	r io.Reader
}

func (s *peekedStream) Read(p []byte) (int, error) { return s.r.Read(p) }

// TestRepairToAnEarlierHolder: a holder of an earlier version knows no
// repair request and resets the stream as it resets any it cannot decode
// (the holder here resets exactly those, before its service sees them).
// RepairReader then sends the shard as a plain put, which that holder
// stores; the plain put's own refusals stay refusals.
func TestRepairToAnEarlierHolder(t *testing.T) {
	e := newEnv(t, nil)
	var resets atomic.Int64
	e.holder.SetStreamHandler(ID, func(st network.Stream) {
		head := make([]byte, 5) // the frame's length, then the message type
		if _, err := io.ReadFull(st, head); err != nil {
			st.Reset()
			return
		}
		if head[4] == msgRepair {
			resets.Add(1)
			st.Reset()
			return
		}
		e.svc.handle(&peekedStream{Stream: st, r: io.MultiReader(bytes.NewReader(head), st)})
	})
	ctx := ctxT(t)
	p := e.holder.ID()
	d, id := shard(51, 300_000)
	rc, err := e.client.RepairReader(ctx, p, id, int64(len(d)), bytes.NewReader(d), time.Now().Add(time.Hour))
	if err != nil || rc.Shard != id {
		t.Fatalf("repair to an earlier holder: %+v %v", rc, err)
	}
	if resets.Load() != 1 {
		t.Fatalf("%d repairs reset, want 1 and then a put", resets.Load())
	}
	if n := e.svc.Stats().Answered("put", StatusOK); n != 1 {
		t.Fatalf("%d puts stored", n)
	}
	// A body that cannot be rewound is not sent twice.
	d2, id2 := shard(52, 300_000)
	if _, err := e.client.RepairReader(ctx, p, id2, int64(len(d2)), io.MultiReader(bytes.NewReader(d2)), time.Now().Add(time.Hour)); err == nil {
		t.Fatal("a repair with a body read once succeeded at a holder that resets repairs")
	}
}

// TestRepairSignedApart: a put's signature does not make a repair, nor a
// repair's a put: each is signed under its own domain.
func TestRepairSignedApart(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	p := e.holder.ID()
	_, id := shard(61, 1000)
	ts, lease := time.Now(), time.Now().Add(time.Hour)
	sign := func(msg []byte) []byte {
		s, err := e.ownerKey.Sign(msg)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	kb := e.client.keyBytes
	for name, req := range map[string]*request{
		"repair with a put's signature": {typ: msgPut, repair: true, id: id, size: 1000, lease: lease, ts: ts, key: kb, sig: sign(putSigned(p, id, 1000, lease, ts))},
		"put with a repair's signature": {typ: msgPut, id: id, size: 1000, lease: lease, ts: ts, key: kb, sig: sign(repairSigned(p, id, 1000, lease, ts))},
	} {
		if _, err := rawCall(ctx, e.client, p, req); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("%s: %v, want ErrUnauthorized", name, err)
		}
	}
}
