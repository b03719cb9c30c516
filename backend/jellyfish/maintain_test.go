package jellyfish

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish/internal/memnet"
	"github.com/jellyfish-p2p/jellyfish/codec"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/record"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardproto"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardstore"
)

// maintainTestSet is a network of 12 providers and a device storing files
// as 2+4 shards, so a segment is repaired below 4 healthy shards, and its
// log as 2+6, so the log stays readable whichever 6 nodes the tests take
// away (placement is random).
var maintainTestSet = map[string]string{"pack_max": "0", "data_shards": "2", "parity_shards": "4",
	"meta_data_shards": "2", "meta_parity_shards": "6"}

// holdersOf returns the holders of segment 0's shards of remote.
func holdersOf(t *testing.T, f *Fs, remote string) []peer.ID {
	t.Helper()
	ref, err := f.s.objectOf(context.Background(), entryContent(t, f, remote))
	if err != nil || ref == nil {
		t.Fatalf("reference of %s: %v", remote, err)
	}
	var out []peer.ID
	for i := range ref.Layout.Segments[0].IDs {
		out = append(out, ref.HolderOf(0, i))
	}
	return out
}

// TestMaintenanceRepairs: a round renews every shard the namespace uses;
// shards lost from their holders are rebuilt on other providers and their
// holders recorded, so the file reads back (on a new device too) after
// every original holder is gone; a holder that does not answer is not
// counted lost until it has failed for three days.
func TestMaintenanceRepairs(t *testing.T) {
	a := newMemAccount(t, 12)
	clock := &fakeClock{now: time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)}
	a.now = clock.Now
	ctx := context.Background()
	dev := a.openDevice(t, t.TempDir(), testOptions(t, maintainTestSet))
	data := randomBytes(t, 5000)
	mustPut(t, dev, "docs/report.pdf", data)
	mustPut(t, dev, "docs/other.pdf", randomBytes(t, 3000))
	mustFlush(t, dev)

	opt := maintainOptions{Audits: 2, Repair: true}
	st, err := dev.s.maintain(ctx, opt)
	if err != nil {
		t.Fatal(err)
	}
	if st.Renewed != st.Shards || st.Missing != 0 || st.Repaired != 0 || st.Weak != 0 || st.Audited == 0 || st.AuditFailed != 0 {
		t.Fatalf("a healthy account: %+v", st)
	}
	if st.Objects < 3 {
		t.Fatalf("%d objects: the two files and the log at least", st.Objects)
	}

	// Two holders lose their shards, a third stops answering: 3 healthy,
	// 1 unknown, still at the threshold of 4.
	hs := holdersOf(t, dev, "docs/report.pdf")
	a.net.Wipe(hs[0])
	a.net.Wipe(hs[1])
	a.net.SetDown(hs[2], true)
	clock.Advance(24 * time.Hour)
	if st, err = dev.s.maintain(ctx, opt); err != nil {
		t.Fatal(err)
	}
	if st.Repaired != 0 || st.Missing == 0 || st.Unreachable != 1 {
		t.Fatalf("a holder down for a day is not lost: %+v", st)
	}
	// Three days later it is.
	clock.Advance(72 * time.Hour)
	if st, err = dev.s.maintain(ctx, opt); err != nil {
		t.Fatal(err)
	}
	t.Logf("after three days: %+v", st)
	if st.LostHolders != 1 || st.Repaired == 0 || st.Placed < 3 || st.RepairBytes == 0 {
		t.Fatalf("after three days: %+v", st)
	}
	// The rest of the original holders go too: the rebuilt shards are
	// enough.
	for _, h := range hs[3:] {
		a.net.Wipe(h)
	}
	if got, err := readErr(dev, "docs/report.pdf"); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("after repair, with the original holders gone: %v", err)
	}
	fresh := a.openDevice(t, t.TempDir(), testOptions(t, maintainTestSet))
	if got, err := readErr(fresh, "docs/report.pdf"); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("a new device after repair: %v", err)
	}
}

// TestMaintenanceAuditFindsLiar: a provider that deleted what it
// receipted but claims, when renewing, to hold it is found by the leaf
// audits, and its shards are placed elsewhere.
func TestMaintenanceAuditFindsLiar(t *testing.T) {
	a := newMemAccount(t, 12)
	ctx := context.Background()
	dev := a.openDevice(t, t.TempDir(), testOptions(t, maintainTestSet))
	data := randomBytes(t, 5000)
	mustPut(t, dev, "a.bin", data)
	mustFlush(t, dev)
	hs := holdersOf(t, dev, "a.bin")
	for _, h := range hs[:3] {
		a.net.Wipe(h)
		a.net.SetLiar(h, true)
	}
	st, err := dev.s.maintain(ctx, maintainOptions{Audits: 1000, Repair: true})
	if err != nil {
		t.Fatal(err)
	}
	if st.Missing != 0 || st.AuditFailed < 3 || st.Repaired == 0 || st.Placed < 3 {
		t.Fatalf("liars: %+v", st)
	}
	for _, h := range hs[3:] {
		a.net.Wipe(h)
	}
	if got, err := readErr(dev, "a.bin"); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("after repair: %v", err)
	}
}

