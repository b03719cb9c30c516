package jellyfish

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish/journal"
)

// openUnflushed opens the account in slot (locking it) as a process whose
// changes are never flushed: the timer that would flush them is off, and
// the test ends the session with crash, not close.
func (a *memAccount) openUnflushed(t testing.TB, dataDir, slot string, opt *Options) *Fs {
	t.Helper()
	opt.DataDir = dataDir
	dir := filepath.Join(dataDir, string(a.user), slot)
	unlock := lockDir(t, dir)
	f := a.openSlot(t, dir, unlock, opt)
	f.s.log.mu.Lock()
	f.s.log.schedule = func(time.Duration) {}
	f.s.log.mu.Unlock()
	return f
}

// lockDir creates and locks the slot dir.
func lockDir(t testing.TB, dir string) func() {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	unlock, ok := tryLockSlot(dir)
	if !ok {
		t.Fatalf("slot %s is locked", dir)
	}
	return unlock
}

// crash ends a session as a killed process would: its journal is closed
// as the kernel would close it and its slot unlocked, nothing is flushed.
func crash(t testing.TB, f *Fs) {
	t.Helper()
	s := f.s
	s.bgCancel()
	s.bg.Wait()
	s.log.mu.Lock()
	s.log.closed = true
	s.log.mu.Unlock()
	if err := s.journal.Close(); err != nil {
		t.Fatal(err)
	}
	s.unlock()
}

// snapshotJournal returns the segment files of the journal in dir.
func snapshotJournal(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(n)] = b
	}
	if len(out) == 0 {
		t.Fatalf("no journal in %s", dir)
	}
	return out
}

// restoreJournal puts back the segment files of snap the journal in dir
// dropped: the state a process leaves that stored its changes and was
// killed before it dropped them from its journal.
func restoreJournal(t testing.TB, f *Fs, snap map[string][]byte) {
	t.Helper()
	dir := filepath.Join(f.s.slotDir, journalDir)
	restored := 0
	for n, b := range snap {
		p := filepath.Join(dir, n)
		if _, err := os.Stat(p); err == nil {
			continue
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		restored++
	}
	if restored == 0 {
		t.Fatal("the flush dropped no journal segment")
	}
	key, err := journalKey(f.s.acct.Root)
	if err != nil {
		t.Fatal(err)
	}
	_, recs, err := journal.Read(dir, key)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		for _, e := range r.Entries {
			if e.Path == "flushed-then-deleted.txt" && !e.Deleted {
				return
			}
		}
	}
	t.Fatal("the restored journal does not hold the stored change")
}

// writeFlushed stores a file through the journal and the network, and
// returns the journal as it was before the flush dropped the file.
func writeFlushed(t testing.TB, f *Fs) map[string][]byte {
	t.Helper()
	mustPut(t, f, "flushed-then-deleted.txt", []byte("stored before the crash"))
	snap := snapshotJournal(t, filepath.Join(f.s.slotDir, journalDir))
	mustFlush(t, f)
	return snap
}

// writeUnflushed commits an inline file, a packed one, a file of its own
// and a delete, and returns what a reader should see of them.
func writeUnflushed(t testing.TB, f *Fs) map[string]string {
	t.Helper()
	want := map[string]string{
		"docs/tiny.txt":   "tiny",
		"docs/packed.txt": strings.Repeat("packed ", 100),
		"docs/own.bin":    strings.Repeat("a file of its own ", 200),
	}
	for p, c := range want {
		mustPut(t, f, p, []byte(c))
	}
	mustRemove(t, f, "flushed-then-deleted.txt")
	if f.s.log.pendingCount() == 0 {
		t.Fatal("nothing pending")
	}
	return want
}

// TestJournalReplayedBySlot commits changes in a session that is never
// flushed and ends without closing: the next session of the same slot
// commits them again from the journal and stores them, once. A change the
// session stored but did not drop from its journal is not committed again.
func TestJournalReplayedBySlot(t *testing.T) {
	a := newMemAccount(t, 4)
	dataDir := t.TempDir()
	opt := func() *Options { return testOptions(t, map[string]string{"pack_max": "2000"}) }
	first := a.openUnflushed(t, dataDir, "slot-0", opt())
	snap := writeFlushed(t, first)
	want := writeUnflushed(t, first)
	crash(t, first)
	restoreJournal(t, first, snap)

	if got := contents(t, a.openDevice(t, t.TempDir(), opt())); len(got) != 1 {
		t.Fatalf("another device sees %q before the replay: the changes were stored", got)
	}
	second := a.openDevice(t, dataDir, opt())
	if second.s.device != first.s.device || second.s.slotDir != first.s.slotDir {
		t.Fatal("the second session took another slot")
	}
	if n := second.s.log.pendingCount(); n != 0 {
		t.Fatalf("%d replayed changes not flushed", n)
	}
	seq := second.s.log.own.seq
	if got := contents(t, a.openDevice(t, t.TempDir(), opt())); !equalContents(got, want) {
		t.Fatalf("after the replay another device sees %q, want %q", got, want)
	}
	if err := second.s.close(context.Background()); err != nil {
		t.Fatal(err)
	}

	// The journal was emptied by the flush: a third session of the slot
	// replays nothing.
	third := a.openUnflushed(t, dataDir, "slot-0", opt())
	defer crash(t, third)
	if third.s.log.own.seq != seq || third.s.log.pendingCount() != 0 {
		t.Fatalf("the third session of the slot is at batch %d with %d pending, the second left batch %d", third.s.log.own.seq, third.s.log.pendingCount(), seq)
	}
}

// TestJournalAdoptedByOtherSlot leaves unflushed changes in slot 1's
// journal; a session that takes slot 0 while slot 1 is free adopts them as
// its own changes, stores them and removes slot 1's journal. A change slot
// 1 stored but did not drop from its journal is not adopted.
func TestJournalAdoptedByOtherSlot(t *testing.T) {
	a := newMemAccount(t, 4)
	dataDir := t.TempDir()
	opt := func() *Options { return testOptions(t, map[string]string{"pack_max": "2000"}) }
	holder := a.openUnflushed(t, dataDir, "slot-0", opt()) // keeps slot 0 busy
	orphan := a.openUnflushed(t, dataDir, "slot-1", opt())
	snap := writeFlushed(t, orphan)
	want := writeUnflushed(t, orphan)
	crash(t, orphan)
	crash(t, holder)
	restoreJournal(t, orphan, snap)

	adopter := a.openDevice(t, dataDir, opt())
	if adopter.s.slotDir != holder.s.slotDir {
		t.Fatalf("the session took %s, want slot 0", adopter.s.slotDir)
	}
	if n := adopter.s.log.pendingCount(); n != 0 {
		t.Fatalf("%d adopted changes not flushed", n)
	}
	if n, err := journal.Size(filepath.Join(orphan.s.slotDir, journalDir)); err != nil || n != 0 {
		t.Fatalf("slot 1's journal holds %d bytes after adoption (%v)", n, err)
	}
	for p := range want {
		if d := stampOf(t, adopter, p).Device; d != adopter.s.device {
			t.Fatalf("%s is stamped by device %s, want the adopting device", p, d)
		}
	}
	if got := contents(t, a.openDevice(t, t.TempDir(), opt())); !equalContents(got, want) {
		t.Fatalf("after the adoption another device sees %q, want %q", got, want)
	}
}
