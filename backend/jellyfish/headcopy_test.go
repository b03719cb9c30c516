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
