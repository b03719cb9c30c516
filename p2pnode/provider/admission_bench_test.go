package provider

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jellyfish-p2p/jellyfish/karma"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardproto"
)

// BenchmarkAdmission measures what admission costs a put that adds a
// reference, past the cached lookup: the standing of each linked node
// (karma.Assess over its 30 days of tallies, 12 probes and 2 audits a
// day) and, with held, the holdings statements naming it (each node named
// by that many accounts). Standings are kept between changes of a node's
// tallies; fresh=1 probes every node before each put, so each standing is
// computed afresh, as the first put after a probe finds it.
func BenchmarkAdmission(b *testing.B) {
	for _, c := range []struct {
		nodes, held int
		fresh       bool
	}{{1, 0, false}, {32, 0, false}, {1, 1000, false}, {32, 1000, false}, {1, 1000, true}, {32, 1000, true}} {
		b.Run(fmt.Sprintf("nodes=%d/held=%d/fresh=%d", c.nodes, c.held, map[bool]int{false: 0, true: 1}[c.fresh]), func(b *testing.B) {
			now := t0
			start := now.Add(-karma.WindowEpochs * karma.EpochLength)
			obs := karma.NewObserver("self", 0)
			nodes := make([]LinkedNode, c.nodes)
			r := rand.New(rand.NewPCG(1, 2))
			for i := range nodes {
				id := peer.ID(fmt.Sprintf("node-%02d", i))
				nodes[i] = LinkedNode{ID: id, Tier: 3}
				obs.Watch(string(id), start)
				for e := karma.EpochOf(start); e < karma.EpochOf(now); e++ {
					for slot, t := range karma.ProbeTimes(e, karma.ProbesPerEpoch, r) {
						obs.Probed(string(id), t, true)
						if slot == karma.AuditProbes[0] || slot == karma.AuditProbes[1] {
							obs.Audited(string(id), t, true)
						}
					}
				}
			}
			h := newHoldings(nil)
			for j := range c.held {
				var hs []shardproto.Holding
				for _, n := range nodes {
					hs = append(hs, shardproto.Holding{Holder: n.ID, Bytes: 1 << 20})
				}
				h.state(peer.ID(fmt.Sprintf("account-%05d", j)), 1<<30, nil, hs, now)
			}
			const account = peer.ID("the-account")
			lookup := func(context.Context, peer.ID) (Link, error) {
				return Link{Class: ClassSharing, Nodes: nodes}, nil
			}
			a, err := NewAdmission(AdmissionConfig{}, 1<<40, "", lookup, func(id peer.ID) karma.Standing {
				return obs.Standing(string(id), now)
			}, func() time.Time { return now })
			if err != nil {
				b.Fatal(err)
			}
			a.SetHeld(func(node, except peer.ID) int64 { return h.held(node, except, now) })
			ctx := context.Background()
			if got := a.Allowance(ctx, account, false); got.Group != GroupSharing {
				b.Fatalf("allowance %+v", got)
			}
			b.ResetTimer()
			for range b.N {
				if c.fresh {
					for _, n := range nodes {
						obs.Probed(string(n.ID), now, true)
					}
				}
				a.Allowance(ctx, account, false)
			}
		})
	}
}
