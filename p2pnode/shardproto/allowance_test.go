package shardproto

import (
	"bytes"
	"context"
	"errors"
	"sync"
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
		mu    sync.Mutex
		asked []peer.ID
	)
	admit := func(ctx context.Context, account peer.ID) shardstore.Allowance {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, account)
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
}
