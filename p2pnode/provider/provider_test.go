package provider_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/jellyfish-p2p/jellyfish/codec"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/client"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/node"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/provider"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/record"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardproto"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardstore"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/testnet"
)

const quota = 4 << 20

// TestProviderNetwork starts six full providers on 127.0.0.1 (tiers 0, 1,
// 2, 0, 1, 2; node 5 linked to an account) and a client node: the client
// finds all six through their node records, stores shards on four of them
// over the shard protocol with verified receipts, reads them back, and is
// refused beyond a provider's quota. Node records read from another node
// name each provider's tier, owner and addresses.
func TestProviderNetwork(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	owner := []byte(peerOf(t, newKey(t)))
	nw, fleet, err := provider.StartTestnet(ctx, t.TempDir(), 6, provider.TestnetConfig{
		QuotaBytes: quota,
		Provider: func(i int, cfg *provider.Config) {
			cfg.Tier = i % 3
			if i == 5 {
				cfg.Owner = owner
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer nw.Close()

	// Node records, read by node 0 from the network.
	for i := range 6 {
		rec, _, err := nw.Node(0).GetRecord(ctx, record.NodeKey(nw.ID(i)))
		if err != nil {
			t.Fatalf("node record of %d: %v", i, err)
		}
		var info record.NodeInfo
		if err := info.Unmarshal(rec.Body); err != nil {
			t.Fatal(err)
		}
		if int(info.Tier) != i%3 || len(info.Addrs) == 0 {
			t.Fatalf("node %d record: tier %d, %d addrs", i, info.Tier, len(info.Addrs))
		}
		if wantOwner := i == 5; bytes.Equal(info.Owner, owner) != wantOwner {
			t.Fatalf("node %d record owner %x", i, info.Owner)
		}
	}

	c, err := client.New(ctx, client.Config{DataDir: t.TempDir(), Bootstrap: nw.Node(0).Addrs()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var provs []client.ProviderInfo
	err = testnet.WaitFor(ctx, func() bool {
		provs, err = c.Providers(ctx)
		return err == nil && len(provs) == 6
	})
	if err != nil {
		t.Fatalf("providers seen by the client: %d (%v)", len(provs), err)
	}
	for _, p := range provs {
		i := indexOf(nw, p.ID)
		if int(p.Info.Tier) != i%3 || p.CapacityGiB != 1<<(i%3) {
			t.Fatalf("provider %d listed with tier %d, %d GiB", i, p.Info.Tier, p.CapacityGiB)
		}
	}

	ownerKey := newKey(t)
	sc, err := c.Shards(ownerKey)
	if err != nil {
		t.Fatal(err)
	}
	lease := time.Now().Add(time.Hour)
	for s := range 4 {
		holder := provs[s].ID
		data := randBytes(t, 300_000+s)
		id := codec.IDOf(data)
		rc, err := sc.Put(ctx, holder, id, data, lease)
		if err != nil {
			t.Fatalf("put to provider %s: %v", holder, err)
		}
		if err := shardproto.VerifyReceipt(rc); err != nil || rc.Holder != holder || rc.Shard != id || rc.Owner != sc.Owner() {
			t.Fatalf("receipt from %s: %+v, %v", holder, rc, err)
		}
		r, _, err := sc.Get(ctx, holder, id)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("get back from %s: %v", holder, err)
		}
		// The bytes are in the provider's own store on disk.
		st := fleet.Provider(indexOf(nw, holder)).Store()
		if _, err := st.Stat(ctx, id); err != nil {
			t.Fatalf("shard not in the provider's store: %v", err)
		}
	}

	// Quota: a provider refuses what does not fit.
	big := randBytes(t, quota)
	_, err = sc.Put(ctx, provs[0].ID, codec.IDOf(big), big, lease)
	if !errors.Is(err, shardstore.ErrQuotaExceeded) {
		t.Fatalf("put beyond quota: %v, want ErrQuotaExceeded", err)
	}
}

// TestProviderClosesWithNode checks the lifecycle: closing the node closes
// the provider's service and store, and a provider cannot be attached to a
// closed node.
func TestProviderClosesWithNode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	n, err := node.New(ctx, provider.NodeConfig(node.Config{DataDir: dir, ListenAddrs: nw127()}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := provider.Attach(ctx, n, provider.Config{DataDir: dir, QuotaBytes: quota, FirstPublish: -time.Second}); err == nil {
		t.Fatal("a negative first publish delay accepted")
	}
	p, err := provider.Attach(ctx, n, provider.Config{DataDir: dir, QuotaBytes: quota})
	if err != nil {
		t.Fatal(err)
	}
	if !hasProtocol(n, shardproto.ID) {
		t.Fatal("shard protocol not registered")
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Store().Stat(ctx, codec.IDOf([]byte("x"))); !errors.Is(err, shardstore.ErrClosed) {
		t.Fatalf("store after node close: %v, want ErrClosed", err)
	}
	if _, err := provider.Attach(ctx, n, provider.Config{DataDir: dir}); !errors.Is(err, node.ErrClosed) {
		t.Fatalf("attach to closed node: %v", err)
	}
	if _, err := provider.Attach(ctx, n, provider.Config{DataDir: dir, Tier: shardstore.MaxTier + 1}); err == nil {
		t.Fatal("tier beyond the maximum accepted")
	}
}

// TestRecordKindsDefault checks that provider and client nodes accept
// account records (RecordKinds is filled in by NodeConfig) and that
// NodeConfig adds the shard protocol's limits.
func TestRecordKindsDefault(t *testing.T) {
	cfg := provider.NodeConfig(node.Config{})
	if len(cfg.ServiceLimits) != 1 {
		t.Fatalf("%d service limit functions, want the shard protocol's", len(cfg.ServiceLimits))
	}
	names := map[string]bool{}
	for _, k := range cfg.RecordKinds {
		names[k.Name] = true
	}
	if !names["login"] || !names["account"] || !names["head"] {
		t.Fatalf("default record kinds %v", names)
	}
	var opts []record.Option
	for _, k := range cfg.RecordKinds {
		opts = append(opts, record.WithKind(k))
	}
	if _, err := record.NewValidator(opts...); err != nil {
		t.Fatal(err)
	}
}

func nw127() []ma.Multiaddr {
	return []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0")}
}

func hasProtocol(n *node.Node, id string) bool {
	for _, p := range n.Host().Mux().Protocols() {
		if string(p) == id {
			return true
		}
	}
	return false
}

func indexOf(nw *testnet.Network, id peer.ID) int {
	for i := range nw.Len() {
		if nw.ID(i) == id {
			return i
		}
	}
	panic(fmt.Sprintf("peer %s not in the network", id))
}

func newKey(t *testing.T) crypto.PrivKey {
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func peerOf(t *testing.T, k crypto.PrivKey) peer.ID {
	id, err := peer.IDFromPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func randBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}
