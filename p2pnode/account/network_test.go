package account_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	pb "github.com/libp2p/go-libp2p-kad-dht/pb"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/client"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/provider"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/record"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/testnet"
)

// spyRecords remembers the keys of every login record put through it, so a
// test can find a login record's key (which only the password reveals).
type spyRecords struct {
	account.Records
	mu     sync.Mutex
	logins []string
}

func (s *spyRecords) Put(ctx context.Context, key string, value []byte) error {
	if strings.HasPrefix(key, "/jf/login/") {
		s.mu.Lock()
		s.logins = append(s.logins, key)
		s.mu.Unlock()
	}
	return s.Records.Put(ctx, key, value)
}

func (s *spyRecords) loginKeys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.logins...)
}

// device starts a client node (one device) on nw.
func device(t *testing.T, ctx context.Context, nw *testnet.Network) *client.Client {
	t.Helper()
	c, err := client.New(ctx, client.Config{DataDir: t.TempDir(), Bootstrap: nw.Node(0).Addrs()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

const (
	user  = account.Username("alice")
	oldPw = "orbit lantern gravel mosaic"
	newPw = "quiet harbor ninety kettle"
)

// TestAccountOnRealNetwork creates an account from one device and uses it
// from another, over a six-node provider network on 127.0.0.1: both
// devices unlock the same keys; after a password change on A the old
// password fails on B and the new one works, and a data key wrapped before
// the change still opens. Forged and replayed login records sent straight
// to remote nodes are refused by them.
func TestAccountOnRealNetwork(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 80*time.Second)
	defer cancel()
	nw, _, err := provider.StartTestnet(ctx, t.TempDir(), 6, provider.TestnetConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer nw.Close()

	devA, devB := device(t, ctx, nw), device(t, ctx, nw)
	spy := &spyRecords{Records: devA.Records()}
	mA := account.NewManager(spy, account.InsecureTestKDF())
	mB := account.NewManager(devB.Records(), account.InsecureTestKDF())

	created, err := mA.Create(ctx, user, oldPw)
	if err != nil {
		t.Fatalf("create on A: %v", err)
	}
	if _, err := mA.Create(ctx, user, oldPw); !errors.Is(err, account.ErrExists) {
		t.Fatalf("second create: %v, want ErrExists", err)
	}
	onB, err := mB.Login(ctx, user, oldPw)
	if err != nil {
		t.Fatalf("login on B: %v", err)
	}
	if onB.ID() != created.ID() || onB.Root != created.Root || !onB.Identity.Equals(created.Identity) {
		t.Fatal("device B unlocked other keys than device A created")
	}
	if _, err := mB.Login(ctx, user, newPw); !errors.Is(err, account.ErrBadLogin) {
		t.Fatalf("login with a password never set: %v, want ErrBadLogin", err)
	}
	pub, err := mB.Lookup(ctx, created.ID())
	if err != nil || pub.Created == 0 {
		t.Fatalf("account record from B: %+v, %v", pub, err)
	}

	var dataKey [32]byte
	rand.Read(dataKey[:])
	ad := []byte("file-1")
	wrapped, err := created.Root.WrapDataKey(dataKey, ad)
	if err != nil {
		t.Fatal(err)
	}

	oldKey := spy.loginKeys()[0]
	_, oldActive, err := devA.Node().GetRecord(ctx, oldKey)
	if err != nil {
		t.Fatal(err)
	}

	if _, err := mA.ChangePassword(ctx, user, oldPw, newPw); err != nil {
		t.Fatalf("passwd on A: %v", err)
	}
	if _, err := mB.Login(ctx, user, oldPw); !errors.Is(err, account.ErrBadLogin) {
		t.Fatalf("old password on B after passwd: %v, want ErrBadLogin", err)
	}
	after, err := mB.Login(ctx, user, newPw)
	if err != nil {
		t.Fatalf("new password on B: %v", err)
	}
	if got, err := after.Root.UnwrapDataKey(wrapped, ad); err != nil || got != dataKey {
		t.Fatalf("data key wrapped before passwd: %v", err)
	}

	// Attacks, sent straight to each provider so no local validator of the
	// attacker's stands in between.
	var newKey string
	for _, k := range spy.loginKeys() {
		if k != oldKey {
			newKey = k
		}
	}
	if newKey == "" {
		t.Fatal("passwd did not write a new login record")
	}
	_, newActive, err := devA.Node().GetRecord(ctx, newKey)
	if err != nil {
		t.Fatal(err)
	}
	genuine, err := record.Decode(newActive)
	if err != nil {
		t.Fatal(err)
	}
	attacker, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	forged := record.Record{Kind: account.KindLogin, Seq: genuine.Seq + 100, Expires: time.Now().Add(time.Hour), Body: genuine.Body}
	forgedRaw, err := forged.Sign(newKey, attacker)
	if err != nil {
		t.Fatal(err)
	}
	attacks := []struct {
		name, key string
		value     []byte
	}{
		{"forged login record for someone else's key", newKey, forgedRaw},
		{"old login record replayed over its tombstone", oldKey, oldActive},
		{"login record pasted onto another key", newKey, oldActive},
	}
	attackerNode := devA.Node()
	pm, err := pb.NewProtocolMessenger(attackerNode.DHT().MessageSender())
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range attacks {
		for _, i := range nw.Live() {
			p := nw.ID(i)
			_ = pm.PutValue(ctx, p, &recpb.Record{Key: []byte(a.key), Value: a.value})
			rec, _, err := pm.GetValue(ctx, p, a.key)
			if err != nil {
				t.Fatalf("%s: ask node %d: %v", a.name, i, err)
			}
			if rec != nil && bytes.Equal(rec.GetValue(), a.value) {
				t.Fatalf("%s: node %d stored it", a.name, i)
			}
		}
	}
	if _, err := mB.Login(ctx, user, oldPw); !errors.Is(err, account.ErrBadLogin) {
		t.Fatalf("old password after replay: %v, want ErrBadLogin", err)
	}
	if _, err := mB.Login(ctx, user, newPw); err != nil {
		t.Fatalf("new password after attacks: %v", err)
	}
}

// TestRecordsAdapterErrors checks the adapter's mapping on a real network:
// an absent key is ErrNotFound, and a client whose peers are all gone
// gets ErrUnreachable for reads and writes, within the adapter's timeout.
func TestRecordsAdapterErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nw, _, err := provider.StartTestnet(ctx, t.TempDir(), 3, provider.TestnetConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer nw.Close()
	dev := device(t, ctx, nw)
	id, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	pid, _ := peer.IDFromPrivateKey(id)
	if _, err := dev.Records().Get(ctx, account.AccountKey(pid)); !errors.Is(err, account.ErrNotFound) {
		t.Fatalf("absent key: %v, want ErrNotFound", err)
	}
	if err := nw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := testnet.WaitFor(ctx, func() bool { return len(dev.Node().Host().Network().Peers()) == 0 }); err != nil {
		t.Fatalf("connections never dropped: %v", err)
	}
	start := time.Now()
	if _, err := dev.Records().Get(ctx, account.AccountKey(pid)); !errors.Is(err, account.ErrUnreachable) {
		t.Fatalf("get without peers: %v, want ErrUnreachable", err)
	}
	m := account.NewManager(dev.Records(), account.InsecureTestKDF())
	if _, err := m.Create(ctx, "bob", oldPw); !errors.Is(err, account.ErrUnreachable) {
		t.Fatalf("create without peers: %v, want ErrUnreachable", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("failing without peers took %v", d)
	}
}
