package timeproto_test

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/node"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/timeproto"
)

func newHost(t *testing.T) host.Host {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	h, err := node.NewHost(k, node.HostConfig{ListenAddrs: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0")}, ConnLow: 10, ConnHigh: 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// peerAt starts a host whose clock reads offset ahead of real time,
// connected to local.
func peerAt(t *testing.T, local host.Host, offset time.Duration) peer.ID {
	t.Helper()
	h := newHost(t)
	s := timeproto.NewService(h, func() time.Time { return time.Now().Add(offset) })
	t.Cleanup(func() { s.Close() })
	if err := local.Connect(context.Background(), peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()}); err != nil {
		t.Fatal(err)
	}
	return h.ID()
}

// TestEstimate: a local clock 6 days behind peers that agree learns their
// time within a second, and two liars among five move nothing.
func TestEstimate(t *testing.T) {
	ctx := context.Background()
	local := newHost(t)
	slow := func() time.Time { return time.Now().Add(-6 * 24 * time.Hour) }
	var peers []peer.ID
	for _, off := range []time.Duration{0, 0, 0, 3 * time.Hour, -400 * 24 * time.Hour} {
		peers = append(peers, peerAt(t, local, off))
	}
	got, samples, err := timeproto.Estimate(ctx, local, peers, 7, slow)
	if err != nil {
		t.Fatal(err)
	}
	if len(samples) != 5 {
		t.Fatalf("%d samples, want 5", len(samples))
	}
	if d := got - 6*24*time.Hour; d < -time.Second || d > time.Second {
		t.Fatalf("offset %v, want 6 days (±1 s)", got)
	}
	// Asked of at most max peers.
	if _, samples, _ := timeproto.Estimate(ctx, local, peers, 3, slow); len(samples) != 3 {
		t.Fatalf("max 3: %d samples", len(samples))
	}
	// Too few peers: an error, not a guess.
	if _, _, err := timeproto.Estimate(ctx, local, peers[:2], 7, slow); !errors.Is(err, timeproto.ErrTooFewPeers) {
		t.Fatalf("two peers: %v, want ErrTooFewPeers", err)
	}
}

// TestMedian covers odd and even counts.
func TestMedian(t *testing.T) {
	at := func(offs ...time.Duration) []timeproto.Sample {
		var s []timeproto.Sample
		now := time.Unix(1_800_000_000, 0)
		for _, o := range offs {
			s = append(s, timeproto.Sample{Theirs: now.Add(o), Mid: now})
		}
		return s
	}
	for _, c := range []struct {
		in   []timeproto.Sample
		want time.Duration
	}{
		{nil, 0},
		{at(5 * time.Second), 5 * time.Second},
		{at(9, 1, 5), 5},
		{at(10, -10, 2, 4), 3},
	} {
		if got := timeproto.Median(c.in); got != c.want {
			t.Fatalf("median of %d samples: %v, want %v", len(c.in), got, c.want)
		}
	}
}

// TestRequestWithBytesIsReset: the request is empty; a peer that sends
// anything gets no answer.
func TestRequestWithBytesIsReset(t *testing.T) {
	local := newHost(t)
	p := peerAt(t, local, 0)
	st, err := local.NewStream(context.Background(), p, timeproto.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Reset()
	st.Write([]byte("hello"))
	st.CloseWrite()
	st.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(st)
	if err == nil || len(b) != 0 {
		t.Fatalf("answered %d bytes, %v", len(b), err)
	}
}
