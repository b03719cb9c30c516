package account_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "github.com/libp2p/go-libp2p-kad-dht/pb"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/client"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/localnet"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/node"
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

// netClock is the network's time: the wall clock plus an offset the test
// moves (libp2p's own timers keep real time).
type netClock struct{ off atomic.Int64 }

func (c *netClock) Now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *netClock) Advance(d time.Duration) { c.off.Add(int64(d)) }

// markOnce is a Records whose first Mark fails as if no peer answered, so
// Create cannot check first and learns of the expired account from the
// network refusing its put.
type markOnce struct {
	*client.Records
	failed atomic.Bool
}

func (r *markOnce) Mark(ctx context.Context, key string) (uint64, error) {
	if r.failed.CompareAndSwap(false, true) {
		return 0, account.ErrUnreachable
	}
	return r.Records.Mark(ctx, key)
}

// TestCreateOverExpiredAccountOnNetwork: on six providers and a moved
// clock, an account is created and nobody uses it for 36 days; every node
// stops serving its records, but remembers their sequence numbers. A new
// device's create with the same username and password fails with
// ErrExpiredAccount, both when it reads the nodes' marks first and when
// it only learns from the nodes refusing its login record; nothing is
// written. A different password creates a new, separate account.
func TestCreateOverExpiredAccountOnNetwork(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	clock := &netClock{}
	nw, _, err := provider.StartTestnet(ctx, t.TempDir(), 6, provider.TestnetConfig{Base: localnet.Options{Clock: clock.Now}})
	if err != nil {
		t.Fatal(err)
	}
	defer nw.Close()
	newDevice := func() *client.Client {
		c, err := client.New(ctx, client.Config{DataDir: t.TempDir(), Bootstrap: nw.Node(0).Addrs(),
			Configure: func(cfg *node.Config) { cfg.Clock = clock.Now }})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	manager := func(r account.Records) *account.Manager {
		return account.NewManager(r, account.InsecureTestKDF(), account.WithClock(clock.Now))
	}

	devA := newDevice()
	spy := &spyRecords{Records: devA.Records()}
	old, err := manager(spy).Create(ctx, user, oldPw)
	if err != nil {
		t.Fatal(err)
	}
	loginKey := spy.loginKeys()[0]

	clock.Advance(account.RecordLifetime + 24*time.Hour)
	devB := newDevice()
	recsB := client.NodeRecords(devB.Node())
	if _, err := manager(recsB).Login(ctx, user, oldPw); !errors.Is(err, account.ErrBadLogin) {
		t.Fatalf("login 36 days later: %v, want ErrBadLogin (the record expired)", err)
	}
	// No node serves a valid record any more (kad-dht may hand out the
	// expired bytes until its own age limit; every reader refuses them);
	// each still holds its mark.
	pm, err := pb.NewProtocolMessenger(devB.Node().DHT().MessageSender())
	if err != nil {
		t.Fatal(err)
	}
	noValidRecord := func(when string, p peer.ID) {
		t.Helper()
		rec, _, err := pm.GetValue(ctx, p, loginKey)
		if err != nil {
			t.Fatalf("%s: ask node %s: %v", when, p, err)
		}
		if rec == nil {
			return
		}
		if _, err := devB.Node().Validator().Check(loginKey, rec.GetValue()); !errors.Is(err, record.ErrExpired) {
			t.Fatalf("%s: node %s serves a login record that is not expired: %v", when, p, err)
		}
	}
	marks, err := devB.Node().PeerMarks(ctx, loginKey)
	if err != nil || len(marks) < 3 {
		t.Fatalf("marks of the login key: %v, %v", marks, err)
	}
	for p, m := range marks {
		noValidRecord("after expiry", p)
		if m != 1 {
			t.Fatalf("node %s: mark %d, want 1", p, m)
		}
	}

	if _, err := manager(recsB).Create(ctx, user, oldPw); !errors.Is(err, account.ErrExpiredAccount) {
		t.Fatalf("create over the expired account: %v, want ErrExpiredAccount", err)
	}
	devC := newDevice()
	if _, err := manager(&markOnce{Records: client.NodeRecords(devC.Node())}).Create(ctx, user, oldPw); !errors.Is(err, account.ErrExpiredAccount) {
		t.Fatalf("create whose put the network refuses: %v, want ErrExpiredAccount", err)
	}
	for p := range marks {
		noValidRecord("after the refused creates", p)
	}

	fresh, err := manager(recsB).Create(ctx, user, newPw)
	if err != nil {
		t.Fatalf("create with a different password: %v", err)
	}
	if fresh.ID() == old.ID() {
		t.Fatal("the new account has the old identity")
	}
	if got, err := manager(client.NodeRecords(devC.Node())).Login(ctx, user, newPw); err != nil || got.ID() != fresh.ID() {
		t.Fatalf("login to the new account: %v", err)
	}
}

// TestRecoveryOnNetwork: on six providers, an account created with a
// recovery key on device A gets a new password on device B through the
// key alone; the old password stops working everywhere and the new one
// opens the same keys. A wrong key and a replaced key are refused with
// their own errors; the replacing key works.
func TestRecoveryOnNetwork(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	nw, _, err := provider.StartTestnet(ctx, t.TempDir(), 6, provider.TestnetConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer nw.Close()
	devA, devB := device(t, ctx, nw), device(t, ctx, nw)
	mA := account.NewManager(devA.Records(), account.InsecureTestKDF())
	mB := account.NewManager(devB.Records(), account.InsecureTestKDF())

	created, rk, err := mA.CreateWithRecovery(ctx, user, oldPw)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := account.ParseRecoveryKey(rk.String())
	if err != nil || parsed != rk {
		t.Fatalf("the printed key does not read back: %v", err)
	}
	wrong, _ := account.NewRecoveryKey()
	if _, err := mB.Recover(ctx, user, wrong, newPw); !errors.Is(err, account.ErrBadRecoveryKey) {
		t.Fatalf("wrong recovery key: %v, want ErrBadRecoveryKey", err)
	}
	recovered, err := mB.Recover(ctx, user, parsed, newPw)
	if err != nil {
		t.Fatalf("recover on B: %v", err)
	}
	if recovered.ID() != created.ID() || recovered.Root != created.Root {
		t.Fatal("recovery opened other keys")
	}
	if _, err := mA.Login(ctx, user, oldPw); !errors.Is(err, account.ErrBadLogin) {
		t.Fatalf("old password on A after recovery: %v, want ErrBadLogin", err)
	}
	onA, err := mA.Login(ctx, user, newPw)
	if err != nil || onA.ID() != created.ID() {
		t.Fatalf("new password on A: %v", err)
	}

	second, err := mA.ReplaceRecoveryKey(ctx, onA)
	if err != nil {
		t.Fatal(err)
	}
	const thirdPw = "velvet granite oyster comet"
	if _, err := mB.Recover(ctx, user, rk, thirdPw); !errors.Is(err, account.ErrRecoveryKeyReplaced) {
		t.Fatalf("replaced key: %v, want ErrRecoveryKeyReplaced", err)
	}
	if _, err := mB.Recover(ctx, user, second, thirdPw); err != nil {
		t.Fatalf("the replacing key: %v", err)
	}
	if _, err := mA.Login(ctx, user, newPw); !errors.Is(err, account.ErrBadLogin) {
		t.Fatalf("the password before the second recovery: %v, want ErrBadLogin", err)
	}
	if got, err := mA.Login(ctx, user, thirdPw); err != nil || got.ID() != created.ID() {
		t.Fatalf("third password: %v", err)
	}
}
