package jellyfish

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish/ns"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/client"
)

// TestAccountBackAfterRecordsExpired: no device used the account for
// longer than its records live, so the network forgot its login record,
// its account record and every head. A device that used it before comes
// back: from the copies in its slot it publishes them again, opens, and
// a device that never used the account can then log in with the password
// and read every file, the other device's included.
func TestAccountBackAfterRecordsExpired(t *testing.T) {
	a := newMemAccount(t, 4)
	ctx := context.Background()
	dirA := t.TempDir()
	slotPath := filepath.Join(dirA, string(a.user))
	slot, unlock, err := lockSlot(slotPath)
	if err != nil {
		t.Fatal(err)
	}
	devA := a.openSlot(t, slot, unlock, testOptions(t, nil))
	mustPut(t, devA, "a.txt", []byte("from a"))
	mustFlush(t, devA)
	devB := a.openDevice(t, t.TempDir(), testOptions(t, nil))
	mustPut(t, devB, "b.txt", []byte("from b"))
	mustFlush(t, devB)
	if err := devB.s.close(ctx); err != nil {
		t.Fatal(err)
	}
	// A's session has taken its copies (of B's head too) in the
	// background by the time it closes; a new round makes sure B's head,
	// published after A started, has one.
	if err := devA.s.careForRecords(ctx); err != nil {
		t.Fatal(err)
	}
	if err := devA.s.close(ctx); err != nil {
		t.Fatal(err)
	}
	copies, err := os.ReadDir(filepath.Join(slot, "caretaker"))
	if err != nil {
		t.Fatal(err)
	}
	if len(copies) < 3 {
		t.Fatalf("%d record copies in the slot, want login, account and B's head", len(copies))
	}

	// Everything expires.
	for _, prefix := range []string{"/jf/login/", "/jf/account/", "/jf/head/"} {
		if a.net.DeleteRecords(prefix) == 0 {
			t.Fatalf("no %s records", prefix)
		}
	}
	if _, err := account.NewManager(a.net.Records(), account.InsecureTestKDF()).Login(ctx, a.user, a.pw); err == nil {
		t.Fatal("login works with no records")
	}

	slot, unlock, err = lockSlot(slotPath)
	if err != nil {
		t.Fatal(err)
	}
	back := a.openSlot(t, slot, unlock, testOptions(t, nil))
	t.Cleanup(func() { back.s.close(ctx) })
	// The background round publishes the login record and B's head.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := account.NewManager(a.net.Records(), account.InsecureTestKDF()).Login(ctx, a.user, a.pw)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("login after the device came back: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitKeptAlive(t, back.s)
	devC := a.openDevice(t, t.TempDir(), testOptions(t, nil))
	for name, want := range map[string]string{"a.txt": "from a", "b.txt": "from b"} {
		if got := string(mustRead(t, devC, name)); got != want {
			t.Fatalf("%s reads %q on a new device", name, got)
		}
	}
}

// unanswered is what the records adapter returns when too few of the
// peers closest to a key answered to tell whether a record is there.
var unanswered = fmt.Errorf("client: get: %w: %w", account.ErrUnreachable, client.ErrTooFewAnswers)

// TestUnansweredLookupsWriteNothing: a lookup that too few peers answered
// is "unknown", never "absent". A device whose slot lost its copy of its
// head, and whose head lookup goes unanswered, does not open (it would
// start its log again at batch 1); a session whose account record lookup
// goes unanswered does not publish the slot's copy over it; a caretaker
// round does not either. Nothing is put in any of these, and the device
// opens afterwards where it left off.
func TestUnansweredLookupsWriteNothing(t *testing.T) {
	a := newMemAccount(t, 4)
	ctx := context.Background()
	dir := t.TempDir()
	var (
		dev  ns.DeviceID
		seq  uint64
		slot string
		acct *account.Account
	)
	a.use(t, dir, func(f *Fs) {
		mustPut(t, f, "a.txt", []byte("a"))
		mustFlush(t, f)
		mustPut(t, f, "b.txt", []byte("b"))
		mustFlush(t, f)
		dev, seq, slot, acct = f.s.device, f.s.log.ownSeq(), f.s.slotDir, f.s.acct
	})
	headKey := account.HeadKey(acct.ID(), account.DeviceID(dev))
	acctKey := account.AccountKey(acct.ID())
	var mu sync.Mutex
	var puts []string
	a.net.SetRecordHook(func(op, key string, _ []byte) {
		if op == "put" {
			mu.Lock()
			puts = append(puts, key)
			mu.Unlock()
		}
	})
	putsSoFar := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(puts)
	}
	if err := os.Remove(filepath.Join(slot, "head")); err != nil {
		t.Fatal(err)
	}
	before := a.net.RecordsSnapshot()

	for _, key := range []string{headKey, acctKey} {
		a.net.FailGetOnce(key, unanswered)
		f, err := a.tryOpen(t, dir, testOptions(t, nil))
		if err == nil {
			f.s.close(ctx)
			t.Fatalf("a session opened although the lookup of %s went unanswered", key)
		}
		if !errors.Is(err, account.ErrUnreachable) {
			t.Fatalf("open with %s unanswered: %v, want ErrUnreachable", key, err)
		}
		if p := putsSoFar(); len(p) > 0 {
			t.Fatalf("open with %s unanswered put %v", key, p)
		}
	}
	after := a.net.RecordsSnapshot()
	for _, k := range []string{headKey, acctKey} {
		if !bytes.Equal(after[k], before[k]) {
			t.Fatalf("%s changed while its lookups went unanswered", k)
		}
	}

	a.use(t, dir, func(f *Fs) {
		if f.s.device != dev || f.s.log.ownSeq() != seq {
			t.Fatalf("device %s at batch %d after the failed opens, want %s at %d", f.s.device, f.s.log.ownSeq(), dev, seq)
		}
		mu.Lock()
		puts = nil
		mu.Unlock()
		a.net.FailGetOnce(acctKey, unanswered)
		if err := f.s.careForRecords(ctx); !errors.Is(err, account.ErrUnreachable) {
			t.Fatalf("caretaker round with the account record unanswered: %v", err)
		}
		for _, k := range putsSoFar() {
			if k == acctKey {
				t.Fatal("the caretaker published its copy of the account record over an unanswered lookup")
			}
		}
		mustPut(t, f, "c.txt", []byte("c"))
		mustFlush(t, f)
		if got := f.s.log.ownSeq(); got != seq+1 {
			t.Fatalf("next batch %d, want %d", got, seq+1)
		}
	})
}
