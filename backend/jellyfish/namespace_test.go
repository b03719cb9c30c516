package jellyfish

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rclone/rclone/fs/object"

	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish/ns"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
)

// TestCheckpointsAtScale writes a few thousand files in many flushes with
// frequent checkpoints and checks what the namespace redesign promises: the
// head stays small whatever the tree, a new device loads from the latest
// checkpoint (not the whole log), and one change costs a few nodes.
func TestCheckpointsAtScale(t *testing.T) {
	if testing.Short() {
		t.Skip("writes thousands of files")
	}
	a := newMemAccount(t, 6)
	opt := testOptions(t, map[string]string{"checkpoint_every": "4"})
	dev := a.openDevice(t, t.TempDir(), opt)
	const files = 4000
	want := map[string]int64{}
	for i := range files {
		name := fmt.Sprintf("d%02d/sub%d/f%05d.txt", i%50, i%7, i)
		data := []byte(fmt.Sprintf("file %d %0200d", i, i)) // packed: over inline_max
		mustPut(t, dev, name, data)
		want[name] = int64(len(data))
		if i%250 == 249 {
			mustFlush(t, dev)
		}
	}
	mustFlush(t, dev)
	if dev.s.log.own.cp == nil {
		t.Fatal("no checkpoint after 16 batches with checkpoint_every 4")
	}
	if n := headRecordSize(a); n == 0 || n > account.MaxHeadBody+1024 {
		t.Fatalf("head record of %d bytes", n)
	}

	other := a.openDevice(t, t.TempDir(), testOptions(t, nil))
	if got := listAll(t, other, ""); len(got) != files {
		t.Fatalf("a new device lists %d files, want %d", len(got), files)
	}
	if n := other.s.log.logL.Len(); n >= files/2 {
		t.Fatalf("a new device applied %d paths from the log: it did not load from the checkpoint", n)
	}
	if got := mustRead(t, other, "d07/sub0/f00007.txt"); string(got) != fmt.Sprintf("file 7 %0200d", 7) {
		t.Fatalf("read %q", got)
	}

	// One change, then enough flushes to fold it into a checkpoint: the
	// checkpoint stores a few nodes, not the tree.
	_, before, _ := a.net.Stats()
	mustPut(t, dev, "d03/sub1/changed.txt", []byte("x"))
	for range 4 {
		mustFlush(t, dev)
		mustPut(t, dev, "d03/sub1/changed.txt", []byte(fmt.Sprint(dev.s.log.own.seq)))
	}
	mustFlush(t, dev)
	_, after, _ := a.net.Stats()
	cp := dev.s.log.own.cp
	t.Logf("4,000 files: %d bytes stored on the network for 5 changes and a checkpoint (checkpoint %d)", after-before, cp.Seq)
	if after-before > 2<<20 {
		t.Fatalf("5 small changes stored %d bytes", after-before)
	}
}

// TestFlushRetryKeepsChanges makes the head's record store fail: the flush
// fails, the change stays pending and journaled, and the next flush, with
// the records back, stores it for other devices.
func TestFlushRetryKeepsChanges(t *testing.T) {
	a := newMemAccount(t, 4)
	dev := a.openDevice(t, t.TempDir(), testOptions(t, nil))
	mustPut(t, dev, "a.txt", []byte("before"))
	mustFlush(t, dev)
	down := errors.New("records unreachable")
	a.net.FailRecords(down)
	mustPut(t, dev, "b.txt", []byte("while the records fail"))
	if err := dev.s.flush(context.Background()); !errors.Is(err, down) {
		t.Fatalf("flush with the records down: %v", err)
	}
	if n := dev.s.log.pendingCount(); n != 1 {
		t.Fatalf("%d changes pending after the failed flush, want 1", n)
	}
	a.net.FailRecords(nil)
	mustFlush(t, dev)
	other := a.openDevice(t, t.TempDir(), testOptions(t, nil))
	if got := string(mustRead(t, other, "b.txt")); got != "while the records fail" {
		t.Fatalf("other device reads %q", got)
	}
}

// TestHeadLandedButReportedFailed: the network stores this device's head
// but the answers are lost, so the flush reports a failure. The next flush
// must take that head for its own (not for another copy of the slot's),
// go on storing, and keep the batches the head names: cleanup right after
// must not delete them, or every other device loses those changes.
func TestHeadLandedButReportedFailed(t *testing.T) {
	a := newMemAccount(t, 4)
	dev := a.openDevice(t, t.TempDir(), testOptions(t, nil))
	ctx := context.Background()
	mustPut(t, dev, "a.txt", []byte("before"))
	mustFlush(t, dev)
	lost := errors.New("answers lost")
	headKey := account.HeadKey(dev.s.acct.ID(), account.DeviceID(dev.s.device))
	a.net.LoseRecordAnswers(func(key string) error {
		if key == headKey {
			return lost
		}
		return nil
	})
	mustPut(t, dev, "b.txt", []byte("landed unseen"))
	if err := dev.s.flush(ctx); !errors.Is(err, lost) {
		t.Fatalf("flush with the head's answers lost: %v", err)
	}
	a.net.LoseRecordAnswers(nil)
	mustPut(t, dev, "c.txt", []byte("after"))
	mustFlush(t, dev)
	if err := dev.s.cleanUp(ctx, 0); err != nil {
		t.Fatalf("cleanup: %v", err)
	}
	mustPut(t, dev, "d.txt", []byte("later"))
	mustFlush(t, dev)
	other := a.openDevice(t, t.TempDir(), testOptions(t, nil))
	for name, want := range map[string]string{"a.txt": "before", "b.txt": "landed unseen", "c.txt": "after", "d.txt": "later"} {
		if got := string(mustRead(t, other, name)); got != want {
			t.Fatalf("other device reads %s as %q, want %q", name, got, want)
		}
	}
}

