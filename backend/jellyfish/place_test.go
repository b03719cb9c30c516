package jellyfish

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish/placement"
	"github.com/jellyfish-p2p/jellyfish/codec"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/localnet"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/node"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/provider"
)

// placeBefore is place as it was written before the index arithmetic moved
// to the placement package; the delegation must not change any choice.
func placeBefore(nodes []peer.ID, seg uint64, total int) []peer.ID {
	out := make([]peer.ID, total)
	start := int((seg * uint64(total)) % uint64(len(nodes)))
	for i := range out {
		out[i] = nodes[(start+i)%len(nodes)]
	}
	return out
}

func TestPlaceDelegationUnchanged(t *testing.T) {
	all := testPeers(t, 70)
	for _, n := range []int{1, 2, 3, 7, 29, 30, 31, 60, 70} {
		for _, total := range []int{1, 3, 30} {
			for _, seg := range []uint64{0, 1, 2, 5, 1 << 40} {
				got, want := place(all[:n], make([]placement.Node, n), placement.GroupCap(total/3, total-total/3), 0, seg, total), placeBefore(all[:n], seg, total)
				for i := range want {
					if got[i] != want[i] {
						t.Fatalf("%d nodes, segment %d, %d shards: shard %d on %s, was %s", n, seg, total, i, got[i].ShortString(), want[i].ShortString())
					}
				}
			}
		}
	}
}

// TestUploadAndRepairKeepGroups: on 60 in-memory providers, 25 of them one
// network (sybil identities on one /24) and 5 of one verified owner, every
// segment of a 10+20 file puts at most 4 shards on that network and 4 on
// that owner, each on a node of its own, and so do the shards a repair
// places after six holders lost theirs.
func TestUploadAndRepairKeepGroups(t *testing.T) {
	a := newMemAccount(t, 60)
	groups := map[peer.ID]placement.Node{}
	for i, p := range a.net.Nodes() {
		switch {
		case i < 25:
			groups[p] = placement.Node{Net: "ip4:203.0.113.0/24"}
		case i < 30:
			groups[p] = placement.Node{Owner: "owner-a", Net: fmt.Sprintf("ip4:10.1.%d.0/24", i)}
		default:
			groups[p] = placement.Node{Net: fmt.Sprintf("ip4:10.2.%d.0/24", i)}
		}
	}
	a.net.SetGroups(groups)
	clock := &fakeClock{now: time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)}
	a.now = clock.Now
	ctx := context.Background()
	set := map[string]string{"pack_max": "0", "data_shards": "10", "parity_shards": "20", "segment_size": fmt.Sprint(64 << 10)}
	dev := a.openDevice(t, t.TempDir(), testOptions(t, set))
	mustPut(t, dev, "f.bin", randomBytes(t, 5*64<<10))
	mustFlush(t, dev)
	ref, err := dev.s.objectOf(ctx, entryContent(t, dev, "f.bin"))
	if err != nil || ref == nil || len(ref.Layout.Segments) < 5 {
		t.Fatalf("reference: %v", err)
	}
	check := func(when string, holders func(seg, idx int) []peer.ID) {
		t.Helper()
		for seg := range ref.Layout.Segments {
			perNet, perOwner, perNode := map[string]int{}, map[string]int{}, map[peer.ID]int{}
			for idx := range ref.Layout.Segments[seg].IDs {
				for _, h := range holders(seg, idx) {
					g := groups[h]
					perNet[g.Net]++
					if g.Owner != "" {
						perOwner[g.Owner]++
					}
					perNode[h]++
				}
			}
			if perNet["ip4:203.0.113.0/24"] > 4 || perOwner["owner-a"] > 4 {
				t.Fatalf("%s, segment %d: the /24 holds %d shards, the owner %d", when, seg, perNet["ip4:203.0.113.0/24"], perOwner["owner-a"])
			}
			for h, c := range perNode {
				if c > 1 {
					t.Fatalf("%s, segment %d: %s holds %d shards", when, seg, h.ShortString(), c)
				}
			}
		}
	}
	check("upload", func(seg, idx int) []peer.ID { return []peer.ID{ref.HolderOf(seg, idx)} })

	// Six holders of segment 0 outside both groups lose every shard; a
	// round three days later rebuilds them.
	lost := map[peer.ID]bool{}
	for idx := range ref.Layout.Segments[0].IDs {
		h := ref.HolderOf(0, idx)
		if g := groups[h]; g.Owner == "" && g.Net != "ip4:203.0.113.0/24" && len(lost) < 6 {
			lost[h] = true
			a.net.Wipe(h)
		}
	}
	opt := maintainOptions{Audits: 0, Repair: true, Threshold: func(k, m int) int { return k + m }}
	st, err := dev.s.maintain(ctx, opt)
	if err != nil || st.Repaired == 0 {
		t.Fatalf("repair: %+v, %v", st, err)
	}
	check("repair", func(seg, idx int) []peer.ID {
		var out []peer.ID
		for _, h := range a.net.Holders(ref.Layout.Segments[seg].IDs[idx]) {
			if !lost[h] {
				out = append(out, h)
			}
		}
		return out
	})
}

