package jellyfish

import (
	"strings"
	"testing"
)

// TestClassOf: the class status gives an account follows the providers'
// rule (a node linked both ways that answers with the shard protocol makes
// it sharing) and says what would change it in each case.
func TestClassOf(t *testing.T) {
	counts := NodeStatus{ID: "n1", Record: true, Linked: true, Connection: "direct", Shards: true, Counts: true}
	down := NodeStatus{ID: "n2", Record: true, Linked: true, Connection: "failed"}
	other := NodeStatus{ID: "n3", Record: true, Owner: "someone", Connection: "direct", Shards: true}
	gone := NodeStatus{ID: "n4", Connection: "not tried"}
	for _, c := range []struct {
		name   string
		nodes  []NodeStatus
		class  string
		own    int
		change string
	}{
		{"no node", nil, "starter", 0, "link a node: run `jellyfish node --account-config"},
		{"nodes naming another owner or none", []NodeStatus{other, gone}, "starter", 0, "so that their records name the account"},
		{"linked node down", []NodeStatus{down, other}, "starter", 0, "start a linked node"},
		{"linked node answering", []NodeStatus{other, down, counts}, "sharing", 1, "once it has vetted it itself"},
	} {
		cs := classOf(c.nodes)
		if cs.Class != c.class || len(cs.Own) != c.own || !strings.Contains(cs.Change, c.change) || cs.Why == "" {
			t.Errorf("%s: %+v", c.name, cs)
		}
	}
	if cs := classOf([]NodeStatus{counts}); cs.Own[0] != "n1" {
		t.Errorf("own nodes %v", cs.Own)
	}
}
