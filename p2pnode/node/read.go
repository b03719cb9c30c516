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
	kb "github.com/libp2p/go-libp2p-kbucket"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
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

// ReadRecord asks each of the peers closest to key (walkRecord: found and
// asked in one walk, this node excluded) for its record and returns the
// best valid one by v's Select rule among their answers and local (this
// node's stored record, nil for none); a valid record a peer farther away
// served on the way counts too. Every answer goes through v, so records
// that fail validation are dropped and valid ones raise the key's
// high-water mark. It waits for every one of the closest peers, or, once
// quorum have answered, for the grace above. It returns the closest peers
// that answered with no record or one worse than the best (for
// ReadRecord's fix-up).
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
	got, asked, err := walkRecord(ctx, d, key, quorum)
	if err != nil {
		return rd, nil, fmt.Errorf("node: read %q: %w", key, err)
	}
	rd.Asked, rd.Quorum = asked, min(quorum, asked)
	for _, a := range got {
		if a.final {
			rd.Answered++
		}
	}
	type held struct {
		from  peer.ID
		value []byte // nil: no valid record
	}
	answered := make([]held, 0, len(got))
	for _, a := range got {
		var r *record.Record
		err := errNoValue
		if a.value != nil {
			r, err = v.Check(key, a.value)
		}
		if err == nil {
			if rd.Value == nil {
				rd.Value, rd.Record = a.value, r
			} else if i, err := v.Select(key, [][]byte{rd.Value, a.value}); err == nil && i == 1 {
				rd.Value, rd.Record = a.value, r
			}
		}
		if !a.final {
			// Heard on the way to the closest peers: a valid record
			// counts, the answer does not.
			continue
		}
		h := held{from: a.from}
		if a.value != nil {
			switch {
			case err == nil:
				h.value = a.value
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

// errNoValue stands for an answer without a record.
var errNoValue = errors.New("node: no record")

// walkAnswer is one peer's answer to a record request during a walk.
type walkAnswer struct {
	from   peer.ID
	value  []byte // the record's value; nil for none
	closer []*peer.AddrInfo
	// final: the peer is among the closest the walk ended with.
	final bool
}

// maxWalkAsks bounds the requests of one walk: a lookup in a network of
// millions of peers asks a few dozen.
const maxWalkAsks = 200

// walkRecord finds the peers closest to key and their records at once:
// it asks the routing table's nearest peers for the record (kad-dht's
// GET_VALUE, whose answer names closer peers too), asks each closer peer
// an answer names while it is among the bucket-size closest known, and
// ends when every one of those has answered or failed. Once quorum of
// them have answered, the rest get readGrace or as long as the walk took
// so far, whichever is longer; then they count as failed. It returns the
// answers, the final closest marked, and how many of those peers were
// asked (answered or not). Unlike kad-dht's GetClosestPeers followed by a
// round of requests, each peer is asked once, so a read takes the round
// trips of one walk.
func walkRecord(ctx context.Context, d *dht.IpfsDHT, key string, quorum int) ([]walkAnswer, int, error) {
	pm, err := pb.NewProtocolMessenger(d.MessageSender())
	if err != nil {
		return nil, 0, err
	}
	h := d.Host()
	self := h.ID()
	k := d.BucketSize()
	target := kb.ConvertKey(key)
	const (
		unasked = iota
		waiting
		answered
		failed
	)
	state := map[peer.ID]int{}
	var cands []peer.ID
	add := func(p peer.ID) {
		if _, ok := state[p]; ok || p == self {
			return
		}
		state[p] = unasked
		cands = append(cands, p)
	}
	for _, p := range d.RoutingTable().NearestPeers(target, k) {
		add(p)
	}
	if len(cands) == 0 {
		return nil, 0, fmt.Errorf("find closest peers: %w", kb.ErrLookupFailure)
	}
	type reply struct {
		walkAnswer
		ok bool
	}
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Every request sends exactly once into the buffered channel, so the
	// ones not waited for end on their own once cancelled.
	replies := make(chan reply, maxWalkAsks)
	asks := 0
	ask := func(p peer.ID) {
		state[p] = waiting
		asks++
		go func() {
			rec, closer, err := pm.GetValue(actx, p, key)
			r := reply{walkAnswer: walkAnswer{from: p, closer: closer}, ok: err == nil}
			if r.ok && rec != nil && bytes.Equal(rec.GetKey(), []byte(key)) {
				r.value = rec.GetValue()
			}
			replies <- r
		}()
	}
	// window returns the k closest known peers that have not failed.
	window := func() []peer.ID {
		cands = kb.SortClosestPeers(cands, target)
		out := make([]peer.ID, 0, k)
		for _, p := range cands {
			if state[p] != failed {
				out = append(out, p)
				if len(out) == k {
					break
				}
			}
		}
		return out
	}
	got := map[peer.ID]*walkAnswer{}
	start := time.Now()
	var grace <-chan time.Time
walk:
	for {
		win := window()
		pending, heard := 0, 0
		for _, p := range win {
			switch state[p] {
			case unasked:
				if asks < maxWalkAsks {
					ask(p)
					pending++
				}
			case waiting:
				pending++
			case answered:
				heard++
			}
		}
		if pending == 0 {
			break
		}
		if grace == nil && heard >= min(quorum, len(win)) {
			grace = time.After(max(readGrace, time.Since(start)))
		}
		select {
		case r := <-replies:
			if !r.ok {
				state[r.from] = failed
				continue
			}
			state[r.from] = answered
			a := r.walkAnswer
			got[r.from] = &a
			ps := h.Peerstore()
			for _, c := range r.closer {
				if c == nil || c.ID == self {
					continue
				}
				if _, known := state[c.ID]; !known && h.Network().Connectedness(c.ID) != network.Connected {
					ps.AddAddrs(c.ID, c.Addrs, peerstore.TempAddrTTL)
				}
				add(c.ID)
			}
		case <-grace:
			break walk
		case <-ctx.Done():
			break walk
		}
	}
	// The closest peers are the k closest known that did not fail; of
	// them, those that answered count (a peer still waiting when the walk
	// was cut short is left out, as one that failed).
	cands = kb.SortClosestPeers(cands, target)
	final := map[peer.ID]bool{}
	asked, n := 0, 0
	for _, p := range cands {
		if n == k {
			break
		}
		switch state[p] {
		case failed:
			asked++
			continue
		case waiting:
			asked++
		case answered:
			asked++
			final[p] = true
		}
		n++
	}
	return answersOf(got, final), asked, nil
}

// answersOf lists the answers of got, marking those of final.
func answersOf(got map[peer.ID]*walkAnswer, final map[peer.ID]bool) []walkAnswer {
	out := make([]walkAnswer, 0, len(got))
	for p, a := range got {
		a.final = final[p]
		out = append(out, *a)
	}
	return out
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
