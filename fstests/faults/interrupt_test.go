package faults_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// syncedRE matches rclone's log lines for a file a sync wrote or deleted.
var syncedRE = regexp.MustCompile(`(?m)INFO  : (.+): (Copied \((?:new|replaced existing)\)|Deleted)$`)

// syncedFiles returns the files a sync's log says it copied and deleted.
func syncedFiles(stderr string) (copied, deleted map[string]bool) {
	copied, deleted = map[string]bool{}, map[string]bool{}
	for _, m := range syncedRE.FindAllStringSubmatch(stderr, -1) {
		if m[2] == "Deleted" {
			deleted[m[1]] = true
		} else {
			copied[m[1]] = true
		}
	}
	return copied, deleted
}

// notStoredMsg is what a process says when it exits with changes it could
// not store on the network.
const notStoredMsg = "changes are not stored on the network yet"

// journalHeader is the size of a journal segment's header ("JFjn",
// version, segment, device, key check: see package journal). A process
// that opened its journal and ended before closing it leaves an empty
// segment of just that; the next flush that stores changes removes it.
const journalHeader = 37

// journalRecords returns the bytes of records in the journal folder dir:
// changes acknowledged and not stored on the network yet.
func journalRecords(dir string) int64 {
	segs, _ := filepath.Glob(filepath.Join(dir, "*.jnl"))
	var n int64
	for _, s := range segs {
		if fi, err := os.Stat(s); err == nil && fi.Size() > journalHeader {
			n += fi.Size() - journalHeader
		}
	}
	return n
}

// envInt returns the integer in environment variable name, or def.
func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, s, err)
	}
	return n
}

// mixedTree is a local folder of tiny (inline), small (packed) and large
// (objects of their own) files that changes between syncs.
type mixedTree struct {
	t     *testing.T
	rng   *rand.Rand
	dir   string
	files map[string]string // name → BLAKE3
	large int
	next  int       // for new names
	mtime time.Time // every write gets a later one
}

// Size classes of mixedTree's files.
const (
	tinyMax    = 127     // inline: the backend keeps files up to 8 KiB in the log
	smallMin   = 9 << 10 // packed: over inline_max, up to pack_max
	smallMax   = 60 << 10
	largeMin   = 1<<20 + 1<<17 // objects of their own: over pack_max (1 MiB)
	largeMax   = 3 << 20
	largeLimit = 4 // large files in the tree at most
)

func newMixedTree(t *testing.T, rng *rand.Rand) *mixedTree {
	tr := &mixedTree{t: t, rng: rng, dir: t.TempDir(), files: map[string]string{}, mtime: time.Now().Add(-time.Hour)}
	for range 30 {
		tr.write(tr.newName(), 't')
	}
	for range 24 {
		tr.write(tr.newName(), 's')
	}
	for range 3 {
		tr.write(tr.newName(), 'l')
	}
	return tr
}

func (tr *mixedTree) newName() string {
	tr.next++
	return fmt.Sprintf("d%d/f%04d.bin", tr.rng.IntN(4), tr.next)
}

// write gives name new contents of size class c ('t', 's' or 'l') and
// returns their size.
func (tr *mixedTree) write(name string, c byte) int {
	var n int
	switch c {
	case 't':
		n = 1 + tr.rng.IntN(tinyMax)
	case 's':
		n = smallMin + tr.rng.IntN(smallMax-smallMin)
	default:
		n = largeMin + tr.rng.IntN(largeMax-largeMin)
	}
	data := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := tr.rng.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			data[i+j] = byte(v >> (8 * j))
		}
	}
	if _, ok := tr.files[name]; ok && tr.isLarge(name) {
		tr.large--
	}
	p := writeFile(tr.t, tr.dir, name, data)
	tr.mtime = tr.mtime.Add(time.Second)
	if err := os.Chtimes(p, tr.mtime, tr.mtime); err != nil {
		tr.t.Fatal(err)
	}
	tr.files[name] = blake3Hex(data)
	if c == 'l' {
		tr.large++
	}
	return n
}

