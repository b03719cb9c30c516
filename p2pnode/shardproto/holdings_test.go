package shardproto

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardstore"
)

// TestHoldings: a statement reaches the provider's callback with the
// account its owner key names and its entries in order; one over the
// bound is refused before it is sent; a service without the callback
// says it counts none; the statement is counted by name in the stats.
func TestHoldings(t *testing.T) {
	var (
		mu   sync.Mutex
		got  []Holding
		from peer.ID
	)
	take := func(_ context.Context, account peer.ID, hs []Holding) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		from, got = account, append([]Holding(nil), hs...)
		if len(hs) == 1 {
			return "", fmt.Errorf("%w: one is not enough", shardstore.ErrInvalid)
		}
		return "counted", nil
	}
	e := newEnv(t, nil, WithHoldings(take))
	ctx := ctxT(t)
	p := e.holder.ID()
	a, b := peer.ID(strings.Repeat("a", 38)), peer.ID(strings.Repeat("b", maxIDLen))
	msg, err := e.client.Holdings(ctx, p, []Holding{{a, 1 << 40}, {b, 0}})
	if err != nil || msg != "counted" {
		t.Fatalf("holdings: %q, %v", msg, err)
	}
	account, _ := peer.IDFromPrivateKey(e.ownerKey)
	mu.Lock()
	if from != account || len(got) != 2 || got[0] != (Holding{a, 1 << 40}) || got[1] != (Holding{b, 0}) {
		t.Fatalf("provider got %v from %s", got, from)
	}
	mu.Unlock()
	var re *RemoteError
	if _, err := e.client.Holdings(ctx, p, []Holding{{a, 1}}); !errors.As(err, &re) || !strings.Contains(err.Error(), "one is not enough") {
		t.Fatalf("refused statement: %v", err)
	}
	// The most a frame carries: MaxHoldings entries of the longest IDs.
	full := make([]Holding, MaxHoldings)
	for i := range full {
		full[i] = Holding{b, int64(i)}
	}
	if _, err := e.client.Holdings(ctx, p, full); err != nil {
		t.Fatalf("%d holdings: %v", MaxHoldings, err)
	}
	for _, bad := range [][]Holding{append(full, Holding{a, 1}), {{a, -1}}, {{"", 1}}, {{peer.ID(strings.Repeat("c", maxIDLen+1)), 1}}} {
		if _, err := e.client.Holdings(ctx, p, bad); err == nil {
			t.Fatalf("%d holdings, first %v: sent", len(bad), bad[0])
		}
	}
	if n := e.svc.Stats().Answered("holdings", StatusOK); n != 2 {
		t.Fatalf("%d holdings statements answered OK", n)
	}
	plain := newEnv(t, nil)
	msg, err = plain.client.Holdings(ctx, plain.holder.ID(), []Holding{{a, 1}})
	if err != nil || !strings.HasPrefix(msg, "not counted") {
		t.Fatalf("a service that counts none: %q, %v", msg, err)
	}
}
