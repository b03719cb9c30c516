package jellyfish

import (
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardproto"
)

// TestDescribeNodeCredit: a node's credit is the median of what the
// providers that vetted it say, with the median of what other accounts
// say it keeps; providers still vetting it, and answers of version 1
// (no credit), do not count; with none left there is no credit line.
func TestDescribeNodeCredit(t *testing.T) {
	id := peer.ID("node")
	good := func(credit, held int64) shardproto.NodeStanding {
		return shardproto.NodeStanding{ID: id, Watched: true, State: "good", KnownEpochs: 10, Uptime: 1, Credit: credit, Held: held}
	}
	v := ProvidersView{nodes: map[peer.ID][]shardproto.NodeStanding{id: {
		good(2<<30, 0), good(6<<30, 2<<30), good(8<<30, 5<<30),
		good(0, 0), // an answer of version 1
		{ID: id, Watched: true, State: "vetting", KnownEpochs: 4, Uptime: 1, Credit: 0, Held: 9 << 30},
	}}}
	var n NodeStatus
	v.describeNode(&n, id)
	if !strings.HasPrefix(n.Credit, "6 GiB (median of 3 providers that vetted it)") || !strings.Contains(n.Credit, "twice the 2 GiB other accounts say it keeps") {
		t.Fatalf("credit %q", n.Credit)
	}
	v.nodes[id] = v.nodes[id][3:]
	n = NodeStatus{}
	v.describeNode(&n, id)
	if n.Credit != "" {
		t.Fatalf("credit %q from no provider that said it", n.Credit)
	}
}
