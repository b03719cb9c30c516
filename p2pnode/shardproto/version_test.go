package shardproto

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// TestAnotherVersionIsNamed: a holder that speaks only another version of
// the shard protocol is refused with ErrVersion and an error naming both
// versions; a peer with no shard protocol at all is told apart.
func TestAnotherVersionIsNamed(t *testing.T) {
	ctx := ctxT(t)
	c := newHost(t)
	cl, err := NewClient(c, ed25519Key(t))
	if err != nil {
		t.Fatal(err)
	}
	old := newHost(t)
	const oldID = protocol.ID(shardProtocolPrefix + "3.0.0")
	old.SetStreamHandler(oldID, func(st network.Stream) { st.Reset() })
	bare := newHost(t)
	for _, h := range []host.Host{old, bare} {
		connect(t, c, h)
	}
	// Wait until identify has told the client what the old holder speaks.
	waitProtocols(t, ctx, c, old.ID(), oldID)

	data, id := shard(61, 300)
	_, err = cl.Put(ctx, old.ID(), id, data, time.Now().Add(time.Hour))
	var ve *VersionError
	if !errors.Is(err, ErrVersion) || !errors.As(err, &ve) || len(ve.Speaks) != 1 || ve.Speaks[0] != oldID ||
		!strings.Contains(err.Error(), "3.0.0") || !strings.Contains(err.Error(), ID) {
		t.Fatalf("put to a holder of another version: %v", err)
	}
	if _, _, err := cl.Get(ctx, old.ID(), id); !errors.Is(err, ErrVersion) {
		t.Fatalf("get from a holder of another version: %v", err)
	}
	_, err = cl.Put(ctx, bare.ID(), id, data, time.Now().Add(time.Hour))
	if !errors.As(err, &ve) || len(ve.Speaks) != 0 || !strings.Contains(err.Error(), "not a Jellyfish provider") {
		t.Fatalf("put to a peer without the shard protocol: %v", err)
	}
	// A holder of this version is unaffected.
	e := newEnv(t, nil)
	if _, err := e.client.Put(ctx, e.holder.ID(), id, data, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
}

func waitProtocols(t *testing.T, ctx context.Context, h host.Host, p peer.ID, want protocol.ID) {
	t.Helper()
	for {
		if got, _ := h.Peerstore().SupportsProtocols(p, want); len(got) > 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("identify never told %s's protocols", p.ShortString())
		case <-time.After(10 * time.Millisecond):
		}
	}
}