// TestSessionMaintainsWeekly: without a node, sessions keep the leases: a
// new device waits a week, then a session starts a round in the
// background, and the next one within the week does not.
func TestSessionMaintainsWeekly(t *testing.T) {
	a := newMemAccount(t, 6)
	clock := &fakeClock{now: time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)}
	a.now = clock.Now
	ctx := context.Background()
	opt := func() *Options {
		o := testOptions(t, map[string]string{"pack_max": "0"})
		o.Maintenance = true
		return o
	}
	dir := t.TempDir()
	session := func() int {
		t.Helper()
		before := a.net.Renewals()
		slot, unlock, err := lockSlot(filepath.Join(dir, string(a.user)))
		if err != nil {
			t.Fatal(err)
		}
		f := a.openSlot(t, slot, unlock, opt())
		mustPut(t, f, "f-"+clock.Now().Format(time.DateOnly), randomBytes(t, 1000))
		waitKeptAlive(t, f.s)
		if err := f.s.close(ctx); err != nil {
			t.Fatal(err)
		}
		return a.net.Renewals() - before
	}
	if n := session(); n != 0 {
		t.Fatalf("a new device renewed %d shards at once", n)
	}
	clock.Advance(6 * 24 * time.Hour)
	if n := session(); n != 0 {
		t.Fatalf("after 6 days: %d renewed", n)
	}
	clock.Advance(2 * 24 * time.Hour)
	if n := session(); n == 0 {
		t.Fatal("after 8 days no session renewed anything")
	}
	clock.Advance(24 * time.Hour)
	if n := session(); n != 0 {
		t.Fatalf("a day after a round: %d renewed", n)
	}
}

