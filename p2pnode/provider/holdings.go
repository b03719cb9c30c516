package provider

import (
	"context"
	"fmt"
	"math"
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
	// name here; MaxHoldingEntries all the entries kept. Past either, a
	// new entry replaces one that counts less (evictSmaller), or is not
	// counted.
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
	byHolder map[peer.ID]*holderIndex
	entries  int
}

// holderIndex is what is stated of one holder: the accounts naming it and
// the sum of their scaled entries, computed when first asked after a
// statement naming it (stale) or after the first of its entries ended
// (next). A put then costs one lookup per linked node, however many
// accounts name it.
type holderIndex struct {
	accounts map[peer.ID]struct{}
	sum      int64
	next     time.Time
	stale    bool
}

// scaled is what entry e of a counts: its bytes, scaled down to a's
// allowance when a states more.
func (a *accountHoldings) scaled(e holdingEntry) int64 {
	switch {
	case a.Total <= 0:
		return 0
	case a.Cap >= a.Total:
		return e.Bytes
	}
	return int64(math.Round(float64(e.Bytes) * float64(a.Cap) / float64(a.Total)))
}

func newHoldings(saved idKeyed[*accountHoldings]) *holdings {
	h := &holdings{accounts: idKeyed[*accountHoldings]{}, byHolder: map[peer.ID]*holderIndex{}}
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
	x := h.byHolder[holder]
	if x == nil {
		x = &holderIndex{accounts: map[peer.ID]struct{}{}}
		h.byHolder[holder] = x
	}
	x.accounts[account] = struct{}{}
	x.stale = true
}

// evictSamples is how many accounts evictSmaller looks at among all.
const evictSamples = 16

// evictSmaller removes the entry that counts least, if it counts less
// than w: among all of one account's entries when from holds that account
// alone, else among one entry each of up to evictSamples accounts of from
// (map order, so a different few each time). An expired entry counts
// nothing. An account other than stating that lost an entry is summed
// anew. It reports whether it removed one.
func (h *holdings) evictSmaller(stating peer.ID, from map[peer.ID]*accountHoldings, w int64, now time.Time) bool {
	var (
		minAcct, minHolder peer.ID
		minW               int64 = -1
	)
	consider := func(acct, holder peer.ID, a *accountHoldings, e holdingEntry) {
		// The stating account's entries are weighed as its new one is
		// (its sum is being restated); the others' as they count.
		v := a.scaled(e)
		if acct == stating {
			v = min(e.Bytes, a.Cap)
		}
		if now.Sub(e.At) >= HoldingsTTL {
			v = 0
		}
		if minW < 0 || v < minW {
			minAcct, minHolder, minW = acct, holder, v
		}
	}
	if len(from) == 1 {
		for acct, a := range from {
			for holder, e := range a.Entries {
				consider(acct, holder, a, e)
			}
		}
	} else {
		seen := 0
		for acct, a := range from {
			for holder, e := range a.Entries {
				consider(acct, holder, a, e)
				break
			}
			if seen++; seen >= evictSamples {
				break
			}
		}
	}
	if minW < 0 || minW >= w {
		return false
	}
	h.remove(minAcct, minHolder)
	if minAcct != stating {
		h.retotal(minAcct)
	}
	return true
}

// retotal sums account's entries anew after some were removed, marking
// the holders it names for summing, and drops the account if it names
// none.
func (h *holdings) retotal(account peer.ID) {
	a := h.accounts[account]
	if a == nil {
		return
	}
	if len(a.Entries) == 0 {
		delete(h.accounts, account)
		return
	}
	a.Total = 0
	for holder, e := range a.Entries {
		a.Total += e.Bytes
		h.byHolder[holder].stale = true
	}
}

func (h *holdings) remove(account, holder peer.ID) {
	a := h.accounts[account]
	if _, ok := a.Entries[holder]; !ok {
		return
	}
	delete(a.Entries, holder)
	h.entries--
	if x := h.byHolder[holder]; x != nil {
		delete(x.accounts, account)
		x.stale = true
		if len(x.accounts) == 0 {
			delete(h.byHolder, holder)
		}
	}
}

