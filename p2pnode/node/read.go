package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	ds "github.com/ipfs/go-datastore"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	pb "github.com/libp2p/go-libp2p-kad-dht/pb"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/record"
)

// RecordRead is what ReadRecord learnt about a key from the peers closest
// to it.
type RecordRead struct {
	// Value is the best valid record by the validator's Select rule among
	// the peers' answers and this node's own stored record; nil when none
	// of them has a valid one. Record is Value decoded.
	Value  []byte
	Record *record.Record
	// Asked is how many remote peers closest to the key were asked.
	Asked int
	// Quorum is the number of answers the read waited for before its
	// grace: the quorum asked for, or Asked when fewer were found.
	Quorum int
	// Answered is how many of them answered, with a record or without.
	// A peer whose answer did not arrive in time is not counted.
	Answered int
	// FromPeers is how many of the peers that answered served Value
	// itself; 0 when Value is only this node's own stored record.
	FromPeers int
	// Stale is how many answered with a record that is valid but older
	// than this node's high-water mark of the key (record.ErrStale), and
	// StaleValue the best of those records by Select.
	Stale      int
	StaleValue []byte
}

// Grace after the quorum: once quorum peers have answered, the others
// get readGrace or as long as the quorum took, whichever is longer, so a
// peer that never answers delays a read by a bounded time while every
// peer that answers as fast as the rest is still heard.
const readGrace = 2 * time.Second

// ReadRecord asks each of the peers closest to key (GetClosestPeers, this
// node excluded) directly for its record, all at once, and returns the
// best valid one by v's Select rule among their answers and local (this
// node's stored record, nil for none). Every answer goes through v, so
// records that fail validation are dropped and valid ones raise the
// key's high-water mark. It waits for every peer asked, or, once quorum
// have answered, for the grace above. It returns the peers that answered
// with no record or one worse than the best (for ReadRecord's fix-up).
//
// Unlike kad-dht's GetValue it reports how many peers answered, so a
// caller can tell "the closest peers hold nothing" from "too few of them
// answered to know".
func ReadRecord(ctx context.Context, d *dht.IpfsDHT, v *record.Validator, key string, local []byte, quorum int) (RecordRead, []peer.ID, error) {
	var rd RecordRead
	if local != nil {
		if r, err := v.Check(key, local); err == nil {
			rd.Value, rd.Record = local, r
		}
	}
	peers, err := d.GetClosestPeers(ctx, key)
	if err != nil && len(peers) == 0 {
		return rd, nil, fmt.Errorf("node: read %q: find closest peers: %w", key, err)
	}
	pm, err := pb.NewProtocolMessenger(d.MessageSender())
	if err != nil {
		return rd, nil, fmt.Errorf("node: read %q: %w", key, err)
	}
	type answer struct {
		from  peer.ID
		ok    bool
		value []byte
	}
	self := d.Host().ID()
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	answers := make(chan answer, len(peers))
	for _, p := range peers {
		if p == self {
			continue
		}
		rd.Asked++
		go func() {
			rec, _, err := pm.GetValue(actx, p, key)
			a := answer{from: p, ok: err == nil}
			if a.ok && rec != nil && bytes.Equal(rec.GetKey(), []byte(key)) {
				a.value = rec.GetValue()
			}
			answers <- a
		}()
	}
	rd.Quorum = min(quorum, rd.Asked)
	start := time.Now()
	var (
		grace <-chan time.Time
		got   []answer
	)
	// Every goroutine sends exactly once into the buffered channel, so
	// the ones cut off by the grace end on their own once cancelled.
	for pending := rd.Asked; pending > 0; {
		select {
		case a := <-answers:
			pending--
			if !a.ok {
				continue
			}
			rd.Answered++
			got = append(got, a)
			if rd.Answered == rd.Quorum && pending > 0 {
				grace = time.After(max(readGrace, time.Since(start)))
			}
		case <-grace:
			pending = 0
		case <-ctx.Done():
			pending = 0
		}
	}
	type held struct {
		from  peer.ID
		value []byte // nil: no valid record
	}
	answered := make([]held, 0, len(got))
	for _, a := range got {
		h := held{from: a.from}
		if a.value != nil {
			r, err := v.Check(key, a.value)
			switch {
			case err == nil:
				h.value = a.value
				if rd.Value == nil {
					rd.Value, rd.Record = a.value, r
				} else if i, err := v.Select(key, [][]byte{rd.Value, a.value}); err == nil && i == 1 {
					rd.Value, rd.Record = a.value, r
				}
			case errors.Is(err, record.ErrStale):
				rd.Stale++
				if rd.StaleValue == nil {
					rd.StaleValue = a.value
				} else if i, err := v.Select(key, [][]byte{rd.StaleValue, a.value}); err == nil && i == 1 {
					rd.StaleValue = a.value
				}
			}
		}
		answered = append(answered, h)
	}
	var behind []peer.ID
	if rd.Value != nil {
		for _, h := range answered {
			if h.value == nil || !bytes.Equal(h.value, rd.Value) {
				behind = append(behind, h.from)
			} else {
				rd.FromPeers++
			}
		}
	}
	return rd, behind, ctx.Err()
}

// ReadRecord is the package-level ReadRecord with this node's DHT,
// validator and stored record. Peers that answered with no record or an
// older one than the best are sent the best in the background (as
// kad-dht's GetValue does), within fixUpTimeout, unless the node closes
// first.
func (n *Node) ReadRecord(ctx context.Context, key string, quorum int) (RecordRead, error) {
	rd, behind, err := ReadRecord(ctx, n.dht, n.validator, key, n.storedRecord(ctx, key), quorum)
	if rd.Value != nil && len(behind) > 0 {
		n.fixUp(key, rd.Value, behind)
	}
	return rd, err
}

// fixUpTimeout bounds the fix-up puts of one read.
const fixUpTimeout = 10 * time.Second

// fixUp sends value to peers, all at once, in goroutines the node waits
// for when it closes.
func (n *Node) fixUp(key string, value []byte, peers []peer.ID) {
	pm, err := pb.NewProtocolMessenger(n.dht.MessageSender())
	if err != nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	rec := &recpb.Record{Key: []byte(key), Value: value}
	for _, p := range peers {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			ctx, cancel := context.WithTimeout(n.runCtx, fixUpTimeout)
			defer cancel()
			if err := pm.PutValue(ctx, p, rec); err != nil {
				n.log.Debug("read fix-up failed", "peer", p.String(), "key", key, "err", err)
			}
		}()
	}
}

// storedRecord returns the record this node's DHT store holds at key, or
// nil.
func (n *Node) storedRecord(ctx context.Context, key string) []byte {
	raw, err := n.records.Get(ctx, recordDsKey(key))
	if err != nil {
		if !errors.Is(err, ds.ErrNotFound) {
			n.log.Debug("read stored record failed", "key", key, "err", err)
		}
		return nil
	}
	var rec recpb.Record
	if proto.Unmarshal(raw, &rec) != nil || string(rec.GetKey()) != key {
		return nil
	}
	return rec.GetValue()
}
