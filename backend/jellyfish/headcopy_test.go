package jellyfish

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
)

// TestDeviceBackAfterHeadExpired: a device's head record is forgotten by
// the network (it expired while the device was away). When the device
// comes back it continues its log after its last batch, from the copy of
// its head in its slot, so a device that had read that far sees its new
// changes; starting again at batch 1 would hide them from it for ever.
func TestDeviceBackAfterHeadExpired(t *testing.T) {
	a := newMemAccount(t, 4)
	ctx := context.Background()
	dirA := t.TempDir()
	slot, unlock, err := lockSlot(filepath.Join(dirA, string(a.user)))
	if err != nil {
		t.Fatal(err)
	}
	devA := a.openSlot(t, slot, unlock, testOptions(t, nil))
	for i := range 3 {
		mustPut(t, devA, "a.txt", []byte{byte('0' + i)})
		mustFlush(t, devA)
	}
	seq := devA.s.log.own.seq
	devB := a.openDevice(t, t.TempDir(), testOptions(t, nil))
	if got := string(mustRead(t, devB, "a.txt")); got != "2" {
		t.Fatalf("b reads %q", got)
	}
	if err := devA.s.close(ctx); err != nil {
		t.Fatal(err)
	}
	if n := a.net.DeleteRecords(account.HeadKey(devA.s.acct.ID(), account.DeviceID(devA.s.device))); n != 1 {
		t.Fatalf("%d head records deleted", n)
	}

	slot, unlock, err = lockSlot(filepath.Join(dirA, string(a.user)))
	if err != nil {
		t.Fatal(err)
	}
	back := a.openSlot(t, slot, unlock, testOptions(t, nil))
	t.Cleanup(func() { back.s.close(ctx) })
	if back.s.device != devA.s.device {
		t.Fatal("the slot changed device")
	}
	if got := back.s.log.own.seq; got != seq {
		t.Fatalf("the device came back at batch %d, want %d", got, seq)
	}
	mustPut(t, back, "a.txt", []byte("back"))
	mustFlush(t, back)
	if _, err := devB.s.poll(ctx); err != nil {
		t.Fatal(err)
	}
	if got := string(mustRead(t, devB, "a.txt")); got != "back" {
		t.Fatalf("after the device came back, b reads %q", got)
	}
}

// TestRebasedDeviceLetsGoOfItsOldCheckpoint: a device that reloaded from
// another device's checkpoint builds its next one on that; the nodes of
// its own earlier checkpoint are then handed to cleanup (which deletes
// only what no device's current checkpoint uses).
func TestRebasedDeviceLetsGoOfItsOldCheckpoint(t *testing.T) {
	a := newMemAccount(t, 4)
	ctx := context.Background()
	opt := func() *Options { return testOptions(t, map[string]string{"checkpoint_every": "1"}) }
	devA := a.openDevice(t, t.TempDir(), opt())
	mustPut(t, devA, "a/1.txt", []byte("1"))
	mustFlush(t, devA)
	mustPut(t, devA, "a/2.txt", []byte("2"))
	mustFlush(t, devA)
	devB := a.openDevice(t, t.TempDir(), opt())
	mustPut(t, devB, "b/1.txt", []byte("1"))
	mustFlush(t, devB)
	mustPut(t, devB, "b/2.txt", []byte("2"))
	mustFlush(t, devB)
	oldCP := devB.s.log.own.cp
	if oldCP == nil {
		t.Fatal("b wrote no checkpoint")
	}
	// a reads b's log and checkpoints past it; b then reloads from a's.
	if _, err := devA.s.poll(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		mustPut(t, devA, "a/more.txt", []byte{byte(i)})
		mustFlush(t, devA)
	}
	devB.s.log.cfg.maxLogLayer = 0
	if _, err := devB.s.poll(ctx); err != nil {
		t.Fatal(err)
	}
	if r := devB.s.log.baseCP; r == nil || string(r.Root) == string(oldCP.Root) {
		t.Fatal("b did not reload from a's checkpoint")
	}
	devB.s.log.cfg.maxLogLayer = 200_000
	mustPut(t, devB, "b/3.txt", []byte("3"))
	mustFlush(t, devB)
	mustPut(t, devB, "b/4.txt", []byte("4"))
	mustFlush(t, devB)
	devB.s.clean.mu.Lock()
	found := false
	for _, u := range devB.s.clean.nodes {
		if string(u.content) == string(oldCP.Root) {
			found = true
		}
	}
	devB.s.clean.mu.Unlock()
	if !found {
		t.Fatal("the root of b's old checkpoint was not let go")
	}
	if got := listAll(t, devB, ""); len(got) != 7 {
		t.Fatalf("b lists %v", got)
	}
}