// TestPlacementOnLoopbackNetworks stores objects through a real client on
// fourteen real providers: six listen in 127.1.0.0/24 and eight each in a
// /24 of its own (Linux routes all of 127/8 to the loopback interface).
// The client learns each provider's network from its connection, and
// every segment of a 4+4 object (at most 1 shard per network) puts at
// most one shard in 127.1.0.0/24, each on a node of its own. Placement
// that ignored networks would put three there on average.
func TestPlacementOnLoopbackNetworks(t *testing.T) {
	if testing.Short() {
		t.Skip("starts fourteen nodes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ip := func(i int) string {
		if i < 6 {
			return fmt.Sprintf("127.1.0.%d", i+1)
		}
		return fmt.Sprintf("127.%d.0.1", i)
	}
	nw, _, err := provider.StartTestnet(ctx, t.TempDir(), 14, provider.TestnetConfig{Base: localnet.Options{
		Configure: func(i int, cfg *node.Config) {
			cfg.ListenAddrs = []ma.Multiaddr{ma.StringCast("/ip4/" + ip(i) + "/tcp/0")}
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer nw.Close()
	net, shards := clientOf(t, ctx, nw)
	store := &objectStore{shards: shards, providers: net.Providers, groups: groupsOf(net), lease: time.Hour,
		threshold: func(k, m int) int { return k + m }, slots: newTransferSlots(maxTransfers, maxHolderTransfers), now: time.Now}
	// The provider list is kept for a minute: fetch it once every
	// provider is in the routing table.
	rt := net.(*clientNet).c.Node().DHT().RoutingTable()
	if err := localnet.WaitFor(ctx, func() bool { return rt.Size() == 14 }); err != nil {
		t.Fatalf("routing table: %d of 14", rt.Size())
	}
	if p, err := net.Providers(ctx); err != nil || len(p) != 14 {
		t.Fatalf("providers: %d, %v", len(p), err)
	}
	index := map[peer.ID]int{}
	for i := range 14 {
		index[nw.ID(i)] = i
	}
	enc, err := codec.NewEncoder(codec.Params{K: 4, M: 4, SegmentSize: 4096, Compression: codec.CompressNone})
	if err != nil {
		t.Fatal(err)
	}
	segments := 0
	for obj := range 6 {
		data := randomBytes(t, 1000+obj*3000)
		ref, err := store.Put(ctx, enc, bytes.NewReader(data))
		if err != nil {
			t.Fatalf("object %d: %v", obj, err)
		}
		for seg := range ref.Layout.Segments {
			segments++
			inShared, used := 0, map[peer.ID]bool{}
			for idx := range ref.Layout.Segments[seg].IDs {
				h := ref.HolderOf(seg, idx)
				if used[h] {
					t.Fatalf("object %d segment %d: %s holds two shards", obj, seg, h.ShortString())
				}
				used[h] = true
				if index[h] < 6 {
					inShared++
				}
			}
			if inShared > 1 {
				t.Fatalf("object %d segment %d: %d shards in 127.1.0.0/24", obj, seg, inShared)
			}
		}
		rc, err := store.Open(ctx, ref, 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("object %d reads back wrong: %v", obj, err)
		}
	}
	t.Logf("%d segments, none with more than one shard in 127.1.0.0/24", segments)
}

// clientOf joins test network nw as a client of this process, closed when
// the test ends, and returns it with a shard client signing as a fresh
// owner key.
func clientOf(t *testing.T, ctx context.Context, nw *localnet.Network) (network, shardIO) {
	t.Helper()
	var boot []string
	for _, a := range nw.Node(0).Addrs() {
		boot = append(boot, a.String())
	}
	net, err := connect(ctx, &Options{Bootstrap: strings.Join(boot, " ")}, t.TempDir(), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { net.Close() })
	owner, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	shards, err := net.Shards(owner)
	if err != nil {
		t.Fatal(err)
	}
	return net, shards
}