// TestUnsureCheckpointThenPoll: the flush whose head's answers are lost
// wrote a checkpoint, and a poll applies another device's change before
// the head is published again. Nothing is lost from this device's view,
// from the network, or to cleanup.
func TestUnsureCheckpointThenPoll(t *testing.T) {
	a := newMemAccount(t, 4)
	devA := a.openDevice(t, t.TempDir(), testOptions(t, nil))
	devB := a.openDevice(t, t.TempDir(), testOptions(t, nil))
	ctx := context.Background()
	mustPut(t, devA, "a.txt", []byte("a"))
	converge(t, devA, devB)
	lost := errors.New("answers lost")
	headKey := account.HeadKey(devA.s.acct.ID(), account.DeviceID(devA.s.device))
	a.net.LoseRecordAnswers(func(key string) error {
		if key == headKey {
			return lost
		}
		return nil
	})
	mustPut(t, devA, "b.txt", []byte("b"))
	if err := devA.s.checkpointNow(ctx); !errors.Is(err, lost) {
		t.Fatalf("checkpoint with the head's answers lost: %v", err)
	}
	if n := devA.s.log.pendingCount(); n != 1 {
		t.Fatalf("%d changes counted as not stored, want 1", n)
	}
	mustPut(t, devB, "x.txt", []byte("x"))
	mustFlush(t, devB)
	mustPoll(t, devA)
	a.net.LoseRecordAnswers(nil)
	mustPut(t, devA, "c.txt", []byte("c"))
	mustFlush(t, devA)
	if n := devA.s.log.pendingCount(); n != 0 {
		t.Fatalf("%d changes pending after the head was published", n)
	}
	if err := devA.s.cleanUp(ctx, 0); err != nil {
		t.Fatalf("cleanup: %v", err)
	}
	want := map[string]string{"a.txt": "a", "b.txt": "b", "c.txt": "c", "x.txt": "x"}
	if got := contents(t, devA); !equalContents(got, want) {
		t.Fatalf("device A shows %v, want %v", got, want)
	}
	// A checkpoint after it, then a device loading from the network.
	if err := devA.s.checkpointNow(ctx); err != nil {
		t.Fatal(err)
	}
	if err := devA.s.cleanUp(ctx, 0); err != nil {
		t.Fatalf("cleanup: %v", err)
	}
	other := a.openDevice(t, t.TempDir(), testOptions(t, nil))
	if got := contents(t, other); !equalContents(got, want) {
		t.Fatalf("a new device shows %v, want %v", got, want)
	}
}

// TestUnencodableEntryDoesNotBlock commits an entry the batch format
// cannot hold (Put refuses such paths; this goes around it, as a bug
// would): the commit is refused whole before anything is applied, and the
// changes after it are stored.
func TestUnencodableEntryDoesNotBlock(t *testing.T) {
	a := newMemAccount(t, 4)
	dev := a.openDevice(t, t.TempDir(), testOptions(t, nil))
	ctx := context.Background()
	long := strings.Repeat("x", 70<<10)
	if err := dev.s.commit(ctx, []ns.Entry{{Path: "bad-company.txt", Size: 1}, {Path: long, Size: 1}}, nil); err == nil {
		t.Fatal("an entry of a 70 KiB path was committed")
	}
	if n := dev.s.log.pendingCount(); n != 0 {
		t.Fatalf("%d changes pending after a refused commit", n)
	}
	mustPut(t, dev, "ok.txt", []byte("after"))
	mustFlush(t, dev)
	other := a.openDevice(t, t.TempDir(), testOptions(t, nil))
	if got := listAll(t, other, ""); len(got) != 1 || got["ok.txt"] != 5 {
		t.Fatalf("another device lists %v", got)
	}
	// And Put refuses such a path for that one file, with the limit named.
	info := object.NewStaticObjectInfo("dir/"+strings.Repeat("n", ns.MaxName+1), time.Now(), 1, true, nil, dev)
	if _, err := dev.Put(ctx, strings.NewReader("x"), info); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("put of an over-long name: %v", err)
	}
}
