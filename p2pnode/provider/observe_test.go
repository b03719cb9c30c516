package provider

import (
	"log/slog"
	"testing"
	"time"

	"github.com/jellyfish-p2p/jellyfish/codec"
	"github.com/jellyfish-p2p/jellyfish/karma"
	"github.com/libp2p/go-libp2p/core/peer"
)

// A node that answers its probes but leaves the audits of its test shard
// unanswered is contained: the shard counts as deleted after three silent
// tries over at least a day, and any answer about it, or the node being
// away, is not a try.
func TestObserverContainment(t *testing.T) {
	o := &observer{p: &Provider{log: slog.New(slog.DiscardHandler)}, obs: karma.NewObserver("observer", 0),
		tests: map[peer.ID]TestShard{}, contained: map[peer.ID]*karma.Containment{}}
	node := peer.ID("node")
	test := TestShard{ID: codec.ShardID{7}, Lease: t0.Add(40 * 24 * time.Hour)}
	o.obs.Watch(string(node), t0)
	o.tests[node] = test
	var round ObserveRound
	silent := probeResult{answered: true, silent: true, shard: test.ID}
	// Two silent tries, then an answer about the shard: released.
	o.record(node, t0, silent, &round)
	o.record(node, t0.Add(12*time.Hour), silent, &round)
	o.record(node, t0.Add(13*time.Hour), probeResult{answered: true, audited: true, passed: true}, &round)
	if len(o.contained) != 0 || round.Deleted != 0 {
		t.Fatalf("an answered audit left containment: %v, %d deleted", o.contained, round.Deleted)
	}
	// Silent twice a day: the third try, a day after the first, counts
	// the shard as deleted; probes unanswered in between are not tries.
	start := t0.Add(2 * 24 * time.Hour)
	o.record(node, start, silent, &round)
	o.record(node, start.Add(6*time.Hour), probeResult{}, &round) // away
	o.record(node, start.Add(12*time.Hour), silent, &round)
	if round.Deleted != 0 {
		t.Fatal("deleted after two tries")
	}
	o.record(node, start.Add(24*time.Hour), silent, &round)
	if round.Deleted != 1 || round.Silenced != 1 || len(o.contained) != 0 {
		t.Fatalf("after three silent tries over a day: %+v, contained %v", round, o.contained)
	}
	if _, ok := o.tests[node]; ok {
		t.Fatal("the silenced test shard is still the one audited")
	}
	st := o.obs.Standing(string(node), start.Add(3*24*time.Hour))
	if len(st.Strikes) != 1 || st.Strikes[0].Shard != karma.ShardRef(test.ID) {
		t.Fatalf("strikes %+v", st.Strikes)
	}
}