// state records account's statement at now, its allowance here being
// capBytes; own are the account's linked nodes, which it cannot credit. It
// returns how many entries it counted. Its work is in the statement's
// size: expired entries are pruned with the observer's saves, not here.
func (h *holdings) state(account peer.ID, capBytes int64, own []peer.ID, hs []shardproto.Holding, now time.Time) int {
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
			// Past a bound, a new entry takes the place of a smaller one:
			// of the account's own past MaxHoldingsPerAccount, of a few
			// sampled among all past MaxHoldingEntries. So the entries
			// kept are the ones that count most, not the first to come
			// (in a network of thousands, a provider hears more than it
			// keeps, and a node new to it must still be counted).
			w := min(s.Bytes, capBytes)
			switch {
			case len(a.Entries) >= MaxHoldingsPerAccount:
				if !h.evictSmaller(account, map[peer.ID]*accountHoldings{account: a}, w, now) {
					continue
				}
			case h.entries >= MaxHoldingEntries:
				if !h.evictSmaller(account, h.accounts, w, now) {
					continue
				}
			}
			h.entries++
			h.index(s.Holder, account)
		}
		a.Entries[s.Holder] = holdingEntry{Bytes: s.Bytes, At: now}
		counted++
	}
	// The account's scale changed: every holder it names is summed anew.
	a.Total = 0
	for holder, e := range a.Entries {
		if now.Sub(e.At) >= HoldingsTTL {
			h.remove(account, holder)
			continue
		}
		a.Total += e.Bytes
		h.byHolder[holder].stale = true
	}
	if len(a.Entries) == 0 {
		delete(h.accounts, account)
	}
	return counted
}

// held returns the bytes the accounts other than except state node
// keeps, each account's entries scaled down to its allowance.
func (h *holdings) held(node, except peer.ID, now time.Time) int64 {
	x := h.byHolder[node]
	if x == nil {
		return 0
	}
	if x.stale || !now.Before(x.next) {
		x.sum, x.next, x.stale = 0, time.Time{}, false
		for account := range x.accounts {
			a := h.accounts[account]
			e := a.Entries[node]
			end := e.At.Add(HoldingsTTL)
			if !now.Before(end) {
				continue
			}
			x.sum += a.scaled(e)
			if x.next.IsZero() || end.Before(x.next) {
				x.next = end
			}
		}
		if x.next.IsZero() {
			x.next = now.Add(HoldingsTTL)
		}
	}
	sum := x.sum
	if _, ok := x.accounts[except]; ok {
		a := h.accounts[except]
		if e := a.Entries[node]; now.Before(e.At.Add(HoldingsTTL)) {
			sum -= a.scaled(e)
		}
	}
	return max(sum, 0)
}

// prune drops the entries not stated again within HoldingsTTL, and
// brings entries stamped in the future back to now.
func (h *holdings) prune(now time.Time) {
	for account, a := range h.accounts {
		changed := false
		for holder, e := range a.Entries {
			if e.At.After(now) {
				// Stamped by a clock that has gone back since: it lasts
				// HoldingsTTL from now, not until the clock catches up.
				e.At = now
				a.Entries[holder] = e
				h.byHolder[holder].stale = true
				continue
			}
			if now.Sub(e.At) >= HoldingsTTL {
				h.remove(account, holder)
				changed = true
			}
		}
		if changed {
			h.retotal(account)
		}
	}
}

// Holdings takes account's statement of what holders keep for it
// (shardproto.WithHoldings). It is counted when the account's allowance is
// earned here (class sharing: a node of it vetted by this provider), up to
// that allowance: a starter's or a vetting account's word would let fresh
// keys credit any node. The provider's own account's word counts in full:
// this provider decides for its own disk only, and its own data is what
// it knows best. Entries about the account's own nodes are not counted.
func (p *Provider) Holdings(ctx context.Context, account peer.ID, hs []shardproto.Holding) (string, error) {
	if p.adm == nil {
		return "not counted: this provider admits every account", nil
	}
	class, earned, nodes := p.adm.Explain(ctx, account)
	switch class {
	case ClassOwn:
		earned.Bytes = math.MaxInt64
	case ClassSharing:
	default:
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
