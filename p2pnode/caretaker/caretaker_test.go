package caretaker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/client"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/node"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/record"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/testnet"
)

// clock is the network's time, moved by the test.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

const (
	user     = "ida"
	password = "copper lantern orbit gravel idle"
	day      = 24 * time.Hour
)

// world is a network whose validators read a clock the test moves, with an
// account that has one device and its head record.
type world struct {
	clock *clock
	recs  account.Records
	mgr   *account.Manager
	acct  *account.Account
	head  string     // the device's head key
	node  *node.Node // the node recs reads and writes through
}

func newWorld(t *testing.T) *world {
	t.Helper()
	c := &clock{now: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)}
	nw := testnet.New(t, 6, testnet.Options{
		Clock:     c.Now,
		Configure: func(i int, cfg *node.Config) { cfg.RecordKinds = account.RecordKinds() },
	})
	recs := client.NodeRecords(nw.Node(0))
	mgr := account.NewManager(recs, account.InsecureTestKDF(), account.WithClock(c.Now))
	ctx := context.Background()
	a, err := mgr.Create(ctx, user, password)
	if err != nil {
		t.Fatal(err)
	}
	// The account has lost its login key unless restored with it: log in
	// again, as a device does.
	if a, err = mgr.Login(ctx, user, password); err != nil {
		t.Fatal(err)
	}
	dev := account.DeviceID{7}
	pub, err := mgr.Lookup(ctx, a.ID())
	if err != nil {
		t.Fatal(err)
	}
	pub.Devices = append(pub.Devices, account.Device{ID: dev, Name: "laptop"})
	if err := mgr.PublishAccount(ctx, a, pub); err != nil {
		t.Fatal(err)
	}
	head := account.HeadKey(a.ID(), dev)
	r := record.Record{Kind: account.KindHead, Seq: 5 << 16, Expires: c.Now().Add(account.RecordLifetime), Body: []byte("a sealed head body")}
	raw, err := r.Sign(head, a.Identity)
	if err != nil {
		t.Fatal(err)
	}
	if err := recs.Put(ctx, head, raw); err != nil {
		t.Fatal(err)
	}
	return &world{clock: c, recs: recs, mgr: mgr, acct: a, head: head, node: nw.Node(0)}
}

// accountRecord reads the account record from the network and verifies
// it.
func (w *world) accountRecord(t *testing.T) *record.Record {
	t.Helper()
	key := account.AccountKey(w.acct.ID())
	raw, err := w.recs.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("account record: %v", err)
	}
	rec, err := account.VerifyOwned(key, raw)
	if err != nil {
		t.Fatalf("account record: %v", err)
	}
	return rec
}

// alive reports whether the account can still be logged into and its
// device's head read.
func (w *world) alive(t *testing.T) (login, head bool) {
	t.Helper()
	ctx := context.Background()
	_, err := w.mgr.Login(ctx, user, password)
	if err != nil && !errors.Is(err, account.ErrBadLogin) {
		t.Fatalf("login: %v", err)
	}
	login = err == nil
	raw, err := w.recs.Get(ctx, w.head)
	switch {
	case errors.Is(err, account.ErrNotFound):
	case err != nil:
		t.Fatalf("head: %v", err)
	default:
		rec, err := account.VerifyOwned(w.head, raw)
		head = err == nil && string(rec.Body) == "a sealed head body"
	}
	return login, head
}

