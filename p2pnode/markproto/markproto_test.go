package markproto_test

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/markproto"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/node"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/record"
)

// marks is a Source in memory.
type marks struct {
	mu   sync.Mutex
	m    map[string]uint64
	fail bool
}

func (s *marks) Seen(key string) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return 0, errors.New("disk on fire")
	}
	return s.m[key], nil
}

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

func connect(t *testing.T, a, b host.Host) {
	t.Helper()
	if err := a.Connect(context.Background(), peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		t.Fatal(err)
	}
}

// TestQuery: a peer answers the mark its source holds, 0 for a key it
// never saw, refuses a key outside /jf/ with ErrBadKey, and says nothing
// (the stream is reset) when its store fails, rather than "never seen".
func TestQuery(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	server, client := newHost(t), newHost(t)
	src := &marks{m: map[string]uint64{"/jf/login/abc": 7}}
	svc := markproto.NewService(server, src)
	defer svc.Close()
	connect(t, client, server)

	if m, err := markproto.Query(ctx, client, server.ID(), "/jf/login/abc"); err != nil || m != 7 {
		t.Fatalf("mark of a seen key: %d, %v", m, err)
	}
	if m, err := markproto.Query(ctx, client, server.ID(), "/jf/login/never"); err != nil || m != 0 {
		t.Fatalf("mark of an unseen key: %d, %v", m, err)
	}
	if _, err := markproto.Query(ctx, client, server.ID(), "/ipns/abc"); !errors.Is(err, markproto.ErrBadKey) {
		t.Fatalf("key outside /jf/: %v, want ErrBadKey", err)
	}
	if _, err := markproto.Query(ctx, client, server.ID(), "/jf/x/"+strings.Repeat("a", record.MaxKeySize)); err == nil {
		t.Fatal("an oversized key was sent")
	}
	src.mu.Lock()
	src.fail = true
	src.mu.Unlock()
	if m, err := markproto.Query(ctx, client, server.ID(), "/jf/login/abc"); err == nil {
		t.Fatalf("a failing store answered %d", m)
	}
	// After Close the protocol is gone.
	svc.Close()
	if _, err := markproto.Query(ctx, client, server.ID(), "/jf/login/abc"); err == nil {
		t.Fatal("a closed service answered")
	}
}

// TestHostileRequests: a length beyond the key limit, a truncated key and
// an empty one all end with a reset stream and no answer; the service
// serves the next request normally.
func TestHostileRequests(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	server, client := newHost(t), newHost(t)
	svc := markproto.NewService(server, &marks{m: map[string]uint64{"/jf/login/abc": 3}})
	defer svc.Close()
	connect(t, client, server)

	send := func(b []byte, closeWrite bool) error {
		st, err := client.NewStream(ctx, server.ID(), markproto.ID)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		st.Write(b)
		if closeWrite {
			st.CloseWrite()
		}
		st.SetReadDeadline(time.Now().Add(markproto.Timeout + 5*time.Second))
		_, err = io.ReadFull(st, make([]byte, 9))
		return err
	}
	huge := binary.BigEndian.AppendUint16(nil, record.MaxKeySize+1)
	if err := send(append(huge, make([]byte, 300)...), true); err == nil {
		t.Fatal("answered a key of 257 bytes")
	}
	short := append(binary.BigEndian.AppendUint16(nil, 20), "/jf/lo"...)
	if err := send(short, true); err == nil {
		t.Fatal("answered a truncated key")
	}
	if err := send(binary.BigEndian.AppendUint16(nil, 0), true); err == nil {
		t.Fatal("answered an empty key")
	}
	if m, err := markproto.Query(ctx, client, server.ID(), "/jf/login/abc"); err != nil || m != 3 {
		t.Fatalf("after hostile requests: %d, %v", m, err)
	}
}
