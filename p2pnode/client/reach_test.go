package client

import (
	"testing"

	ma "github.com/multiformats/go-multiaddr"
)

// TestReachabilityOf: a node record's addresses say public when one
// direct address has a public IP or is a DNS name, relayed when none does
// and some go through a relay (a node behind a NAT also gives its LAN
// addresses), local only with nothing but private and loopback addresses,
// and no addresses for an empty list.
func TestReachabilityOf(t *testing.T) {
	const relay = "/ip4/11.0.0.1/tcp/4001/p2p/12D3KooWGTduXmxAW3EbezpzpMLZYR5Y5mHmFLK8EDdV7s2gukUn/p2p-circuit"
	for _, c := range []struct {
		addrs []string
		want  Reachability
	}{
		{nil, ReachNone},
		{[]string{"/ip4/11.0.1.3/tcp/4001"}, ReachPublic},
		{[]string{"/ip4/10.3.0.2/tcp/4001", "/dns4/node.example.org/tcp/4001"}, ReachPublic},
		{[]string{"/ip4/10.3.0.2/tcp/4001", relay, "/ip4/11.0.1.3/udp/4001/quic-v1"}, ReachPublic},
		{[]string{"/ip4/10.3.0.2/tcp/4001", "/ip4/127.0.0.1/tcp/4001", relay}, ReachRelayed},
		{[]string{relay}, ReachRelayed},
		{[]string{"/ip4/127.0.0.1/tcp/4001", "/ip4/192.168.1.20/udp/4001/quic-v1"}, ReachLocal},
	} {
		var addrs []ma.Multiaddr
		for _, s := range c.addrs {
			addrs = append(addrs, ma.StringCast(s))
		}
		if got := ReachabilityOf(addrs); got != c.want {
			t.Errorf("%v: %q, want %q", c.addrs, got, c.want)
		}
	}
}
