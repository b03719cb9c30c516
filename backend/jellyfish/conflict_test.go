package jellyfish

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish/ns"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
)

// mustPoll applies what other devices flushed.
func mustPoll(t testing.TB, f *Fs) []string {
	t.Helper()
	changed, err := f.s.poll(context.Background())
	if err != nil {
		t.Fatalf("poll: %v", err)
	}
	return changed
}

// converge flushes and polls the devices until none has anything pending
// or anything new to read.
func converge(t testing.TB, devs ...*Fs) {
	t.Helper()
	for range 6 {
		quiet := true
		for _, f := range devs {
			if f.s.log.pendingCount() > 0 {
				quiet = false
			}
			mustFlush(t, f)
		}
		for _, f := range devs {
			if len(mustPoll(t, f)) > 0 {
				quiet = false
			}
		}
		if quiet {
			return
		}
	}
	t.Fatal("the devices did not settle in 6 rounds of flushes and polls")
}

// contents returns every file under the root with its bytes.
func contents(t testing.TB, f *Fs) map[string]string {
	t.Helper()
	out := map[string]string{}
	for p := range listAll(t, f, "") {
		out[p] = string(mustRead(t, f, p))
	}
	return out
}

// stampOf returns the stamp of the entry f shows at remote.
func stampOf(t testing.TB, f *Fs, remote string) ns.Stamp {
	t.Helper()
	e, err := f.s.log.view().Get(context.Background(), f.full(remote))
	if err != nil || e == nil {
		t.Fatalf("entry %s: %v %v", remote, e, err)
	}
	return e.Stamp
}

