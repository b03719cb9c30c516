package provider

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardproto"
)

// Holdings statements (shard request 12): accounts whose allowance is
// earned here state what each holder keeps for them, and a node is
// credited by what they state it holds (karma.Shown; docs/design.md §6.8).
const (
	// HoldingsTTL is how long an entry counts without being stated again:
	// two weekly maintenance rounds of a device and a day.
	HoldingsTTL = 15 * 24 * time.Hour
	// MaxHoldingsPerAccount bounds the holders one account's statements
	// name here; MaxHoldingEntries all the entries kept. Past either, new
	// holders are not counted until entries expire.
	MaxHoldingsPerAccount = 4096
	MaxHoldingEntries     = 1 << 18
)

// holdingEntry is what one account stated one holder keeps for it.
type holdingEntry struct {
	Bytes int64
	At    time.Time
}

// accountHoldings is what one account stated: Cap is its earned allowance
// here when it last stated, Total the sum of its entries then. Its entries
// count scaled down to Cap, so an account moves at most its own allowance
// onto the holders it names.
type accountHoldings struct {
	Cap     int64
	Total   int64
	Entries idKeyed[holdingEntry]
}

// holdings are the statements kept; the observer's lock guards them.
type holdings struct {
	accounts idKeyed[*accountHoldings]
	byHolder map[peer.ID]map[peer.ID]struct{} // holder → accounts naming it
	entries  int
}

func newHoldings(saved idKeyed[*accountHoldings]) *holdings {
	h := &holdings{accounts: idKeyed[*accountHoldings]{}, byHolder: map[peer.ID]map[peer.ID]struct{}{}}
	for account, a := range saved {
		if a == nil || a.Entries == nil {
			continue
		}
		h.accounts[account] = a
		for holder := range a.Entries {
			h.index(holder, account)
			h.entries++
		}
	}
	return h
}

func (h *holdings) index(holder, account peer.ID) {
	m := h.byHolder[holder]
	if m == nil {
		m = map[peer.ID]struct{}{}
		h.byHolder[holder] = m
	}
	m[account] = struct{}{}
}

func (h *holdings) remove(account, holder peer.ID) {
	a := h.accounts[account]
	if _, ok := a.Entries[holder]; !ok {
		return
	}
	delete(a.Entries, holder)
	h.entries--
	if m := h.byHolder[holder]; m != nil {
		delete(m, account)
		if len(m) == 0 {
			delete(h.byHolder, holder)
		}
	}
}

// state records account's statement at now, its allowance here being
// capBytes; own are the account's linked nodes, which it cannot credit. It
// returns how many entries it counted.
func (h *holdings) state(account peer.ID, capBytes int64, own []peer.ID, hs []shardproto.Holding, now time.Time) int {
	h.prune(now)
	a := h.accounts[account]
	if a == nil {
		a = &accountHoldings{Entries: idKeyed[holdingEntry]{}}
		h.accounts[account] = a
	}
	a.Cap = capBytes
	counted := 0
next:
	for _, s := range hs {
		for _, n := range own {
			if s.Holder == n {
				continue next
			}
		}
		if s.Holder == account {
			continue
		}
		if s.Bytes <= 0 {
			h.remove(account, s.Holder)
			continue
		}
		if _, ok := a.Entries[s.Holder]; !ok {
			if len(a.Entries) >= MaxHoldingsPerAccount || h.entries >= MaxHoldingEntries {
				continue
			}
			h.entries++
			h.index(s.Holder, account)
		}
		a.Entries[s.Holder] = holdingEntry{Bytes: s.Bytes, At: now}
		counted++
	}
	a.Total = 0
	for _, e := range a.Entries {
		a.Total += e.Bytes
	}
	if len(a.Entries) == 0 {
		delete(h.accounts, account)
	}
	return counted
}

// held returns the bytes the accounts other than except state node
// keeps, each account's entries scaled down to its allowance.
func (h *holdings) held(node, except peer.ID, now time.Time) int64 {
	var sum float64
	for account := range h.byHolder[node] {
		if account == except {
			continue
		}
		a := h.accounts[account]
		e := a.Entries[node]
		if now.Sub(e.At) >= HoldingsTTL || a.Total <= 0 {
			continue
		}
		sum += float64(e.Bytes) * min(1, float64(a.Cap)/float64(a.Total))
	}
	return int64(sum)
}

// prune drops the entries not stated again within HoldingsTTL.
func (h *holdings) prune(now time.Time) {
	for account, a := range h.accounts {
		changed := false
		for holder, e := range a.Entries {
			if now.Sub(e.At) >= HoldingsTTL {
				h.remove(account, holder)
				changed = true
			}
		}
		if !changed {
			continue
		}
		if len(a.Entries) == 0 {
			delete(h.accounts, account)
			continue
		}
		a.Total = 0
		for _, e := range a.Entries {
			a.Total += e.Bytes
		}
	}
}

// Holdings takes account's statement of what holders keep for it
// (shardproto.WithHoldings). It is counted when the account's allowance is
// earned here (class sharing: a node of it vetted by this provider): a
// starter's or a vetting account's word would let fresh keys credit any
// node. Entries about the account's own nodes are not counted.
func (p *Provider) Holdings(ctx context.Context, account peer.ID, hs []shardproto.Holding) (string, error) {
	if p.adm == nil {
		return "not counted: this provider admits every account", nil
	}
	class, earned, nodes := p.adm.Explain(ctx, account)
	if class != ClassSharing {
		return fmt.Sprintf("not counted: the account is %s here; statements count once a node of it is vetted here", class), nil
	}
	own := make([]peer.ID, 0, len(nodes))
	for _, n := range nodes {
		own = append(own, n.ID)
	}
	now := p.cfg.Clock()
	p.obs.mu.Lock()
	n := p.obs.holdings.state(account, max(earned.Bytes, 0), own, hs, now)
	p.obs.dirty = true
	p.obs.mu.Unlock()
	return fmt.Sprintf("counted %d of %d", n, len(hs)), nil
}

// Held returns the shard bytes accounts other than except state node
// keeps for them, as counted here (0 when admission is off).
func (p *Provider) Held(node, except peer.ID) int64 {
	if p.obs == nil {
		return 0
	}
	now := p.cfg.Clock()
	p.obs.mu.Lock()
	defer p.obs.mu.Unlock()
	return p.obs.holdings.held(node, except, now)
}
