package jellyfish

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/rclone/rclone/fs"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardproto"
)

// standingReporter is the optional ability of a shardIO to ask a holder
// what it makes of the account: shardproto.Client.Standing.
type standingReporter interface {
	Standing(ctx context.Context, p peer.ID) (shardproto.AccountStanding, error)
}

// ProvidersView is what the providers said of the account when asked
// (shard request 10): its class at each, what its nodes earned there, and
// each node's standing as each measured it (docs/design.md §6.12).
type ProvidersView struct {
	Asked    int `json:"asked"`
	Answered int `json:"answered"`
	// Classes counts the answers by class: "sharing", "vetting",
	// "starter", "zeroed", "own", or "all" (a provider admitting every
	// account).
	Classes map[string]int `json:"classes"`
	// Earned is the median of what the providers where the account is
	// sharing say its nodes earned (shard bytes); EarnedFrom how many.
	Earned     int64 `json:"earned"`
	EarnedFrom int   `json:"earned_from"`
	// ZeroedUntil is the latest end of a zeroed class reported.
	ZeroedUntil time.Time `json:"zeroed_until,omitzero"`

	nodes map[peer.ID][]shardproto.NodeStanding
}

// providerStandings asks every provider for the account's standing, 16
// at a time, 10 s each. ok is false when the shard client cannot ask.
func (s *session) providerStandings(ctx context.Context) (v ProvidersView, ok bool) {
	sr, can := s.store.shards.(standingReporter)
	if !can {
		return v, false
	}
	providers, err := s.net.Providers(ctx)
	if err != nil {
		return v, false
	}
	v.Asked, v.Classes, v.nodes = len(providers), map[string]int{}, map[peer.ID][]shardproto.NodeStanding{}
	var (
		mu     sync.Mutex
		earned []int64
	)
	askEach(ctx, providers, func(ctx context.Context, p peer.ID) {
		a, err := sr.Standing(ctx, p)
		if err != nil {
			fs.Debugf(nil, "jellyfish: status: provider %s did not say the account's standing: %v", p, err)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		v.Answered++
		v.Classes[a.Class]++
		if a.Class == "sharing" {
			earned = append(earned, a.Earned)
		}
		if a.Class == "zeroed" && a.Until.After(v.ZeroedUntil) {
			v.ZeroedUntil = a.Until
		}
		for _, n := range a.Nodes {
			if n.Watched {
				v.nodes[n.ID] = append(v.nodes[n.ID], n)
			}
		}
	})
	if len(earned) > 0 {
		slices.Sort(earned)
		v.Earned, v.EarnedFrom = earned[len(earned)/2], len(earned)
	}
	return v, true
}

// enforcing returns the classes of providers that apply the admission
// rule (not "own", not "all"), most common first, ties by name.
func (v ProvidersView) enforcing() []string {
	var out []string
	for c := range v.Classes {
		if c != "own" && c != "all" {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if v.Classes[out[i]] != v.Classes[out[j]] {
			return v.Classes[out[i]] > v.Classes[out[j]]
		}
		return out[i] < out[j]
	})
	return out
}

// classesWords says the classes counted, most common first.
func (v ProvidersView) classesWords() string {
	names := sortedKeys(v.Classes)
	sort.SliceStable(names, func(i, j int) bool { return v.Classes[names[i]] > v.Classes[names[j]] })
	var parts []string
	for _, c := range names {
		parts = append(parts, fmt.Sprintf("%s at %d", c, v.Classes[c]))
	}
	return fmt.Sprintf("%s (of %d providers answering, %d asked)", strings.Join(parts, ", "), v.Answered, v.Asked)
}

// describeNode fills n's uptime, audits and standing from what the
// providers that watch it said.
func (v ProvidersView) describeNode(n *NodeStatus, id peer.ID) {
	reps := v.nodes[id]
	if len(reps) == 0 {
		n.Uptime, n.Audits = NotMeasured, NotMeasured
		n.Standing = NotMeasured
		return
	}
	var ups []float64
	var passed, failed []int
	states := map[string]int{}
	most := 0
	for _, r := range reps {
		states[r.State]++
		if r.KnownEpochs >= 3 {
			ups = append(ups, r.Uptime)
		}
		passed = append(passed, r.AuditsPassed)
		failed = append(failed, r.AuditsFailed)
		most = max(most, r.KnownEpochs)
	}
	if len(ups) == 0 {
		n.Uptime = fmt.Sprintf("not known yet: watched on %d of the 3 days an estimate needs", most)
	} else {
		slices.Sort(ups)
		n.Uptime = fmt.Sprintf("%.1f %% (median of %d providers' own probes over up to 30 days)", 100*ups[len(ups)/2], len(ups))
	}
	slices.Sort(passed)
	slices.Sort(failed)
	n.Audits = fmt.Sprintf("%d passed, %d failed (median of %d providers' audits of their test shards)", passed[len(passed)/2], failed[len(failed)/2], len(reps))
	names := sortedKeys(states)
	sort.SliceStable(names, func(i, j int) bool { return states[names[i]] > states[names[j]] })
	var parts []string
	for _, s := range names {
		parts = append(parts, fmt.Sprintf("%s at %d", s, states[s]))
	}
	n.Standing = fmt.Sprintf("%s of %d providers watching it", strings.Join(parts, ", "), len(reps))
	if states["vetting"]+states["unknown"] > 0 {
		n.Standing += "; a provider vets a node after 7 days of answering its probes and 10 passed audits"
	}
	// Credit: from the providers that vetted it and said it (version 2
	// answers; a version 1 answer has neither figure).
	var credits, held []int64
	for _, r := range reps {
		if r.State == "good" && r.Credit > 0 {
			credits = append(credits, r.Credit)
			held = append(held, r.Held)
		}
	}
	if len(credits) > 0 {
		slices.Sort(credits)
		slices.Sort(held)
		c, h := credits[len(credits)/2], held[len(held)/2]
		n.Credit = fmt.Sprintf("%s (median of %d providers that vetted it): its shared space up to twice the %s other accounts say it keeps for them, plus 2 GiB, times uptime; it grows as they store more on it",
			fs.SizeSuffix(c).ByteUnit(), len(credits), fs.SizeSuffix(h).ByteUnit())
	}
}

func sortedKeys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// earnedWords says what the account's nodes earned, as the providers
// reported it.
func (v ProvidersView) earnedWords() string {
	switch {
	case v.Answered == 0:
		return "not reported: no provider answered the standing request"
	case v.Classes["zeroed"] > 0:
		return fmt.Sprintf("zero at %d providers until %s: a node of the account lost shards it held", v.Classes["zeroed"], v.ZeroedUntil.UTC().Format(time.DateOnly))
	case v.EarnedFrom > 0:
		return fmt.Sprintf("%s (median of %d providers where the account is sharing: its nodes' shared space, up to twice what other vetted accounts say a node keeps for them plus 2 GiB, times uptime, and never less than the starter's 1 GiB)",
			fs.SizeSuffix(v.Earned).ByteUnit(), v.EarnedFrom)
	case v.Classes["vetting"] > 0:
		return fmt.Sprintf("nothing yet: no provider has vetted a node of the account (vetting at %d)", v.Classes["vetting"])
	}
	return "nothing: no node of the account is linked and answering"
}
