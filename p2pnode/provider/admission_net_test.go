package provider_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/jellyfish-p2p/jellyfish/codec"
	"github.com/jellyfish-p2p/jellyfish/karma"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/client"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/provider"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/record"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardproto"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardstore"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/testnet"
)

// TestAdmissionOnRealNetwork runs the admission policy on provider 0 of a
// five-node network on 127.0.0.1 (quota 32 MiB; starters 3 MiB each and
// 4 MiB together; a sharing account 8 MiB): a fresh key is refused past
// its cap with the plain message, holds no more than it, and can still
// renew and re-put what it stored; more fresh keys stop at the starters'
// share; an account whose account record lists node 1, whose node record
// names the account, is vetting (provider 0 starts watching node 1); provider
// 0's own account is not capped. The other providers admit all, as test networks do.
func TestAdmissionOnRealNetwork(t *testing.T) {
	const (
		q       = 32 << 20
		size    = 1 << 20
		starter = 3 << 20
	)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ownKey, aliceKey := newKey(t), newKey(t)
	nw, fleet, err := provider.StartTestnet(ctx, t.TempDir(), 5, provider.TestnetConfig{
		QuotaBytes: q,
		Provider: func(i int, cfg *provider.Config) {
			switch i {
			case 0:
				cfg.Owner = []byte(peerOf(t, ownKey))
				cfg.Admission = provider.AdmissionConfig{StarterBytes: starter}
			case 1:
				cfg.Owner = []byte(peerOf(t, aliceKey))
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer nw.Close()
	holder := nw.ID(0)
	p0 := fleet.Provider(0)
	if p0.Admission() == nil || fleet.Provider(1).Admission() != nil {
		t.Fatal("the policy is not on provider 0 alone")
	}
	c, err := client.New(ctx, client.Config{DataDir: t.TempDir(), Bootstrap: nw.Node(0).Addrs()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	lease := time.Now().Add(time.Hour)
	shards := func(k crypto.PrivKey) *shardproto.Client {
		sc, err := c.Shards(k)
		if err != nil {
			t.Fatal(err)
		}
		return sc
	}
	var stored [][]byte
	// fill puts 1 MiB shards for k until one is refused, at most max.
	fill := func(k crypto.PrivKey, max int) (int, error) {
		sc := shards(k)
		for n := 0; n < max; n++ {
			data := randBytes(t, size)
			if _, err := sc.Put(ctx, holder, codec.IDOf(data), data, lease); err != nil {
				return n, err
			}
			stored = append(stored, data)
		}
		return max, nil
	}
	held := func(k crypto.PrivKey) int64 {
		o, err := shardproto.OwnerOf(k.GetPublic())
		if err != nil {
			t.Fatal(err)
		}
		return p0.Store().Usage().PerOwner[o]
	}

	// A fresh key: 3 MiB, then the plain refusal.
	fresh := newKey(t)
	n, err := fill(fresh, 10)
	var re *shardproto.RemoteError
	if n != starter/size || !errors.Is(err, shardstore.ErrOverAllowance) || !errors.As(err, &re) {
		t.Fatalf("fresh key stored %d shards, then %v", n, err)
	}
	want := "this provider keeps at most 3 MiB for an account that shares no node (it holds 3 MiB of yours); run a node (jellyfish node) linked to your account to store more"
	if !strings.HasPrefix(err.Error(), "holder "+holder.String()[:14]) || !strings.HasSuffix(err.Error(), want) {
		t.Fatalf("refusal %q", err)
	}
	if h := held(fresh); h != starter {
		t.Fatalf("fresh key holds %d bytes, cap %d", h, starter)
	}
	// It can still renew and re-put what it stored.
	sc := shards(fresh)
	ids := []codec.ShardID{codec.IDOf(stored[0]), codec.IDOf(stored[1]), codec.IDOf(stored[2])}
	if missing, err := sc.Renew(ctx, holder, ids, lease.Add(time.Hour)); err != nil || len(missing) != 0 {
		t.Fatalf("renew at the cap: %v, missing %v", err, missing)
	}
	if _, err := sc.Put(ctx, holder, ids[0], stored[0], lease.Add(2*time.Hour)); err != nil {
		t.Fatalf("re-put at the cap: %v", err)
	}
	// A repair's put may go a quarter past the cap (3.75 MiB): half a
	// MiB passes, a second half does not.
	half, half2 := randBytes(t, size/2), randBytes(t, size/2)
	if _, err := sc.RepairReader(ctx, holder, codec.IDOf(half), size/2, bytes.NewReader(half), lease); err != nil {
		t.Fatalf("repair within the slack: %v", err)
	}
	if _, err := sc.RepairReader(ctx, holder, codec.IDOf(half2), size/2, bytes.NewReader(half2), lease); !errors.Is(err, shardstore.ErrOverAllowance) {
		t.Fatalf("repair past the slack: %v", err)
	}
	if h := held(fresh); h != starter+size/2 {
		t.Fatalf("fresh key holds %d bytes after a repair, want %d", h, starter+size/2)
	}
	if err := sc.Delete(ctx, holder, codec.IDOf(half)); err != nil {
		t.Fatal(err)
	}

	// More fresh keys: together at most q/8 = 4 MiB.
	n, err = fill(newKey(t), 10)
	if n != 1 || !errors.As(err, &re) || !strings.Contains(re.Msg, "for all accounts that share no node together") {
		t.Fatalf("second fresh key stored %d shards, then %v", n, err)
	}
	for range 3 {
		if n, err := fill(newKey(t), 1); n != 0 || !errors.Is(err, shardstore.ErrOverAllowance) {
			t.Fatalf("another fresh key stored %d shards, then %v", n, err)
		}
	}
	if g := p0.Store().Usage().PerGroup[provider.GroupStarter]; g != q/8 {
		t.Fatalf("fresh keys hold %d bytes together, share %d", g, q/8)
	}

	// An observer's test shard, over the wire: refused with the starters'
	// share taken, taken once provider 0 trusts the observer (a provider
	// holding its linked account's shards), outside that share.
	observer := newKey(t)
	test := randBytes(t, provider.TestShardSize)
	if _, err := shards(observer).Put(ctx, holder, codec.IDOf(test), test, lease); !errors.As(err, &re) || !strings.Contains(re.Msg, "together") {
		t.Fatalf("an untrusted observer's test shard with the starters' share taken: %v", err)
	}
	p0.Admission().TrustObservers([]peer.ID{peerOf(t, observer)})
	if _, err := shards(observer).Put(ctx, holder, codec.IDOf(test), test, lease); err != nil {
		t.Fatalf("a trusted observer's test shard: %v", err)
	}
	if g := p0.Store().Usage().PerGroup[provider.GroupObserver]; g != provider.TestShardSize {
		t.Fatalf("the observers' group holds %d bytes", g)
	}
	if err := shards(observer).Delete(ctx, holder, codec.IDOf(test)); err != nil {
		t.Fatal(err)
	}

	// Alice's account record lists node 1, whose record names her: once
	// provider 0 can read both, she is a sharing account.
	mgr := account.NewManager(c.Records(), account.InsecureTestKDF())
	alice := account.Restore("alice", aliceKey, account.RootKey{}, 1, newKey(t))
	if err := mgr.PublishAccount(ctx, alice, &account.Public{Created: time.Now().Unix(), Nodes: []peer.ID{nw.ID(2), nw.ID(1)}}); err != nil {
		t.Fatal(err)
	}
	err = testnet.WaitFor(ctx, func() bool {
		ar, _, err := nw.Node(0).GetRecord(ctx, account.AccountKey(alice.ID()))
		if err != nil {
			return false
		}
		pub, err := account.ParsePublic(ar.Body)
		if err != nil || len(pub.Nodes) != 2 {
			return false
		}
		nr, _, err := nw.Node(0).GetRecord(ctx, record.NodeKey(nw.ID(1)))
		var info record.NodeInfo
		return err == nil && info.Unmarshal(nr.Body) == nil && bytes.Equal(info.Owner, []byte(alice.ID()))
	})
	if err != nil {
		t.Fatalf("alice's records not readable from provider 0: %v", err)
	}
	// Linked and answering, but provider 0 has not watched node 1 long
	// enough to vet it: a starter's caps, whose share the fresh keys took
	// (TestObserverOnRealNetwork follows an account to the sharing cap).
	if c := p0.Admission().Classify(ctx, alice.ID()); c != provider.ClassVetting {
		t.Fatalf("alice classed %v", c)
	}
	n, err = fill(aliceKey, 20)
	if n != 0 || !errors.As(err, &re) || !strings.Contains(re.Msg, "accounts that share no vetted node together") {
		t.Fatalf("alice stored %d shards, then %v", n, err)
	}
	if st := p0.Standing(nw.ID(1)); st.State != karma.Unknown || !p0.Watching(nw.ID(1)) {
		t.Fatalf("node 1 at provider 0: %v, watched %v", st.State, p0.Watching(nw.ID(1)))
	}
	// A node record naming someone else links nothing: a key whose account
	// record lists node 1 is a starter (and the starters' share is taken).
	mallory := newKey(t)
	if err := mgr.PublishAccount(ctx, account.Restore("mallory", mallory, account.RootKey{}, 1, newKey(t)),
		&account.Public{Created: time.Now().Unix(), Nodes: []peer.ID{nw.ID(1)}}); err != nil {
		t.Fatal(err)
	}
	if c := p0.Admission().Classify(ctx, peerOf(t, mallory)); c != provider.ClassStarter {
		t.Fatalf("an account listing another's node classed %v", c)
	}

	// A node that exists only as a record links nothing: bob's account
	// and a node record signed by a key no running node has name each
	// other, and provider 0 cannot reach that node.
	bobKey, ghost := newKey(t), newKey(t)
	bob := account.Restore("bob", bobKey, account.RootKey{}, 1, newKey(t))
	ghostID := peerOf(t, ghost)
	if err := mgr.PublishAccount(ctx, bob, &account.Public{Created: time.Now().Unix(), Nodes: []peer.ID{ghostID}}); err != nil {
		t.Fatal(err)
	}
	body, err := record.NodeInfo{Owner: []byte(bob.ID()), Tier: 10, Addrs: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/1")}}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	rec := record.Record{Kind: record.KindNode, Seq: 1, Expires: time.Now().Add(time.Hour), Body: body}
	ghostRec, err := rec.Sign(record.NodeKey(ghostID), ghost)
	if err != nil {
		t.Fatal(err)
	}
	if err := nw.Node(0).PutRecord(ctx, record.NodeKey(ghostID), ghostRec); err != nil {
		t.Fatal(err)
	}
	if _, _, err := nw.Node(0).GetRecord(ctx, record.NodeKey(ghostID)); err != nil {
		t.Fatalf("the ghost node's record is not readable: %v", err)
	}
	if c := p0.Admission().Classify(ctx, bob.ID()); c != provider.ClassStarter {
		t.Fatalf("an account whose linked node does not answer classed %v", c)
	}

	// The own account: the rest of the quota, past every other cap.
	n, err = fill(ownKey, 40)
	if want := (q - q/8) / size; n != want || !errors.Is(err, shardstore.ErrQuotaExceeded) {
		t.Fatalf("own account stored %d shards (want %d), then %v", n, want, err)
	}
}