func (tr *mixedTree) isLarge(name string) bool {
	fi, err := os.Stat(filepath.Join(tr.dir, name))
	return err == nil && fi.Size() >= largeMin
}

// class picks a size class: mostly tiny and small, now and then large.
func (tr *mixedTree) class() byte {
	switch r := tr.rng.IntN(20); {
	case r < 9:
		return 't'
	case r < 18 || tr.large >= largeLimit:
		return 's'
	default:
		return 'l'
	}
}

// mutate rewrites, adds and deletes a few files, and returns the bytes it
// wrote.
func (tr *mixedTree) mutate() int {
	names := tr.names()
	written := 0
	for range 1 + tr.rng.IntN(12) {
		written += tr.write(names[tr.rng.IntN(len(names))], tr.class())
	}
	for range 1 + tr.rng.IntN(8) {
		written += tr.write(tr.newName(), tr.class())
	}
	for range tr.rng.IntN(3) {
		names := tr.names()
		name := names[tr.rng.IntN(len(names))]
		if tr.isLarge(name) {
			tr.large--
		}
		if err := os.Remove(filepath.Join(tr.dir, name)); err != nil {
			tr.t.Fatal(err)
		}
		delete(tr.files, name)
	}
	return written
}

func (tr *mixedTree) names() []string {
	out := make([]string, 0, len(tr.files))
	for n := range tr.files {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// lockSlot holds the lock of a device slot, as a running process of the
// account would, until the returned function is called.
func lockSlot(t *testing.T, slot string) func() {
	t.Helper()
	if err := os.MkdirAll(slot, 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(slot, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		t.Fatalf("lock %s: %v", slot, err)
	}
	return func() { f.Close() }
}

// exitStatus describes how a child ended.
func exitStatus(err error) string {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return "exit 0"
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		return fmt.Sprintf("exit %d", ee.ExitCode())
	case errors.As(err, &ee):
		return ee.String()
	}
	return err.Error()
}

// syncBwLimit slows the interrupted syncs' reading a little, so a run
// lasts long enough for flushes during it (a second after its first
// change) as well as at its end.
const (
	syncBwLimit     = "4M"
	syncBytesPerSec = 4 << 20
)

// TestRandomInterruptions runs `jellyfish sync` of a changing tree of
// tiny, small and large files into one folder of one account, again and
// again, and ends each run at a uniformly random moment (now and then just
// as its final flush starts) with SIGINT, SIGTERM or SIGKILL; some runs
// happen in the machine's second device slot, the first being held, and
// for some SIGINTs and SIGTERMs the providers refuse every put from the
// signal on, so the run's last flush fails. After each, the next command
// on the machine (lsf) must succeed and leave no journal records behind,
// and another device must read back, byte for byte, every file the
// interrupted run logged as copied, find gone every file it logged as
// deleted, and find every other file as it was before the run or as the
// source has it now. A run ended by SIGINT or SIGTERM that left changes
// unstored must say so on stderr and exit non-zero.
//
// Every run syncs into the same folder: each then starts from what the
// interrupted one before it left (a journal replayed over files it
// overwrites or deletes again, a pack half stored), which a fresh folder
// per run would never show.
//
// JELLYFISH_INTERRUPTS sets the number of runs (default 16; `make
// test-interrupts` runs 200) and JELLYFISH_INTERRUPT_SEED the seed, which
// the test prints so a run can be repeated (timing aside).
func TestRandomInterruptions(t *testing.T) {
	runs := envInt(t, "JELLYFISH_INTERRUPTS", 16)
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("JELLYFISH_INTERRUPT_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("JELLYFISH_INTERRUPT_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("seed %d (JELLYFISH_INTERRUPT_SEED=%d repeats the choices), %d runs", seed, seed, runs)
	rng := rand.New(rand.NewPCG(seed, 0x6a656c6c79))

	// checkpoint_every 4: checkpoints come often enough that runs end
	// during them too.
	e, tp := newTappedEnv(t, 8, map[string]string{"checkpoint_every": "4"})
	userDir := filepath.Join(configValue(t, e.conf, "data_dir"), e.acct.User)
	tree := newMixedTree(t, rng)
	const dest = remoteName + ":tree"
	start := time.Now()
	if _, stderr, err := runWith(t, e.conf, "-v", "--bwlimit", syncBwLimit, "sync", tree.dir, dest); err != nil {
		t.Fatalf("first sync: %v\n%s", err, stderr)
	}
	// A run takes about as long as a sync with nothing to do, plus its
	// bytes at the bandwidth limit.
	idleStart := time.Now()
	if _, stderr, err := runWith(t, e.conf, "-v", "--bwlimit", syncBwLimit, "sync", tree.dir, dest); err != nil {
		t.Fatalf("idle sync: %v\n%s", err, stderr)
	}
	idle := time.Since(idleStart)
	t.Logf("a sync with nothing to do takes %v", idle.Round(time.Millisecond))
	// Readers are other devices. A fresh data dir for every read would
	// pass the account's limit of 32 devices, so a few take turns; each
	// is fresh at its first read.
	readers := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	read := func(i int) map[string]string {
		t.Helper()
		out, stderr, err := runWith(t, e.conf, "--jellyfish-data-dir", readers[i%len(readers)], "hashsum", "blake3", "--download", dest)
		if err != nil {
			t.Fatalf("run %d: hashsum from another device: %v\n%s", i, err, stderr)
		}
		return parseHashsum(t, out)
	}
	remote := read(0) // what the account holds, as another device reads it
	if len(remote) != len(tree.files) {
		t.Fatalf("after the first sync another device reads %d files, want %d", len(remote), len(tree.files))
	}

	signals := []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGKILL}
	type tally struct{ interrupted, finished int }
	bySignal := map[syscall.Signal]*tally{}
	for _, s := range signals {
		bySignal[s] = &tally{}
	}
	var recovered, adopted, saidNotStored, inFinal int
	for i := 1; i <= runs; i++ {
		est := idle + time.Duration(float64(tree.mutate())/syncBytesPerSec*float64(time.Second))
		sig := signals[rng.IntN(len(signals))]
		otherSlot := rng.IntN(4) == 0
		atFinal := rng.IntN(6) == 0
		// Now and then the providers refuse every put from the signal on,
		// so the final flush of a SIGINT or SIGTERM fails.
		refuse := sig != syscall.SIGKILL && rng.IntN(4) == 0
		delay := time.Duration(rng.Float64() * 1.25 * float64(est))
		if atFinal {
			delay = time.Duration(rng.IntN(300)) * time.Millisecond
		}
		slot := filepath.Join(userDir, "slot-0")
		var unlock func()
		if otherSlot {
			unlock = lockSlot(t, slot)
			slot = filepath.Join(userDir, "slot-1")
		}
		c := startWith(t, e.conf, "-v", "--bwlimit", syncBwLimit, "sync", tree.dir, dest)
		if atFinal {
			// rclone prints its final stats when the sync is done, just
			// before the final flush.
			waitFor(t, childTimeout, "the sync's final stats", func() bool {
				return strings.Contains(c.stderr.String(), "Elapsed time:") || c.exited()
			})
		}
		timer := time.NewTimer(delay)
		select {
		case <-timer.C:
		case <-c.done:
			timer.Stop()
		}
		exitedFirst := c.exited()
		if refuse {
			tp.refuse.Store(true)
		}
		_ = c.cmd.Process.Signal(sig)
		err := c.wait()
		tp.refuse.Store(false)
		if exitedFirst && err != nil {
			t.Fatalf("run %d: the sync failed before the signal: %v\n%s", i, err, c.stderr.String())
		}
		// A run that ended just after the check, or whose signal came
		// during its final flush, may still exit 0: it had ended.
		interrupted := err != nil
		took := time.Since(c.start)
		stderr := c.stderr.String()
		if unlock != nil {
			unlock()
		}
		if interrupted {
			bySignal[sig].interrupted++
		} else {
			bySignal[sig].finished++
		}
		if atFinal && interrupted {
			inFinal++
		}
		copied, deleted := syncedFiles(stderr)
		left := journalRecords(filepath.Join(slot, "journal"))
		when := fmt.Sprintf("after %v", delay.Round(time.Millisecond))
		if atFinal {
			when = fmt.Sprintf("%v after its final stats", delay.Round(time.Millisecond))
		}
		if refuse {
			when += ", the providers refusing puts"
		}
		t.Logf("run %d: %v %s (%s), %v; %s; %d copied, %d deleted; journal of %s: %d bytes of records",
			i, sig, when, map[bool]string{true: "interrupted", false: "had ended"}[interrupted],
			took.Round(time.Millisecond), exitStatus(err), len(copied), len(deleted), filepath.Base(slot), left)

		said := strings.Contains(stderr, notStoredMsg)
		if said {
			saidNotStored++
			if err == nil {
				t.Errorf("run %d: the sync said changes are not stored, yet exited 0:\n%s", i, stderr)
			}
		}
		switch {
		case err == nil && left > 0:
			t.Errorf("run %d: the sync exited 0 but left %d bytes in its journal", i, left)
		case interrupted && sig != syscall.SIGKILL && left > 0 && !said:
			t.Errorf("run %d: ended by %v with %d bytes of unstored changes in its journal, but did not say so:\n%s", i, sig, left, stderr)
		}

		// The next command on the machine stores what the run left.
		_, next, err := runWith(t, e.conf, "-v", "lsf", "-R", dest)
		if err != nil {
			t.Fatalf("run %d: the next command: %v\n%s", i, err, next)
		}
		if strings.Contains(next, "left unstored by an earlier process in") {
			adopted++
		}
		if recoveredRE.MatchString(next) || strings.Contains(next, "left unstored by an earlier process in") {
			recovered++
		}
		journals, _ := filepath.Glob(filepath.Join(userDir, "slot-*", "journal"))
		for _, j := range journals {
			if n := journalRecords(j); n != 0 {
				t.Errorf("run %d: after the next command %s still holds %d bytes of records", i, j, n)
			}
		}

		got := read(i)
		paths := map[string]bool{}
		for _, m := range []map[string]string{remote, tree.files, got} {
			for p := range m {
				paths[p] = true
			}
		}
		var bad []string
		for p := range paths {
			have, ok := got[p]
			prev, inPrev := remote[p]
			now, inSrc := tree.files[p]
			var fine bool
			var want string
			switch {
			case copied[p]:
				fine, want = ok && have == now, "the copied contents"
			case deleted[p]:
				fine, want = !ok, "gone"
			default:
				fine = (ok && inPrev && have == prev) || (!ok && !inPrev) ||
					(ok && inSrc && have == now) || (!ok && !inSrc)
				want = "as before the run or as in the source"
			}
			if !fine {
				state := "absent"
				if ok {
					state = "hash " + have
				}
				bad = append(bad, fmt.Sprintf("%s: %s, want %s (before: %q, source: %q)", p, state, want, prev, now))
			}
		}
		if len(bad) > 0 {
			sort.Strings(bad)
			t.Fatalf("run %d (seed %d): another device reads %d files wrong:\n%s\nthe run's log:\n%s\nthe next command's log:\n%s",
				i, seed, len(bad), strings.Join(bad, "\n"), stderr, next)
		}
		remote = got
	}
	var parts []string
	for _, s := range signals {
		parts = append(parts, fmt.Sprintf("%v: %d interrupted, %d had ended", s, bySignal[s].interrupted, bySignal[s].finished))
	}
	t.Logf("seed %d: %d runs in %v; %s; %d interrupted just after their final stats; %d next commands stored changes left behind (%d from the other slot); %d runs said changes were not stored",
		seed, runs, time.Since(start).Round(time.Second), strings.Join(parts, "; "), inFinal, recovered, adopted, saidNotStored)
}