// TestStatusSaysWhenTheAccountExpires: `backend status` gives the date the
// account's records expire and, with no node linked, warns in words;
// after a maintenance round it gives the date the leases run to.
func TestStatusSaysWhenTheAccountExpires(t *testing.T) {
	clock := &fakeClock{now: time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)}
	nw, err := memnet.New(6)
	if err != nil {
		t.Fatal(err)
	}
	a := &memAccount{net: nw, user: "tess", pw: "copper lantern orbit gravel 4", now: clock.Now}
	ctx := context.Background()
	if _, err := account.NewManager(nw.Records(), account.InsecureTestKDF(), account.WithClock(clock.Now)).Create(ctx, a.user, a.pw); err != nil {
		t.Fatal(err)
	}
	dev := a.openDevice(t, t.TempDir(), testOptions(t, nil))
	mustPut(t, dev, "a.bin", randomBytes(t, 1000))
	mustFlush(t, dev)
	status := func() map[string]any {
		out, err := dev.Command(ctx, "status", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return out.(map[string]any)["lifetime"].(map[string]any)
	}
	lt := status()
	// Records are signed for 35 days; the earliest of them (the account
	// record, signed at creation on the same clock) expires then.
	if lt["records_expire"] != "2027-04-05T12:00:00Z" || lt["listed_nodes"] != 0 || lt["last_maintenance"] != "never on this device" {
		t.Fatalf("lifetime %v", lt)
	}
	if w, _ := lt["warning"].(string); !strings.Contains(w, "35 days") || !strings.Contains(w, "jellyfish node") {
		t.Fatalf("warning %q", w)
	}
	// The allowance is about's; an account listing no node is a starter.
	out, err := dev.Command(ctx, "status", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	u, err := dev.About(ctx)
	if err != nil {
		t.Fatal(err)
	}
	al, _ := out.(map[string]any)["allowance"].(Allowance)
	cs, _ := out.(map[string]any)["class"].(ClassStatus)
	if al.Used == 0 || al.Used != *u.Used || al.Files != 1 || al.Known != (u.Free != nil) || cs.Class != "starter" {
		t.Fatalf("backend status: allowance %+v, class %+v; about %+v", al, cs, u)
	}
	clock.Advance(24 * time.Hour)
	if _, err := dev.s.maintain(ctx, maintainOptions{}); err != nil {
		t.Fatal(err)
	}
	if lt = status(); lt["leases_renewed_until"] != "2027-05-31T12:00:00Z" || lt["last_maintenance"] != "2027-03-02T12:00:00Z" {
		t.Fatalf("after a round: %v", lt)
	}
}

// waitKeptAlive waits for the session's first keep-alive round to end.
func waitKeptAlive(t testing.TB, s *session) {
	t.Helper()
	waitRounds(t, s, 1)
}

// waitRounds waits until the session's keep-alive loop ended n rounds.
func waitRounds(t testing.TB, s *session, n uint64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for s.keptAlive.Load() < n {
		if time.Now().After(deadline) {
			t.Fatal("no keep-alive round within 30s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestLiveObjectsAreEnough: what maintenance renews is everything a
// device needs. Two devices write many batches and checkpoints (and a
// packed file, an inline one, a large file list entry); every shard
// maintenance does not list is then dropped, as providers would once its
// lease ended, and a new device loads the namespace and reads every file.
func TestLiveObjectsAreEnough(t *testing.T) {
	for _, every := range []string{"3", "1000"} {
		t.Run("checkpoint_every="+every, func(t *testing.T) { testLiveObjectsAreEnough(t, every) })
	}
}

func testLiveObjectsAreEnough(t *testing.T, every string) {
	a := newMemAccount(t, 6)
	ctx := context.Background()
	set := map[string]string{"checkpoint_every": every}
	devA := a.openDevice(t, t.TempDir(), testOptions(t, set))
	devB := a.openDevice(t, t.TempDir(), testOptions(t, set))
	want := map[string][]byte{}
	for i := range 11 {
		for j, dev := range []*Fs{devA, devB} {
			name := fmt.Sprintf("d%d/f%02d.bin", j, i)
			data := randomBytes(t, []int{50, 3000, 40000}[i%3])
			mustPut(t, dev, name, data)
			want[name] = data
			mustFlush(t, dev)
		}
		if i%4 == 3 {
			if _, err := devA.s.poll(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	mustPut(t, devB, "d1/f02.bin", []byte("replaced"))
	want["d1/f02.bin"] = []byte("replaced")
	mustFlush(t, devB)
	objs, err := devB.s.liveObjects(ctx)
	if err != nil {
		t.Fatal(err)
	}
	keep := map[codec.ShardID]bool{}
	for _, ref := range objs {
		for _, seg := range ref.Layout.Segments {
			for _, id := range seg.IDs {
				keep[id] = true
			}
		}
	}
	// With checkpoints, replaced batches and tree nodes are not live.
	if n := a.net.Retain(keep); n == 0 && every == "3" {
		t.Fatal("nothing outside the live set: the test tests nothing")
	}
	fresh := a.openDevice(t, t.TempDir(), testOptions(t, set))
	for name, data := range want {
		if got, err := readErr(fresh, name); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s after dropping what maintenance does not renew: %v", name, err)
		}
	}
}

// TestRepairedLogBatchLoads: every original holder of a device's newest
// log batch goes, after maintenance on another device rebuilt its shards
// elsewhere. A new device learns where they went from the maintaining
// device's log, which it reads first, and loads everything.
func TestRepairedLogBatchLoads(t *testing.T) {
	a := newMemAccount(t, 12)
	clock := &fakeClock{now: time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)}
	a.now = clock.Now
	ctx := context.Background()
	devA := a.openDevice(t, t.TempDir(), testOptions(t, maintainTestSet))
	data := randomBytes(t, 100)
	mustPut(t, devA, "small.txt", data) // inline: it lives in the batch
	mustFlush(t, devA)
	tip := devA.s.log.own.tip
	ref, err := UnmarshalObjRef(tip)
	if err != nil {
		t.Fatal(err)
	}
	// Shards are taken away by ID, so no other object loses any.
	ids := ref.Layout.Segments[0].IDs
	maint := a.openDevice(t, t.TempDir(), testOptions(t, maintainTestSet))
	for _, id := range ids[:4] {
		a.net.Drop(id)
	}
	st, err := maint.s.maintain(ctx, maintainOptions{Repair: true})
	if err != nil {
		t.Fatal(err)
	}
	if st.RepairedByCode["2+6"] == 0 {
		t.Fatalf("the batch was not repaired: %+v", st)
	}
	for _, id := range ids[4:] {
		a.net.Drop(id)
	}
	fresh := a.openDevice(t, t.TempDir(), testOptions(t, maintainTestSet))
	if got, err := readErr(fresh, "small.txt"); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("a new device, with the batch only where repair put it: %v", err)
	}
}

// TestRepairedOwnBatchLoads: the maintaining device's own earlier batch
// loses every original holder after it repaired it; the location is in
// a later batch that is not its newest. A new device finds it among the
// batches it fetches together.
func TestRepairedOwnBatchLoads(t *testing.T) {
	a := newMemAccount(t, 12)
	ctx := context.Background()
	dev := a.openDevice(t, t.TempDir(), testOptions(t, maintainTestSet))
	want := map[string][]byte{}
	var refs [][]byte
	for i := range 4 {
		name := fmt.Sprintf("f%d.txt", i)
		want[name] = randomBytes(t, 100)
		mustPut(t, dev, name, want[name])
		mustFlush(t, dev)
		refs = append(refs, dev.s.log.own.tip)
	}
	ref, err := UnmarshalObjRef(refs[1]) // batch 2
	if err != nil {
		t.Fatal(err)
	}
	ids := ref.Layout.Segments[0].IDs
	for _, id := range ids[:4] {
		a.net.Drop(id)
	}
	if st, err := dev.s.maintain(ctx, maintainOptions{Repair: true}); err != nil || st.Repaired == 0 {
		t.Fatalf("repair: %+v, %v", st, err)
	}
	want["later.txt"] = []byte("after the repair")
	mustPut(t, dev, "later.txt", want["later.txt"])
	mustFlush(t, dev)
	for _, id := range ids[4:] {
		a.net.Drop(id)
	}
	fresh := a.openDevice(t, t.TempDir(), testOptions(t, maintainTestSet))
	for name, data := range want {
		if got, err := readErr(fresh, name); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s on a new device: %v", name, err)
		}
	}
}

// TestOwnHeadServedStale: the nodes that answer hold an older head of
// this device than it published (those with the newer one left). The
// device goes on from the head it knows, and puts it back.
func TestOwnHeadServedStale(t *testing.T) {
	a := newMemAccount(t, 6)
	ctx := context.Background()
	dev := a.openDevice(t, t.TempDir(), testOptions(t, nil))
	mustPut(t, dev, "a.txt", []byte("a"))
	mustFlush(t, dev)
	key := account.HeadKey(dev.s.acct.ID(), account.DeviceID(dev.s.device))
	before, err := record.Decode(a.net.RecordsSnapshot()[key])
	if err != nil {
		t.Fatal(err)
	}
	a.net.FailGetOnce(key, fmt.Errorf("node: get: %w", record.ErrStale))
	if _, err := dev.s.maintain(ctx, maintainOptions{}); err != nil {
		t.Fatalf("maintenance with a stale head served: %v", err)
	}
	after, err := record.Decode(a.net.RecordsSnapshot()[key])
	if err != nil {
		t.Fatal(err)
	}
	if after.Seq <= before.Seq {
		t.Fatalf("the head was not put back: seq %d, was %d", after.Seq, before.Seq)
	}
}

// TestMaintenanceKeepsAuditEvidence: a holder that deleted what it claims
// to renew, and one whose copy rotted, fail their audits with signed
// answers; the failing entries in maintain.json carry them with the
// holders' signed renewals, and anyone can check them offline. A holder
// that does not answer is failing too, with no evidence. A later round
// keeps the first answer and adds the latest.
func TestMaintenanceKeepsAuditEvidence(t *testing.T) {
	a := newMemAccount(t, 12)
	clock := &fakeClock{now: time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)}
	a.now = clock.Now
	ctx := context.Background()
	dev := a.openDevice(t, t.TempDir(), testOptions(t, maintainTestSet))
	mustPut(t, dev, "a.bin", randomBytes(t, 5000))
	mustFlush(t, dev)
	ref, err := dev.s.objectOf(ctx, entryContent(t, dev, "a.bin"))
	if err != nil {
		t.Fatal(err)
	}
	hs := holdersOf(t, dev, "a.bin")
	liar, rotten, down := hs[0], hs[1], hs[2]
	rottenID := ref.Layout.Segments[0].IDs[1]
	a.net.Wipe(liar)
	a.net.SetLiar(liar, true)
	a.net.Corrupt(rottenID)
	a.net.SetDown(down, true)
	linkNode(t, dev)

	st, err := dev.s.maintain(ctx, maintainOptions{Audits: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if st.AuditFailed < 2 || st.AuditEvidence != st.AuditFailed || st.Unreachable != 1 {
		t.Fatalf("round: %+v", st)
	}
	owner, _ := shardproto.OwnerOf(dev.s.acct.Identity.GetPublic())
	state := dev.s.loadHolderState()
	if _, ok := state.Failing[down.String()]; !ok {
		t.Fatalf("the holder that is down is not failing: %v", state.Failing)
	}
	byHolder := map[string][]auditFailure{}
	for _, f := range state.FailingAudits {
		byHolder[f.Holder] = append(byHolder[f.Holder], f)
		id, err := codec.ParseShardID(f.Shard)
		if err != nil {
			t.Fatal(err)
		}
		checkEvidence(t, f.First, f.Holder, id, owner)
	}
	if len(byHolder[down.String()]) != 0 {
		t.Fatal("a holder that did not answer has evidence against it")
	}
	if n := len(byHolder[liar.String()]); n == 0 || n > maxAuditFailuresPerHolder {
		t.Fatalf("%d entries for the holder that deleted its shards", n)
	}
	var rot *auditFailure
	for i, f := range byHolder[rotten.String()] {
		if f.Shard == rottenID.String() {
			rot = &byHolder[rotten.String()][i]
		}
	}
	if rot == nil {
		t.Fatalf("no evidence against the holder of the rotten shard: %+v", byHolder)
	}
	if _, err := shardproto.UnmarshalProofAnswer(rot.First.Answer); err != nil {
		t.Fatalf("the rotten shard's answer is not a proof answer: %v", err)
	}

	// Each entry with the holder's renewal went to the providers (every
	// memnet node records what is evidence, and refuses the rest).
	withRenewal := 0
	for _, f := range state.FailingAudits {
		if len(f.First.Renewal) > 0 {
			withRenewal++
			if f.Reported == 0 || f.RecordedBy == 0 {
				t.Fatalf("entry %s/%s not reported: %+v", f.Holder, f.Shard, f)
			}
		}
	}
	if withRenewal == 0 || st.Reports != withRenewal || st.ReportsRecorded < withRenewal {
		t.Fatalf("%d entries with renewals; %d reports sent, %d recorded", withRenewal, st.Reports, st.ReportsRecorded)
	}
	var recorded int
	for _, p := range a.net.Nodes() {
		for _, r := range a.net.Reports(p) {
			recorded++
			if p == peer.ID(r.Holder) {
				t.Fatal("a holder was sent the report about itself")
			}
			if r.Holder == string(down) {
				t.Fatal("a holder that did not answer was reported")
			}
		}
	}
	if recorded != st.ReportsRecorded {
		t.Fatalf("providers recorded %d reports, the round says %d", recorded, st.ReportsRecorded)
	}
	// Every holder renewed was told what each keeps for the account: the
	// same statement, whose bytes sum to what the round renewed; the
	// holder that is down was neither told nor named.
	var told int
	var first []shardproto.Holding
	for _, p := range a.net.Nodes() {
		got := a.net.Holdings(p)
		if len(got) == 0 {
			continue
		}
		told++
		if p == down {
			t.Fatal("the holder that is down was told")
		}
		if first == nil {
			first = got
			var sum int64
			for _, h := range got {
				if h.Holder == down {
					t.Fatal("the holder that is down is named")
				}
				sum += h.Bytes
			}
			if sum != st.RenewedBytes {
				t.Fatalf("statement of %d bytes, the round renewed %d", sum, st.RenewedBytes)
			}
		} else if !slices.Equal(got, first) {
			t.Fatalf("holders were told different things: %v and %v", got, first)
		}
	}
	if told == 0 || told != len(first) || st.HoldingsStated != told || st.HoldingsCounted != told {
		t.Fatalf("%d holders told of %d named; the round says %d told, %d counted", told, len(first), st.HoldingsStated, st.HoldingsCounted)
	}

	// The next day: the same failures; the first answers stay, and what
	// was reported is not sent again.
	clock.Advance(24 * time.Hour)
	st2, err := dev.s.maintain(ctx, maintainOptions{Audits: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if st2.Reports != 0 {
		t.Fatalf("%d reports sent again", st2.Reports)
	}
	again := dev.s.loadHolderState()
	for _, f := range again.FailingAudits {
		if f.Holder != rotten.String() || f.Shard != rottenID.String() {
			continue
		}
		if f.Count != 2 || f.Latest == nil || !bytes.Equal(f.First.Answer, rot.First.Answer) || f.Latest.At != clock.Now().Unix() {
			t.Fatalf("second failure: count %d, latest %v", f.Count, f.Latest != nil)
		}
		checkEvidence(t, *f.Latest, f.Holder, rottenID, owner)
		return
	}
	t.Fatal("the rotten shard's entry is gone after a second failure")
}

// linkNode lists a node (a fresh key) in the account record of dev, as
// `jellyfish node --account-config` does for the node it runs.
func linkNode(t *testing.T, dev *Fs) peer.ID {
	t.Helper()
	id := testPeers(t, 1)[0]
	if _, err := dev.s.mgr.Update(context.Background(), dev.s.acct, account.AddNode(id)); err != nil {
		t.Fatal(err)
	}
	return id
}

// TestHoldingsStatedWhereTheyCount: holdings statements go only where
// they can count, and only when they say something new. An account whose
// record lists no node states nothing; once it lists one, every holder is
// told the whole statement, except one that does not count the account's
// word, which gets only the first holdingsProbe entries. The next rounds
// tell nobody while the statement stays within holdingsDrift of the one
// told, until restateEvery has passed (a second either side); a
// statement that moved past the drift is told at once.
func TestHoldingsStatedWhereTheyCount(t *testing.T) {
	a := newMemAccount(t, 48)
	clock := &fakeClock{now: time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)}
	a.now = clock.Now
	ctx := context.Background()
	// 2 + 30 shards a segment: a few files name more holders than a probe.
	dev := a.openDevice(t, t.TempDir(), testOptions(t, map[string]string{"pack_max": "0", "data_shards": "2", "parity_shards": "30"}))
	for i := range 4 {
		mustPut(t, dev, fmt.Sprintf("f%d.bin", i), randomBytes(t, 20000))
	}
	mustFlush(t, dev)
	round := func(what string) (maintainStats, map[peer.ID]int) {
		t.Helper()
		before := received(a)
		st, err := dev.s.maintain(ctx, maintainOptions{})
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		after := received(a)
		sent := map[peer.ID]int{}
		total := 0
		for p, n := range after {
			if d := n - before[p]; d > 0 {
				sent[p] = d
				total += d
			}
		}
		if total != st.HoldingsEntries {
			t.Fatalf("%s: holders received %d entries, the round says %d", what, total, st.HoldingsEntries)
		}
		t.Logf("%s: %d holders, %d told (%d entries), %d counted, %d current", what, st.Holders, st.HoldingsStated, st.HoldingsEntries, st.HoldingsCounted, st.HoldingsCurrent)
		return st, sent
	}

	st, sent := round("no node listed")
	if st.Holders <= holdingsProbe+2 {
		t.Fatalf("only %d holders: the probe is not tested", st.Holders)
	}
	if len(sent) != 0 || st.HoldingsStated != 0 {
		t.Fatalf("an account listing no node stated holdings to %d holders", len(sent))
	}
	// The holders it renewed are listed all the same (backend holders).
	out, err := dev.Command(ctx, "holders", nil, nil)
	if m, ok := out.(map[string]any); err != nil || !ok || m["account"] != dev.s.acct.ID().String() || len(m["holders"].([]string)) != st.Holders {
		t.Fatalf("backend holders: %v, %v; want %d holders", out, err, st.Holders)
	}

	linkNode(t, dev)
	uncounting := a.net.Nodes()[0]
	a.net.SetUncounting(uncounting, true)
	clock.Advance(24 * time.Hour)
	st, sent = round("first with a node")
	named := len(dev.s.loadHolderState().StatedBase)
	if named != st.Holders || st.HoldingsStated != st.Holders {
		t.Fatalf("%d holders, %d named, %d told", st.Holders, named, st.HoldingsStated)
	}
	for p, n := range sent {
		want := named
		if p == uncounting {
			want = holdingsProbe
		}
		if n != want {
			t.Fatalf("holder %s was sent %d entries, want %d", p.ShortString(), n, want)
		}
	}
	if st.HoldingsCounted != st.Holders-1 {
		t.Fatalf("%d of %d holders counted; all but one should", st.HoldingsCounted, st.Holders)
	}

	// The same holdings a day later, with one holder down (a large
	// account always has one), and up to a second before restateEvery:
	// only the holder that did not count is asked again.
	down := a.net.Nodes()[1]
	for i, d := range []time.Duration{24 * time.Hour, restateEvery - 24*time.Hour - time.Second} {
		a.net.SetDown(down, i == 0)
		clock.Advance(d)
		st, sent = round("unchanged")
		current := st.Holders - 1
		if i == 0 {
			current-- // the one down is not renewed, so not named
		}
		if len(sent) != 1 || sent[uncounting] != holdingsProbe || st.HoldingsCurrent != current {
			t.Fatalf("unchanged statement: %d holders told, %d current", len(sent), st.HoldingsCurrent)
		}
	}
	clock.Advance(time.Second)
	st, sent = round("restateEvery after")
	if len(sent) != st.Holders || st.HoldingsCounted != st.Holders-1 {
		t.Fatalf("after restateEvery: %d of %d holders told", len(sent), st.Holders)
	}

	// More data: the entries move past the drift, and everyone is told.
	clock.Advance(time.Hour)
	for i := range 4 {
		mustPut(t, dev, fmt.Sprintf("g%d.bin", i), randomBytes(t, 20000))
	}
	mustFlush(t, dev)
	st, sent = round("grown")
	if len(sent) != st.Holders || st.HoldingsCurrent != 0 {
		t.Fatalf("a changed statement was told to %d of %d holders (%d current)", len(sent), st.Holders, st.HoldingsCurrent)
	}

	// More holders gone than holdersChurn allows (4 of 48, over 3): the
	// statement changed, and every holder left is told.
	clock.Advance(time.Hour)
	for _, p := range a.net.Nodes()[2:6] {
		a.net.SetDown(p, true)
	}
	st, sent = round("four down")
	if named := len(dev.s.loadHolderState().StatedBase); len(sent) != st.Holders-4 || named != st.Holders-4 || st.HoldingsCurrent != 0 {
		t.Fatalf("with four holders down: %d told, %d named, of %d holders", len(sent), named, st.Holders)
	}
}

// checkEvidence verifies, with nothing but the kept bytes, that holder
// signed a failed audit of id for owner and, in the same round, a
// renewal that covered id.
func checkEvidence(t *testing.T, ev auditEvidence, holder string, id codec.ShardID, owner shardstore.Owner) {
	t.Helper()
	v, err := shardproto.VerifyAuditAnswer(ev.Answer)
	if err != nil || !v.Failed || v.Holder.String() != holder || v.Shard != id || v.Owner != owner {
		t.Fatalf("answer of %s for %s: %+v, %v", holder, id.Short(), v, err)
	}
	ri, err := shardproto.UnmarshalRenewInclusion(ev.Renewal)
	if err == nil {
		err = shardproto.VerifyRenewInclusion(ri)
	}
	if err != nil || ri.Shard != id || ri.Receipt.Holder.String() != holder || ri.Receipt.Owner != owner {
		t.Fatalf("renewal of %s for %s: %v", holder, id.Short(), err)
	}
}

// TestAuditEvidenceIsBounded: however many holders fail however many
// audits, maintain.json keeps at most maxAuditFailures entries, at most
// maxAuditFailuresPerHolder a holder, the most recent failures, each with
// its first answer.
func TestAuditEvidenceIsBounded(t *testing.T) {
	for _, holders := range []int{1, 10, 1000} {
		var st holderState
		ev := auditEvidence{Answer: bytes.Repeat([]byte{1}, 17<<10), Renewal: bytes.Repeat([]byte{2}, 400)}
		var ps []peer.ID
		for i := range holders {
			ps = append(ps, peer.ID(fmt.Sprintf("holder-%d", i)))
		}
		at := int64(0)
		for round := range 10 {
			for _, p := range ps {
				for j := range 10 {
					at++
					ev.At = at
					st.recordAudit(p, codec.IDOf([]byte{byte(j), byte(round % 2)}), ev)
				}
			}
		}
		if len(st.FailingAudits) > maxAuditFailures {
			t.Fatalf("%d holders: %d entries", holders, len(st.FailingAudits))
		}
		per := map[string]int{}
		for _, f := range st.FailingAudits {
			if per[f.Holder]++; per[f.Holder] > maxAuditFailuresPerHolder {
				t.Fatalf("%d holders: more than %d entries for %s", holders, maxAuditFailuresPerHolder, f.Holder)
			}
		}
		if last := st.FailingAudits[len(st.FailingAudits)-1]; last.last() != at {
			t.Fatalf("%d holders: the latest failure is not kept", holders)
		}
		b, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > 1600<<10 {
			t.Fatalf("%d holders: %d bytes of state", holders, len(b))
		}
	}
	// An entry failing again keeps its first answer.
	var st holderState
	first := auditEvidence{At: 1, Answer: []byte("first")}
	st.recordAudit("p", codec.ShardID{1}, first)
	st.recordAudit("p", codec.ShardID{1}, auditEvidence{At: 2, Answer: []byte("second")})
	if f := st.FailingAudits[0]; len(st.FailingAudits) != 1 || f.Count != 2 || string(f.First.Answer) != "first" || string(f.Latest.Answer) != "second" {
		t.Fatalf("%+v", st.FailingAudits)
	}
}

// TestMaintenanceHolderThatHangs: holders that take the round's requests
// and never answer cost the round holderTimeout, not the round itself: the
// round ends, renews every other holder's shards and counts the hung ones
// as not answering; once they have hung for the lost-after time, their
// shards are rebuilt elsewhere and the file reads back without them.
func TestMaintenanceHolderThatHangs(t *testing.T) {
	defer func(d time.Duration) { holderTimeout = d }(holderTimeout)
	holderTimeout = 300 * time.Millisecond
	a := newMemAccount(t, 12)
	clock := &fakeClock{now: time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)}
	a.now = clock.Now
	ctx := context.Background()
	dev := a.openDevice(t, t.TempDir(), testOptions(t, maintainTestSet))
	data := randomBytes(t, 5000)
	mustPut(t, dev, "docs/report.pdf", data)
	mustFlush(t, dev)
	// Three of its six holders hang: below the repair threshold of 4
	// once they count as lost.
	hung := holdersOf(t, dev, "docs/report.pdf")[:3]
	heldByHung := 0
	for _, h := range hung {
		a.net.Stall(h, true)
		t.Cleanup(func() { a.net.Stall(h, false) })
		heldByHung += countHeldBy(t, dev, h)
	}

	opt := maintainOptions{Audits: 2, Repair: true}
	round := func(what string) maintainStats {
		t.Helper()
		type result struct {
			st  maintainStats
			err error
		}
		done := make(chan result, 1)
		go func() {
			st, err := dev.s.maintain(ctx, opt)
			done <- result{st, err}
		}()
		select {
		case r := <-done:
			if r.err != nil {
				t.Fatalf("%s: %v", what, r.err)
			}
			t.Logf("%s: %+v", what, r.st)
			return r.st
		case <-time.After(2 * time.Minute):
			t.Fatalf("%s: the round did not end with a holder hung (holderTimeout %v)", what, holderTimeout)
		}
		return maintainStats{}
	}
	st := round("hung for a moment")
	if st.Unreachable != 3 || st.LostHolders != 0 || st.Repaired != 0 || st.Renewed != st.Shards-st.Missing-heldByHung {
		t.Fatalf("holders hung for a moment: %+v", st)
	}
	clock.Advance(96 * time.Hour)
	st = round("hung for four days")
	if st.LostHolders != 3 || st.Repaired == 0 || st.Placed < 3 {
		t.Fatalf("holders hung for four days: %+v", st)
	}
	for _, h := range hung {
		a.net.SetDown(h, true)
	}
	if got, err := readErr(dev, "docs/report.pdf"); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("after repair, without the hung holders: %v", err)
	}
}

// countHeldBy returns how many shards the account's live objects have at
// holder p, as their references name them.
func countHeldBy(t *testing.T, f *Fs, p peer.ID) int {
	t.Helper()
	refs, err := f.s.liveObjects(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range refs {
		for seg := range r.Layout.Segments {
			for i := range r.Layout.Segments[seg].IDs {
				if r.HolderOf(seg, i) == p {
					n++
				}
			}
		}
	}
	return n
}

// TestMaintenanceAfterTheClockWentBack: a round stamped by a clock a year
// ahead (more than the network corrects), then the clock set right. The
// round is due at once rather than a year and a week later (the leases
// would have lapsed), a holder that failed then counts as failing from
// now, so it is lost, and its shards rebuilt, three days later rather than
// a year and three days, and a holdings statement counted then is told
// again.
func TestMaintenanceAfterTheClockWentBack(t *testing.T) {
	a := newMemAccount(t, 12)
	right := time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := &fakeClock{now: right.AddDate(1, 0, 0)}
	a.now = clock.Now
	ctx := context.Background()
	dev := a.openDevice(t, t.TempDir(), testOptions(t, maintainTestSet))
	mustPut(t, dev, "a.bin", randomBytes(t, 5000))
	mustFlush(t, dev)
	linkNode(t, dev)
	// Three of a.bin's six holders down: below the repair threshold of
	// four once they count as lost.
	downs := holdersOf(t, dev, "a.bin")[:3]
	for _, p := range downs {
		a.net.SetDown(p, true)
	}
	down := downs[0]
	opt := maintainOptions{Audits: 1, Repair: true}
	st, err := dev.s.maintain(ctx, opt)
	if err != nil || st.Unreachable != 3 || st.HoldingsCounted == 0 {
		t.Fatalf("the round a year ahead: %+v, %v", st, err)
	}

	clock.Advance(-365 * 24 * time.Hour) // set right
	before := received(a)
	dev.s.maintainIfDue(ctx)
	hs := dev.s.loadHolderState()
	if hs.LastRound != clock.Now().Unix() {
		t.Fatalf("after the clock went back a year, the last round is still %v", time.Unix(hs.LastRound, 0).UTC())
	}
	if first := hs.Failing[down.String()]; first != clock.Now().Unix() {
		t.Fatalf("the failing holder counts from %v, want now", time.Unix(first, 0).UTC())
	}
	told := 0
	for p, n := range received(a) {
		if n > before[p] {
			told++
		}
	}
	if told == 0 {
		t.Fatal("no holder was told its holdings again after the clock went back")
	}
	clock.Advance(72 * time.Hour)
	if st, err = dev.s.maintain(ctx, opt); err != nil {
		t.Fatal(err)
	}
	if st.LostHolders != 3 || st.Repaired == 0 {
		t.Fatalf("three days after the clock was set right: %+v", st)
	}
}

// received returns the holdings entries each node of a's network was sent.
func received(a *memAccount) map[peer.ID]int {
	m := map[peer.ID]int{}
	for _, p := range a.net.Nodes() {
		m[p] = a.net.HoldingsReceived(p)
	}
	return m
}

// TestOpenWithAccountRecordServedStale: the network serves only an older
// account record than this slot's node has seen (a process killed while
// publishing a newer one). The next command on the slot opens the account
// all the same, after publishing this slot's copy again, and reads what
// was stored.
func TestOpenWithAccountRecordServedStale(t *testing.T) {
	a := newMemAccount(t, 6)
	dir := t.TempDir()
	dev := a.openDevice(t, dir, testOptions(t, nil))
	mustPut(t, dev, "a.txt", []byte("kept"))
	mustFlush(t, dev)
	key := account.AccountKey(dev.s.acct.ID())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := dev.s.close(ctx); err != nil {
		t.Fatal(err)
	}
	a.net.FailGetOnce(key, fmt.Errorf("client: get %q: %w", key, record.ErrStale))
	again := a.openDevice(t, dir, testOptions(t, nil))
	if got := mustRead(t, again, "a.txt"); string(got) != "kept" {
		t.Fatalf("a.txt reads %q", got)
	}
}
