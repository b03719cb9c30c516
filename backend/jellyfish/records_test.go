package jellyfish

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
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