func equalContents(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// agree checks that every device shows exactly want and has no conflict
// left at its paths.
func agree(t testing.TB, want map[string]string, devs ...*Fs) {
	t.Helper()
	for i, f := range devs {
		got := contents(t, f)
		if !equalContents(got, want) {
			t.Fatalf("device %d shows %q, want %q", i, got, want)
		}
		v := f.s.log.view()
		var paths []string
		for p := range got {
			paths = append(paths, p)
		}
		for _, l := range v.Layers {
			paths = append(paths, l.TouchedUnder("")...)
		}
		cs, err := v.Conflicts(context.Background(), paths)
		if err != nil || len(cs) > 0 {
			t.Fatalf("device %d has conflicts left: %+v %v", i, cs, err)
		}
	}
}

// TestConcurrentWritesConverge writes one path on two devices that have
// not seen each other's change: after polling both show the later write
// at the path and the other as a conflict copy, and so does a third
// device.
func TestConcurrentWritesConverge(t *testing.T) {
	a := newMemAccount(t, 4)
	devA := a.openDevice(t, t.TempDir(), testOptions(t, nil))
	devB := a.openDevice(t, t.TempDir(), testOptions(t, nil))
	fromA := "from A"                             // inline
	fromB := "from B " + strings.Repeat("b", 300) // packed
	mustPut(t, devA, "notes/todo.txt", []byte(fromA))
	mustPut(t, devB, "notes/todo.txt", []byte(fromB))
	sa, sb := stampOf(t, devA, "notes/todo.txt"), stampOf(t, devB, "notes/todo.txt")
	mustFlush(t, devA)
	mustFlush(t, devB)
	converge(t, devA, devB)

	win, lose, loser := fromB, fromA, sa
	if sb.Less(sa) {
		win, lose, loser = fromA, fromB, sb
	}
	want := map[string]string{"notes/todo.txt": win, ns.ConflictName("notes/todo.txt", loser): lose}
	devC := a.openDevice(t, t.TempDir(), testOptions(t, nil))
	agree(t, want, devA, devB, devC)
}

// TestConflictAcrossCheckpoint splits a conflict between a checkpoint and
// the log after it: device A's write is in A's checkpoint, device B's
// concurrent write in B's log, stamped later or earlier. A device loading
// A's checkpoint finds the conflict, every device converges, and a device
// loading afterwards agrees.
func TestConflictAcrossCheckpoint(t *testing.T) {
	for _, logLater := range []bool{true, false} {
		t.Run(fmt.Sprintf("log write later %v", logLater), func(t *testing.T) {
			a := newMemAccount(t, 4)
			optA := testOptions(t, map[string]string{"checkpoint_every": "1"})
			devA := a.openDevice(t, t.TempDir(), optA)
			devB := a.openDevice(t, t.TempDir(), testOptions(t, nil))
			if !logLater {
				mustPut(t, devB, "plan.txt", []byte("plan of B"))
				time.Sleep(3 * time.Millisecond) // A's write is stamped later
			}
			mustPut(t, devA, "x.txt", []byte("x"))
			mustFlush(t, devA) // A1
			mustPut(t, devA, "plan.txt", []byte("plan of A"))
			mustFlush(t, devA) // checkpoint of A1, A2
			mustPut(t, devA, "y.txt", []byte("y"))
			mustFlush(t, devA) // checkpoint of A1-A2 (with plan.txt), A3
			if cp := devA.s.log.own.cp; cp == nil || cp.Seq != 2 {
				t.Fatalf("A's checkpoint %+v, want one covering its batch 2", cp)
			}
			if logLater {
				mustPut(t, devB, "plan.txt", []byte("plan of B"))
			}
			mustFlush(t, devB) // B1, without having seen A's log
			sa, sb := stampOf(t, devA, "plan.txt"), stampOf(t, devB, "plan.txt")
			if sa.Less(sb) != logLater {
				t.Fatalf("A's write stamped %d, B's %d", sa.HLC, sb.HLC)
			}

			devC := a.openDevice(t, t.TempDir(), testOptions(t, nil))
			ctx := context.Background()
			if _, ok, err := devC.s.log.base.Get(ctx, ns.EntryKey("plan.txt")); !ok || err != nil {
				t.Fatalf("device C did not load plan.txt from A's checkpoint: %v", err)
			}
			if hs, _, _ := devC.s.log.logL.State("plan.txt"); len(hs) != 1 || hs[0].Stamp.Device != devB.s.device {
				t.Fatalf("device C's log layer holds %+v at plan.txt, want B's write", hs)
			}
			converge(t, devA, devB, devC)

			win, lose, loser := "plan of B", "plan of A", sa
			if !logLater {
				win, lose, loser = "plan of A", "plan of B", sb
			}
			want := map[string]string{"x.txt": "x", "y.txt": "y", "plan.txt": win, ns.ConflictName("plan.txt", loser): lose}
			devD := a.openDevice(t, t.TempDir(), testOptions(t, nil))
			if devD.s.log.baseCP == nil {
				t.Fatal("device D loaded without a checkpoint")
			}
			agree(t, want, devA, devB, devC, devD)
		})
	}
}

// TestDeleteRacingEdit deletes a file on one device while another edits
// it: an edit stamped later stays at the path; an edit stamped earlier
// than the delete is kept as a conflict copy. Every device agrees.
func TestDeleteRacingEdit(t *testing.T) {
	for _, editLater := range []bool{true, false} {
		t.Run(fmt.Sprintf("edit later %v", editLater), func(t *testing.T) {
			a := newMemAccount(t, 4)
			devA := a.openDevice(t, t.TempDir(), testOptions(t, nil))
			devB := a.openDevice(t, t.TempDir(), testOptions(t, nil))
			mustPut(t, devA, "shared/doc.txt", []byte("first version"))
			converge(t, devA, devB)
			del := func() { mustRemove(t, devA, "shared/doc.txt") }
			edit := func() { mustPut(t, devB, "shared/doc.txt", []byte("edited on B")) }
			first, second := del, edit
			if !editLater {
				first, second = edit, del
			}
			first()
			time.Sleep(3 * time.Millisecond) // a later wall-clock millisecond
			second()
			e, err := devA.s.log.view().Heads(context.Background(), "shared/doc.txt")
			if err != nil || len(e) != 1 || !e[0].Deleted {
				t.Fatalf("A's heads %+v %v, want its tombstone", e, err)
			}
			deleted := e[0].Stamp
			edited := stampOf(t, devB, "shared/doc.txt")
			if edited.Less(deleted) == editLater {
				t.Fatalf("edit stamped %d, delete %d", edited.HLC, deleted.HLC)
			}
			converge(t, devA, devB)
			want := map[string]string{"shared/doc.txt": "edited on B"}
			if !editLater {
				want = map[string]string{ns.ConflictName("shared/doc.txt", edited): "edited on B"}
			}
			devC := a.openDevice(t, t.TempDir(), testOptions(t, nil))
			agree(t, want, devA, devB, devC)
		})
	}
}

// TestSupersededStampsOutliveCheckpoint makes device A checkpoint having
// seen only part of device B's log: X saw B's write s at g.txt and
// replaced it twice (E supersedes s, F supersedes E), and A read X's log
// while B's head still looked older to it (a stale head record, as a DHT
// can serve). A's checkpoint shows F alone; a device loading it then
// applies B's batch with s, which must not come back as a head: the
// checkpoint keeps s among F's bases because it does not cover s.
func TestSupersededStampsOutliveCheckpoint(t *testing.T) {
	a := newMemAccount(t, 4)
	ctx := context.Background()
	devA := a.openDevice(t, t.TempDir(), testOptions(t, map[string]string{"checkpoint_every": "1"}))
	devB := a.openDevice(t, t.TempDir(), testOptions(t, nil))
	devX := a.openDevice(t, t.TempDir(), testOptions(t, nil))
	mustPut(t, devA, "a.txt", []byte("a"))
	mustFlush(t, devA) // A1
	mustPut(t, devB, "b.txt", []byte("b"))
	mustFlush(t, devB) // B1
	mustPoll(t, devA)
	headB := account.HeadKey(devB.s.acct.ID(), account.DeviceID(devB.s.device))
	staleB := a.net.RecordsSnapshot()[headB]

	mustPut(t, devB, "g.txt", []byte("s"))
	mustFlush(t, devB) // B2: s
	s := stampOf(t, devB, "g.txt")
	mustPoll(t, devX)
	mustPut(t, devX, "g.txt", []byte("E"))
	mustFlush(t, devX) // X1: E, bases s
	mustPut(t, devX, "g.txt", []byte("F"))
	mustFlush(t, devX) // X2: F, bases E
	freshB := a.net.RecordsSnapshot()[headB]
	if err := a.net.Records().Put(ctx, headB, staleB); err != nil {
		t.Fatal(err)
	}
	mustPoll(t, devA)
	if c := devA.s.log.applied[devB.s.device]; c.Seq != 1 {
		t.Fatalf("A applied B's log up to batch %d, want 1", c.Seq)
	}
	mustPut(t, devA, "a2.txt", []byte("a2"))
	mustFlush(t, devA) // checkpoint covering B1, X2; then A2
	cp := devA.s.log.own.cp
	if cp == nil || cp.Covers[devB.s.device].Seq != 1 || cp.Covers[devX.s.device].Seq != 2 {
		t.Fatalf("A's checkpoint %+v, want one covering B1 and X2", cp)
	}
	if err := a.net.Records().Put(ctx, headB, freshB); err != nil {
		t.Fatal(err)
	}

	devC := a.openDevice(t, t.TempDir(), testOptions(t, nil))
	if devC.s.log.baseCP == nil || string(devC.s.log.baseCP.Root) != string(cp.Root) {
		t.Fatal("device C did not load A's checkpoint")
	}
	if hs, _, _ := devC.s.log.logL.State("g.txt"); len(hs) != 1 || hs[0].Stamp != s {
		t.Fatalf("device C's log layer holds %+v at g.txt, want B's s", hs)
	}
	// s coming back would show as a conflict, which C would have resolved
	// at once with a copy of s.
	hs, err := devC.s.log.view().Heads(ctx, "g.txt")
	if err != nil || len(hs) != 1 || string(hs[0].Inline) != "F" || devC.s.log.pendingCount() != 0 {
		t.Fatalf("device C sees heads %+v at g.txt (%v) and has %d changes pending, want F alone and nothing to resolve", hs, err, devC.s.log.pendingCount())
	}
	want := map[string]string{"a.txt": "a", "a2.txt": "a2", "b.txt": "b", "g.txt": "F"}
	agree(t, want, devC)
	converge(t, devA, devB, devX, devC)
	agree(t, want, devA, devB, devX, devC)
}

// TestConflictKeptByWinningDevice writes one path on two devices; the
// device whose write loses flushes and never polls (a command that ended).
// The winning device, polling, finds two heads at the path and must keep
// the losing version as a conflict copy: otherwise its next write there
// supersedes both heads and the other device's version is gone without a
// trace.
func TestConflictKeptByWinningDevice(t *testing.T) {
	a := newMemAccount(t, 4)
	devA := a.openDevice(t, t.TempDir(), testOptions(t, nil))
	devB := a.openDevice(t, t.TempDir(), testOptions(t, nil))
	mustPut(t, devA, "todo.txt", []byte("from A"))
	time.Sleep(3 * time.Millisecond) // B's write is stamped later
	mustPut(t, devB, "todo.txt", []byte("from B"))
	sa, sb := stampOf(t, devA, "todo.txt"), stampOf(t, devB, "todo.txt")
	if !sa.Less(sb) {
		t.Fatalf("A's write stamped %d, B's %d", sa.HLC, sb.HLC)
	}
	mustFlush(t, devA)
	mustFlush(t, devB)
	mustPoll(t, devB)
	mustFlush(t, devB)
	copyName := ns.ConflictName("todo.txt", sa)
	want := map[string]string{"todo.txt": "from B", copyName: "from A"}
	if got := contents(t, devB); !equalContents(got, want) {
		t.Errorf("the winning device shows %q after polling, want %q", got, want)
	}
	mustPut(t, devB, "todo.txt", []byte("edited on B"))
	mustFlush(t, devB)
	devC := a.openDevice(t, t.TempDir(), testOptions(t, nil))
	want = map[string]string{"todo.txt": "edited on B", copyName: "from A"}
	if got := contents(t, devC); !equalContents(got, want) {
		t.Fatalf("a new device shows %q, want %q: A's version was lost", got, want)
	}
}