// TestIdleAccountKeptAlive: nobody uses the account for 400 days, but its
// owner's node runs a caretaker round every day: the login record and the
// device's head stay on the network the whole time.
func TestIdleAccountKeptAlive(t *testing.T) {
	w := newWorld(t)
	c, err := New(Config{Records: w.recs, Account: w.acct, Dir: t.TempDir(), Clock: w.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	resigned := 0
	for d := 1; d <= 400; d++ {
		w.clock.advance(day)
		st, err := c.Tick(ctx)
		if err != nil {
			t.Fatalf("day %d: %v", d, err)
		}
		resigned += st.Resigned
		if d%60 == 0 || d == 400 {
			if login, head := w.alive(t); !login || !head {
				t.Fatalf("day %d: login record alive %v, head alive %v", d, login, head)
			}
		}
	}
	// Three records, re-signed once under 21 of their 35 days are left:
	// with a round a day, on their 15th day, so 26 times each in 400 days
	// — not every day, and never too late.
	t.Logf("400 days: %d re-signings", resigned)
	if want := 3 * (400 / 15); resigned < want-3 || resigned > want+3 {
		t.Fatalf("%d re-signings in 400 days, want about %d", resigned, want)
	}
}

// TestForgottenRecordsRestored: the node was off too, for 40 days, and the
// network forgot the records; its next round publishes them again from its
// copies. Without a caretaker the account is gone.
func TestForgottenRecordsRestored(t *testing.T) {
	w := newWorld(t)
	c, err := New(Config{Records: w.recs, Account: w.acct, Dir: t.TempDir(), Clock: w.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	w.clock.advance(40 * day)
	if login, head := w.alive(t); login || head {
		t.Fatalf("after 40 idle days: login record alive %v, head alive %v (the test needs them expired)", login, head)
	}
	st, err := c.Tick(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Restored != 3 {
		t.Fatalf("restored %d records, want 3 (login, account, head): %+v", st.Restored, st)
	}
	if login, head := w.alive(t); !login || !head {
		t.Fatalf("after the round: login record alive %v, head alive %v", login, head)
	}
}

// TestRecoveryRecordKeptAlive: the caretaker keeps the account's keyring
// and, through the signing key the keyring holds, its recovery record
// alive: after 100 idle days of daily rounds, then 40 days with the node
// off (the network forgets everything) and one more round, the recovery
// key still sets a new password, and the old password is retired.
func TestRecoveryRecordKeptAlive(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	a, err := w.mgr.Login(ctx, user, password)
	if err != nil {
		t.Fatal(err)
	}
	rk, err := w.mgr.ReplaceRecoveryKey(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{Records: w.recs, Account: w.acct, Dir: t.TempDir(), Clock: w.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	for d := 1; d <= 100; d++ {
		w.clock.advance(day)
		if _, err := c.Tick(ctx); err != nil {
			t.Fatalf("day %d: %v", d, err)
		}
	}
	w.clock.advance(40 * day)
	st, err := c.Tick(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Restored != 5 {
		t.Fatalf("restored %d records after 40 days off, want 5 (login, account, keyring, recovery, head): %+v", st.Restored, st)
	}
	const newPassword = "velvet granite oyster comet"
	got, err := w.mgr.Recover(ctx, user, rk, newPassword)
	if err != nil {
		t.Fatalf("recovery after 140 days: %v", err)
	}
	if got.ID() != w.acct.ID() {
		t.Fatal("recovery opened another account")
	}
	if _, err := w.mgr.Login(ctx, user, password); !errors.Is(err, account.ErrBadLogin) {
		t.Fatalf("old password after recovery: %v, want ErrBadLogin", err)
	}
	if _, err := w.mgr.Login(ctx, user, newPassword); err != nil {
		t.Fatalf("new password: %v", err)
	}
}

// staleRecords serves record.ErrStale for one key, as a node does whose
// peers hold only versions older than it has seen.
type staleRecords struct {
	account.Records
	key string
}

func (s staleRecords) Get(ctx context.Context, key string) ([]byte, error) {
	if key == s.key {
		return nil, fmt.Errorf("client: get %q: %w", key, record.ErrStale)
	}
	return s.Records.Get(ctx, key)
}

// TestStaleRecordRestored: the peers serve only versions of the account
// record older than this node has seen (a process killed while its newer
// record was on the way to them). The round publishes the local copy
// again above every version seen, so the account opens again.
func TestStaleRecordRestored(t *testing.T) {
	w := newWorld(t)
	dir := t.TempDir()
	ctx := context.Background()
	c, err := New(Config{Records: w.recs, Account: w.acct, Dir: dir, Clock: w.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	key := account.AccountKey(w.acct.ID())
	old := w.accountRecord(t)
	c, err = New(Config{Records: staleRecords{w.recs, key}, Account: w.acct, Dir: dir, Clock: w.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Tick(ctx)
	if err != nil || st.Restored != 1 {
		t.Fatalf("round with a stale account record: %+v, %v", st, err)
	}
	if rec := w.accountRecord(t); rec.Seq <= old.Seq || !bytes.Equal(rec.Body, old.Body) {
		t.Fatalf("republished account record: seq %d (was %d), same body %v", rec.Seq, old.Seq, bytes.Equal(rec.Body, old.Body))
	}
}

// TestStaleRecordRestoredAboveTheMark: this node has seen a version of
// the account record five above anything the peers serve (processes
// killed, one after another, while their records were on the way). The
// peers serve a version newer than this node's copy (another device
// wrote it since the last round). The round signs that version's body
// again above the mark — not the copy's, which would roll the other
// device's change back — and the network serves it.
func TestStaleRecordRestoredAboveTheMark(t *testing.T) {
	w := newWorld(t)
	dir := t.TempDir()
	ctx := context.Background()
	c, err := New(Config{Records: w.recs, Account: w.acct, Dir: dir, Clock: w.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Tick(ctx); err != nil { // keeps the copy
		t.Fatal(err)
	}
	key := account.AccountKey(w.acct.ID())
	copied := w.accountRecord(t)
	// Another device adds itself.
	pub, err := w.mgr.Lookup(ctx, w.acct.ID())
	if err != nil {
		t.Fatal(err)
	}
	pub.Devices = append(pub.Devices, account.Device{ID: account.DeviceID{9}, Name: "phone"})
	if err := w.mgr.PublishAccount(ctx, w.acct, pub); err != nil {
		t.Fatal(err)
	}
	served := w.accountRecord(t)
	if served.Seq <= copied.Seq || bytes.Equal(served.Body, copied.Body) {
		t.Fatalf("the other device's record: seq %d after %d", served.Seq, copied.Seq)
	}
	// This node validates, and so marks, a version five above, which no
	// peer ever stores.
	lost := record.Record{Kind: account.KindAccount, Seq: served.Seq + 5, Expires: w.clock.Now().Add(account.RecordLifetime), Body: served.Body}
	lraw, err := lost.Sign(key, w.acct.Identity)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.node.Validator().Validate(key, lraw); err != nil {
		t.Fatal(err)
	}
	if _, err := w.recs.Get(ctx, key); !errors.Is(err, record.ErrStale) {
		t.Fatalf("get after the mark rose: %v, want a stale answer", err)
	}
	st, err := c.Tick(ctx)
	if err != nil || st.Restored != 1 {
		t.Fatalf("round with the mark five above: %+v, %v", st, err)
	}
	if rec := w.accountRecord(t); rec.Seq <= lost.Seq || !bytes.Equal(rec.Body, served.Body) {
		t.Fatalf("republished: seq %d (mark %d), the other device's body %v", rec.Seq, lost.Seq, bytes.Equal(rec.Body, served.Body))
	}
}
