package provider

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardproto"
)

// TestHoldingsCounted: a node is credited what other accounts state it
// holds, each account's statements scaled down to its allowance; an
// account's statements about its own nodes, or the node it is itself,
// count for nothing; a zero entry withdraws one; entries end HoldingsTTL
// after they were last stated (a nanosecond either side); the bounds hold
// past their edges; the state survives a save.
func TestHoldingsCounted(t *testing.T) {
	h := newHoldings(nil)
	x, y, mine := keyID(t), keyID(t), keyID(t)
	alice, bob, carol := keyID(t), keyID(t), keyID(t)
	now := t0
	if n := h.state(alice, 10<<30, nil, []shardproto.Holding{hd(x, 3<<30), hd(y, 1<<30)}, now); n != 2 {
		t.Fatalf("alice: %d counted", n)
	}
	// Bob's allowance is 2 GiB and he states 4: each entry counts half.
	if n := h.state(bob, 2<<30, []peer.ID{mine}, []shardproto.Holding{hd(x, 4<<30), hd(mine, 1<<40), hd(peer.ID(bob), 1<<40)}, now); n != 1 {
		t.Fatalf("bob: %d counted, want his own node and himself left out", n)
	}
	for _, c := range []struct {
		node, except peer.ID
		want         int64
	}{{x, "", 5 << 30}, {x, alice, 2 << 30}, {x, bob, 3 << 30}, {y, carol, 1 << 30}, {mine, carol, 0}} {
		if got := h.held(c.node, c.except, now); got != c.want {
			t.Errorf("held(%s except %s) = %d, want %d", c.node, c.except, got, c.want)
		}
	}
	// Alice withdraws y and restates x a day later.
	later := now.Add(24 * time.Hour)
	h.state(alice, 10<<30, nil, []shardproto.Holding{hd(x, 3<<30), hd(y, 0)}, later)
	if got := h.held(y, "", later); got != 0 {
		t.Errorf("withdrawn: y holds %d", got)
	}
	end := now.Add(HoldingsTTL)
	if got := h.held(x, "", end.Add(-time.Nanosecond)); got != 5<<30 {
		t.Errorf("a nanosecond before bob's entry ends: %d", got)
	}
	if got := h.held(x, "", end); got != 3<<30 {
		t.Errorf("when bob's entry ends: %d, want alice's 3 GiB", got)
	}
	h.prune(end)
	if _, ok := h.accounts[bob]; ok || h.entries != 1 || len(h.byHolder) != 1 {
		t.Errorf("after pruning: %d entries, %d holders, bob kept %v", h.entries, len(h.byHolder), ok)
	}
	// The provider's clock goes back a year: alice's entry, stamped in
	// the future now, lasts HoldingsTTL from the first prune, not a year
	// and 15 days.
	back := end.AddDate(-1, 0, 0)
	h.prune(back)
	if got := h.held(x, "", back.Add(HoldingsTTL-time.Nanosecond)); got != 3<<30 {
		t.Errorf("after the clock went back, a nanosecond before the entry ends: %d", got)
	}
	if got := h.held(x, "", back.Add(HoldingsTTL)); got != 0 {
		t.Errorf("after the clock went back, HoldingsTTL after the prune: %d, want 0", got)
	}
	h.state(alice, 10<<30, nil, []shardproto.Holding{hd(x, 3<<30)}, later)

	// Saved and loaded, as the observer's state does.
	b, err := json.Marshal(h.accounts)
	if err != nil {
		t.Fatal(err)
	}
	var saved idKeyed[*accountHoldings]
	if err := json.Unmarshal(b, &saved); err != nil {
		t.Fatal(err)
	}
	if got := newHoldings(saved).held(x, "", end); got != 3<<30 {
		t.Errorf("after a save: x holds %d", got)
	}
	// Bounds: one account names at most MaxHoldingsPerAccount holders.
	many := make([]shardproto.Holding, 0, MaxHoldingsPerAccount+10)
	for i := range cap(many) {
		many = append(many, shardproto.Holding{Holder: peer.ID(fmt.Sprintf("holder-%05d", i)), Bytes: 1})
	}
	if n := h.state(carol, 1<<30, nil, many, end); n != MaxHoldingsPerAccount {
		t.Errorf("carol: %d counted, want %d", n, MaxHoldingsPerAccount)
	}
	if h.entries != MaxHoldingsPerAccount+1 {
		t.Errorf("%d entries", h.entries)
	}
	// Past it, a larger entry takes the place of one of the smallest: ten
	// holders of 1 GiB each replace ten of carol's 1-byte ones.
	var big []shardproto.Holding
	for i := range 10 {
		big = append(big, hd(peer.ID(fmt.Sprintf("big-%02d", i)), 1<<30))
	}
	if n := h.state(carol, 100<<30, nil, big, end); n != 10 || len(h.accounts[carol].Entries) != MaxHoldingsPerAccount {
		t.Errorf("carol's large entries past her bound: %d counted, %d kept", n, len(h.accounts[carol].Entries))
	}
	if got := h.held(big[9].Holder, "", end); got != 1<<30 {
		t.Errorf("a large entry that replaced a small one counts %d", got)
	}
	// And all accounts together at most MaxHoldingEntries: a 1-byte entry
	// is not counted (none counts less), a 2 GiB one replaces the smallest
	// sampled (every account is sampled here, and only alice's 3 GiB
	// entry counts more).
	h.entries = MaxHoldingEntries
	if n := h.state(keyID(t), 1<<30, nil, []shardproto.Holding{hd(x, 1)}, end); n != 0 {
		t.Errorf("past the bound of all entries: %d counted", n)
	}
	dave := keyID(t)
	if n := h.state(dave, 4<<30, nil, []shardproto.Holding{hd(y, 2<<30)}, end); n != 1 || h.entries != MaxHoldingEntries {
		t.Errorf("a large entry past the bound of all: %d counted, %d entries", n, h.entries)
	}
	if got := h.held(y, "", end); got != 2<<30 {
		t.Errorf("it counts %d", got)
	}
	if got := h.held(x, "", end); got != 3<<30 {
		t.Errorf("alice's larger entry was replaced: x holds %d", got)
	}
}

// keyID returns the ID of a new Ed25519 key: saved states name real IDs.
func keyID(t *testing.T) peer.ID {
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func hd(holder peer.ID, b int64) shardproto.Holding {
	return shardproto.Holding{Holder: holder, Bytes: b}
}
