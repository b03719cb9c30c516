package shardproto

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

func sampleStanding() AccountStanding {
	until := time.Date(2031, 5, 6, 0, 0, 0, 0, time.UTC)
	return AccountStanding{Class: "sharing", Earned: 3 << 30, Cap: 768 << 20, Nodes: []NodeStanding{
		{ID: peer.ID("node-one"), Watched: true, State: "good", KnownEpochs: 30, Uptime: 0.9731, AuditsPassed: 58, AuditsFailed: 1},
		{ID: peer.ID("node-two"), Watched: true, State: "malicious", KnownEpochs: 12, Uptime: 0.5, AuditsPassed: 20, AuditsFailed: 3, Strikes: 3, Until: until},
		{ID: peer.ID("node-three"), State: "unknown"},
	}}
}

// A standing answer encodes and decodes to itself; every prefix, trailing
// bytes, another version and each bound broken are refused.
func TestStandingEncoding(t *testing.T) {
	a := sampleStanding()
	b, err := a.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := UnmarshalAccountStanding(b)
	if err != nil {
		t.Fatal(err)
	}
	b2, err := got.Marshal()
	if err != nil || !bytes.Equal(b, b2) {
		t.Fatalf("re-encoded differently: %v", err)
	}
	if got.Class != a.Class || got.Earned != a.Earned || got.Cap != a.Cap || !got.Until.IsZero() || len(got.Nodes) != 3 {
		t.Fatalf("decoded %+v", got)
	}
	if n := got.Nodes[1]; n.ID != "node-two" || !n.Watched || n.State != "malicious" || n.Strikes != 3 || !n.Until.Equal(a.Nodes[1].Until) || n.Uptime != 0.5 {
		t.Fatalf("node %+v", n)
	}
	if got.Nodes[0].Uptime != 0.9731 || got.Nodes[2].Watched {
		t.Fatalf("nodes %+v", got.Nodes)
	}
	for i := range b {
		if _, err := UnmarshalAccountStanding(b[:i]); err == nil {
			t.Fatalf("a prefix of %d bytes decoded", i)
		}
	}
	if _, err := UnmarshalAccountStanding(append(b, 0)); err == nil {
		t.Fatal("trailing bytes decoded")
	}
	other := bytes.Clone(b)
	other[4] = 2
	if _, err := UnmarshalAccountStanding(other); err == nil {
		t.Fatal("another version decoded")
	}
	for name, mod := range map[string]func(*AccountStanding){
		"no class":       func(a *AccountStanding) { a.Class = "" },
		"long class":     func(a *AccountStanding) { a.Class = strings.Repeat("x", 17) },
		"negative cap":   func(a *AccountStanding) { a.Cap = -1 },
		"too many nodes": func(a *AccountStanding) { a.Nodes = make([]NodeStanding, MaxStandingNodes+1) },
		"uptime over 1":  func(a *AccountStanding) { a.Nodes[0].Uptime = 1.5 },
		"empty node ID":  func(a *AccountStanding) { a.Nodes[0].ID = "" },
		"no state":       func(a *AccountStanding) { a.Nodes[0].State = "" },
		"300 epochs":     func(a *AccountStanding) { a.Nodes[0].KnownEpochs = 300 },
	} {
		a := sampleStanding()
		mod(&a)
		if _, err := a.Marshal(); err == nil {
			t.Errorf("%s: encoded", name)
		}
	}
	// A flag byte other than 0 or 1 is refused.
	i := bytes.Index(b, []byte("node-one")) + len("node-one")
	bad := bytes.Clone(b)
	bad[i] = 2
	if _, err := UnmarshalAccountStanding(bad); !errors.Is(err, errFrame) {
		t.Fatalf("watched flag 2: %v", err)
	}
}

func FuzzUnmarshalAccountStanding(f *testing.F) {
	b, _ := sampleStanding().Marshal()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := UnmarshalAccountStanding(b)
		if err != nil {
			return
		}
		out, err := a.Marshal()
		if err != nil {
			t.Fatalf("decoded but does not encode: %v", err)
		}
		a2, err := UnmarshalAccountStanding(out)
		if err != nil {
			t.Fatal(err)
		}
		out2, _ := a2.Marshal()
		if !bytes.Equal(out, out2) {
			t.Fatal("not stable")
		}
	})
}
