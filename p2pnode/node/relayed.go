package node

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	ma "github.com/multiformats/go-multiaddr"
)

// RelayedProtocol is the protocol by which a node serving as a relay says
// which peers hold a reservation with it: the nodes behind NATs that can
// be reached through it. Clients ask every public node they know, since a
// private node is in no routing table.
const RelayedProtocol = protocol.ID("/jellyfish/relayed/1.0.0")

const (
	// MaxRelayed bounds the peers one answer names (libp2p's relay holds
	// 128 reservations by default).
	MaxRelayed = 256
	// relayedTTL is how long after its last reservation a peer is named:
	// libp2p's reservations last an hour and are refreshed before.
	relayedTTL = time.Hour
	// relayedTimeout bounds one exchange, both sides.
	relayedTimeout = 10 * time.Second
)

// relayDirectory remembers the peers that asked this node's relay service
// for a reservation (it is the service's ACL, which sees every request and
// refuses none) and answers RelayedProtocol with those still connected.
type relayDirectory struct {
	mu   sync.Mutex
	h    host.Host
	seen map[peer.ID]time.Time
	now  func() time.Time
}

func newRelayDirectory() *relayDirectory {
	return &relayDirectory{seen: make(map[peer.ID]time.Time), now: time.Now}
}

// AllowReserve records p and allows it: what a reservation costs is the
// relay's own limits' business.
func (d *relayDirectory) AllowReserve(p peer.ID, _ ma.Multiaddr) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	if _, ok := d.seen[p]; !ok && len(d.seen) >= MaxRelayed {
		d.expire(now)
		if len(d.seen) >= MaxRelayed {
			return true // remembered once an older one expires
		}
	}
	d.seen[p] = now
	return true
}

// AllowConnect allows every relayed connection.
func (d *relayDirectory) AllowConnect(peer.ID, ma.Multiaddr, peer.ID) bool { return true }

// expire drops peers whose last reservation is older than relayedTTL. The
// caller holds d.mu.
func (d *relayDirectory) expire(now time.Time) {
	for p, t := range d.seen {
		if now.Sub(t) > relayedTTL {
			delete(d.seen, p)
		}
	}
}

// list returns the remembered peers still connected to the host, sorted.
func (d *relayDirectory) list() []peer.ID {
	d.mu.Lock()
	d.expire(d.now())
	out := make([]peer.ID, 0, len(d.seen))
	for p := range d.seen {
		out = append(out, p)
	}
	h := d.h
	d.mu.Unlock()
	if h != nil {
		live := out[:0]
		for _, p := range out {
			if h.Network().Connectedness(p) == network.Connected {
				live = append(live, p)
			}
		}
		out = live
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// relayACL returns d as the relay's ACL, or nil for no directory (a nil
// *relayDirectory in the interface would not be nil).
func relayACL(d *relayDirectory) relayv2.ACLFilter {
	if d == nil {
		return nil
	}
	return d
}

// serve starts answering RelayedProtocol on h.
func (d *relayDirectory) serve(h host.Host) {
	d.mu.Lock()
	d.h = h
	d.mu.Unlock()
	h.SetStreamHandler(RelayedProtocol, func(s network.Stream) {
		defer s.Close()
		s.SetDeadline(time.Now().Add(relayedTimeout))
		if err := writeRelayed(s, d.list()); err != nil {
			s.Reset()
		}
	})
}

// writeRelayed writes ids as a u16 count and, for each, a u8 length and
// the ID's bytes.
func writeRelayed(w io.Writer, ids []peer.ID) error {
	ids = ids[:min(len(ids), MaxRelayed)]
	b := []byte{byte(len(ids) >> 8), byte(len(ids))}
	for _, id := range ids {
		if len(id) > 255 {
			continue
		}
		b = append(b, byte(len(id)))
		b = append(b, id...)
	}
	_, err := w.Write(b)
	return err
}

// readRelayed reads what writeRelayed wrote, refusing more than MaxRelayed
// IDs, invalid ones and trailing bytes.
func readRelayed(r io.Reader) ([]peer.ID, error) {
	br := bufio.NewReader(io.LimitReader(r, 2+MaxRelayed*256+1))
	var n [2]byte
	if _, err := io.ReadFull(br, n[:]); err != nil {
		return nil, err
	}
	count := int(n[0])<<8 | int(n[1])
	if count > MaxRelayed {
		return nil, fmt.Errorf("node: %d relayed peers named, at most %d", count, MaxRelayed)
	}
	out := make([]peer.ID, 0, count)
	for range count {
		l, err := br.ReadByte()
		if err != nil {
			return nil, err
		}
		b := make([]byte, l)
		if _, err := io.ReadFull(br, b); err != nil {
			return nil, err
		}
		id, err := peer.IDFromBytes(b)
		if err != nil {
			return nil, fmt.Errorf("node: relayed peer: %w", err)
		}
		out = append(out, id)
	}
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		return nil, errors.New("node: relayed peers: trailing bytes")
	}
	return out, nil
}

// RelayedPeers asks node p which peers hold a relay reservation with it.
// A node that runs no relay does not speak the protocol (an error).
func RelayedPeers(ctx context.Context, h host.Host, p peer.ID) ([]peer.ID, error) {
	ctx, cancel := context.WithTimeout(ctx, relayedTimeout)
	defer cancel()
	s, err := h.NewStream(network.WithNoDial(ctx, "relayed peers"), p, RelayedProtocol)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	if d, ok := ctx.Deadline(); ok {
		s.SetDeadline(d)
	}
	s.CloseWrite()
	ids, err := readRelayed(s)
	if err != nil {
		s.Reset()
		return nil, fmt.Errorf("node: relayed peers of %s: %w", p.ShortString(), err)
	}
	return ids, nil
}
