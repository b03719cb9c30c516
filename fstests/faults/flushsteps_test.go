package faults_test

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	pb "github.com/libp2p/go-libp2p-kad-dht/pb"

	"github.com/jellyfish-p2p/jellyfish/fstests/jftest"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/localnet"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/record"
)

// flushPoint is where in its flush a child is killed: when the n-th event
// of a kind reaches a provider, counted from the child's start.
type flushPoint struct {
	kind string // one of the point* kinds
	n    int
}

const (
	pointDataArrives = "pack shard arrives"     // a shard of file contents (the pack)
	pointMetaArrives = "metadata shard arrives" // of a checkpoint node or log batch
	pointMetaStored  = "metadata shard stored"
	pointHeadAt      = "new head reaches nodes" // n distinct nodes validated it (see flushKiller.waitHeld)
)

func (p flushPoint) String() string { return fmt.Sprintf("%s #%d", p.kind, p.n) }

// flushCounts are the events a child caused so far.
type flushCounts struct {
	dataArrived, dataStored, metaArrived, metaStored, headNodes int
}

func (c flushCounts) String() string {
	return fmt.Sprintf("pack shards %d arrived/%d stored, metadata shards %d arrived/%d stored, new head on %d nodes",
		c.dataArrived, c.dataStored, c.metaArrived, c.metaStored, c.headNodes)
}

// flushKiller kills the child it is armed for at a flushPoint. It tells
// the heads the child publishes from the ones that were there before: a
// head body is known once a node validated it while the killer was
// disarmed, or served it when the killer learnt what the nodes hold
// (learn, before each child starts).
type flushKiller struct {
	mu     sync.Mutex
	known  map[string]bool // head bodies seen while disarmed or learnt
	keys   map[string]bool // every head key a node validated
	c      *child          // nil: disarmed
	at     flushPoint
	counts flushCounts
	heads  map[int]bool    // nodes that validated a new head body
	bodies map[string]bool // the new head bodies
	killed bool
	when   flushCounts // the counts when the child was killed
}

func newFlushKiller(tp *tap) *flushKiller {
	k := &flushKiller{known: map[string]bool{}, keys: map[string]bool{}}
	tp.set(k.shard, k.headKey, k.head)
	return k
}

// arm makes the killer count the events of c from now on and kill it at p.
func (k *flushKiller) arm(c *child, p flushPoint) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.c, k.at, k.counts, k.killed = c, p, flushCounts{}, false
	k.heads, k.bodies = map[int]bool{}, map[string]bool{}
}

// disarm stops counting and reports whether the child was killed, and the
// counts at that moment.
func (k *flushKiller) disarm() (bool, flushCounts) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.c = nil
	return k.killed, k.when
}

func (k *flushKiller) shard(ev shardEvent) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.c == nil {
		return
	}
	var kind string
	var n *int
	switch {
	case ev.meta() && !ev.stored:
		kind, n = pointMetaArrives, &k.counts.metaArrived
	case ev.meta():
		kind, n = pointMetaStored, &k.counts.metaStored
	case !ev.stored:
		kind, n = pointDataArrives, &k.counts.dataArrived
	default:
		n = &k.counts.dataStored
	}
	*n++
	k.maybeKill(kind, *n)
}

func (k *flushKiller) headKey(_ int, key string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.keys[key] = true
}

func (k *flushKiller) head(node int, body []byte) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.c == nil {
		k.known[string(body)] = true
		return
	}
	if k.known[string(body)] {
		return
	}
	k.bodies[string(body)] = true
	if k.heads[node] {
		return
	}
	k.heads[node] = true
	k.counts.headNodes = len(k.heads)
	k.maybeKill(pointHeadAt, k.counts.headNodes)
}

func (k *flushKiller) maybeKill(kind string, n int) {
	if k.killed || kind != k.at.kind || n != k.at.n {
		return
	}
	killNow(k.c)
	k.killed, k.when = true, k.counts
}

// heldWait bounds learn and waitHeld.
const heldWait = 30 * time.Second

// learn makes every head body the nodes serve known. A head that a killed
// child left on the nodes, and that nobody put again, was validated only
// while the killer was armed; a node that is put a new head validates the
// one it holds too, and without learn the killer would take that old head
// for the next child's.
func (k *flushKiller) learn(t *testing.T, nw *jftest.Network) {
	t.Helper()
	k.mu.Lock()
	keys := slices.Sorted(maps.Keys(k.keys))
	k.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), heldWait)
	defer cancel()
	for _, i := range nw.Net.Live() {
		for _, key := range keys {
			body, err := servedHead(ctx, nw, i, key)
			if err != nil {
				t.Fatalf("ask node %d for a head: %v", i, err)
			}
			if body != nil {
				k.mu.Lock()
				k.known[string(body)] = true
				k.mu.Unlock()
			}
		}
	}
}

// waitHeld waits, once the killer is disarmed, until every node that
// validated a new head while it was armed serves one of them, and
// returns how many nodes it waited for. The head hook, where the child
// is killed, runs in the node's handler before the node stores the
// record: killed as the last node validates it, the child leaves every
// node about to store its head, and only once they all serve it may the
// test say that every node holds it. A node that validated a new head
// and still serves none after heldWait fails the test: nothing newer
// was put since, so it dropped a valid head it had accepted.
func (k *flushKiller) waitHeld(t *testing.T, nw *jftest.Network) int {
	t.Helper()
	k.mu.Lock()
	nodes := slices.Sorted(maps.Keys(k.heads))
	keys := slices.Sorted(maps.Keys(k.keys))
	bodies := maps.Clone(k.bodies)
	k.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), heldWait)
	defer cancel()
	for _, i := range nodes {
		serves := func() bool {
			for _, key := range keys {
				if body, err := servedHead(ctx, nw, i, key); err == nil && bodies[string(body)] {
					return true
				}
			}
			return false
		}
		if err := localnet.WaitFor(ctx, serves); err != nil {
			t.Fatalf("node %d validated a new head of the killed copy but serves none of them %v later: %v", i, heldWait, err)
		}
	}
	return len(nodes)
}

// servedHead returns the body of the head record node i serves at key,
// nil for none. It asks node i from another node, so i answers from its
// store.
func servedHead(ctx context.Context, nw *jftest.Network, i int, key string) ([]byte, error) {
	live := nw.Net.Live()
	from := live[0]
	if from == i {
		from = live[1]
	}
	pm, err := pb.NewProtocolMessenger(nw.Net.Node(from).DHT().MessageSender())
	if err != nil {
		return nil, err
	}
	rec, _, err := pm.GetValue(ctx, nw.Net.ID(i), key)
	if err != nil || rec == nil || !bytes.Equal(rec.GetKey(), []byte(key)) {
		return nil, err
	}
	r, err := record.Decode(rec.GetValue())
	if err != nil {
		return nil, err
	}
	return r.Body, nil
}

// flushSource writes a folder of tiny (inline) and small (packed) files:
// nothing of it reaches the network before the copy's flush, so every
// provider event of the copy is that flush's. It returns the folder and
// the files' hashes.
func flushSource(t *testing.T) (string, map[string]string) {
	src := t.TempDir()
	want := map[string]string{}
	for i := range 8 {
		data := randomBytes(t, 20+i*13)
		writeFile(t, src, fmt.Sprintf("tiny-%d.txt", i), data)
		want[fmt.Sprintf("tiny-%d.txt", i)] = blake3Hex(data)
	}
	for i := range 6 {
		data := randomBytes(t, 9000+i*9100)
		writeFile(t, src, fmt.Sprintf("small-%d.bin", i), data)
		want[fmt.Sprintf("small-%d.bin", i)] = blake3Hex(data)
	}
	return src, want
}

// TestKillAtEveryFlushStep kills a `jellyfish copy` with SIGKILL at every
// step of its flush, found by watching what the providers receive: when
// the pack of its small files starts to arrive; when the first metadata
// object (a checkpoint node, or the log batch) starts to arrive, the pack
// being stored; at each object boundary of the metadata that follows
// (checkpoint nodes stored in parallel, then the batch); once the batch
// is stored, before the head; when the new head reaches the first node;
// and when it has reached all nodes, before the child hears back and
// drops its journal. Each step is taken once with a checkpoint due
// (checkpoint_every 1 for the killed copy) and once without one.
//
// After each kill, another device must read the account's previous state
// intact (and whatever of the killed copy it sees, intact); the next copy
// of the same folder on the machine must succeed without copying again
// any file the killed one reported copied; and, at the next look, another
// device must read every file of every folder copied so far.
func TestKillAtEveryFlushStep(t *testing.T) {
	e, tp := newTappedEnv(t, 8, map[string]string{"checkpoint_every": "2"})
	killer := newFlushKiller(tp)
	live := len(e.net.Net.Live())
	// A namespace of several checkpoint nodes, so a checkpoint rewrites a
	// leaf or two and the root.
	base := t.TempDir()
	model := map[string]string{} // every file the account must hold
	for i := range 1000 {
		data := randomBytes(t, 60+i%60)
		name := fmt.Sprintf("f%d/n%04d.txt", i%8, i)
		writeFile(t, base, name, data)
		model["base/"+name] = blake3Hex(data)
	}
	if _, stderr, err := runWith(t, e.conf, "copy", base, remoteName+":base"); err != nil {
		t.Fatalf("copy of the base tree: %v\n%s", err, stderr)
	}
	readers := []string{t.TempDir(), t.TempDir()}
	reads := 0
	// read returns what another device reads of the whole account.
	read := func() map[string]string {
		t.Helper()
		dir := readers[reads%len(readers)]
		reads++
		out, stderr, err := runWith(t, e.conf, "--jellyfish-data-dir", dir, "hashsum", "blake3", "--download", remoteName+":")
		if err != nil {
			t.Fatalf("hashsum from another device: %v\n%s", err, stderr)
		}
		return parseHashsum(t, out)
	}

	trial := 0
	// try runs one trial and reports whether the copy reached point p.
	try := func(cpEvery string, p flushPoint) bool {
		t.Helper()
		trial++
		what := fmt.Sprintf("trial %d (checkpoint_every %s, kill at %v)", trial, cpEvery, p)
		src, want := flushSource(t)
		dest := fmt.Sprintf("k%02d", trial)
		killer.learn(t, e.net)
		c := startWith(t, e.conf, "-vv", "--jellyfish-checkpoint-every", cpEvery, "copy", src, remoteName+":"+dest)
		// Armed after the start: the child's first put comes long after.
		killer.arm(c, p)
		err := c.wait()
		killed, at := killer.disarm()
		if killed {
			// The read below must find on the nodes what they validated
			// before the kill; at.headNodes counts validations.
			start := time.Now()
			if n := killer.waitHeld(t, e.net); n > 0 {
				t.Logf("%s: all %d nodes that validated a new head serve it %v after the child ended", what, n, time.Since(start).Round(time.Millisecond))
			}
		}
		stderr := c.stderr.String()
		if !killed {
			if err != nil {
				t.Fatalf("%s: the copy failed: %v\n%s", what, err, stderr)
			}
			for name, h := range want {
				model[dest+"/"+name] = h
			}
			t.Logf("%s: the copy ended first: the flush has no such step", what)
			return false
		}
		copied := copiedFiles(stderr)
		var logged []string
		for _, l := range []string{"stored pack", "checkpoint of", "flushed"} {
			if strings.Contains(stderr, "jellyfish: "+l) {
				logged = append(logged, strconv.Quote(l))
			}
		}
		t.Logf("%s: killed with %d files reported copied; %v; logged: %s", what, len(copied), at, strings.Join(logged, ", "))

		// The previous state, from another device.
		got := read()
		for name, h := range model {
			if got[name] != h {
				t.Fatalf("%s: another device reads %s with hash %q, want %q", what, name, got[name], h)
			}
		}
		seen := 0
		for name, h := range got {
			rest, ok := strings.CutPrefix(name, dest+"/")
			switch {
			case ok && want[rest] != h:
				t.Fatalf("%s: another device reads %s of the killed copy with hash %q, want %q", what, name, h, want[rest])
			case ok:
				seen++
			case model[name] == "":
				t.Fatalf("%s: another device reads %s, which nobody wrote", what, name)
			}
		}
		// Until a node holds the new head nobody can see the copy; once
		// every node holds it, everybody must.
		if at.headNodes == 0 && seen > 0 {
			t.Fatalf("%s: another device sees %d files of a copy whose head was never stored", what, seen)
		}
		if at.headNodes == live && seen != len(want) {
			t.Fatalf("%s: every node holds the new head, but another device sees %d of the copy's %d files", what, seen, len(want))
		}

		// The next run on the machine completes, and finds what the
		// killed one reported copied already there.
		_, stderr, err = runWith(t, e.conf, "-v", "copy", src, remoteName+":"+dest)
		if err != nil {
			t.Fatalf("%s: the next copy: %v\n%s", what, err, stderr)
		}
		recovered := "none"
		if m := recoveredRE.FindStringSubmatch(stderr); m != nil {
			recovered = m[1]
		}
		t.Logf("%s: another device saw %d of its files; the next copy stored %s recovered changes", what, seen, recovered)
		again := map[string]bool{}
		for _, name := range copiedFiles(stderr) {
			again[name] = true
		}
		for _, name := range copied {
			if again[name] {
				t.Errorf("%s: %s was reported copied before the kill, but the next copy had to copy it again", what, name)
			}
		}
		for name, h := range want {
			model[dest+"/"+name] = h
		}
		return true
	}

	steps := 0
	for _, cpEvery := range []string{"1", "1000"} {
		steps += countTrue(try(cpEvery, flushPoint{pointDataArrives, 1}))
		// Metadata objects are 8 shards each: kill as the (j+1)-th
		// object's first shard arrives and once j+1 objects' worth of
		// shards are stored, until the flush has no more.
		for j := 0; ; j++ {
			if !try(cpEvery, flushPoint{pointMetaArrives, 8*j + 1}) {
				break
			}
			steps++
			steps += countTrue(try(cpEvery, flushPoint{pointMetaStored, 8 * (j + 1)}))
		}
		steps += countTrue(try(cpEvery, flushPoint{pointHeadAt, 1}))
		steps += countTrue(try(cpEvery, flushPoint{pointHeadAt, live}))
	}
	if steps < 12 {
		t.Errorf("only %d kills landed inside a flush", steps)
	}

	got := read()
	var missing []string
	for name, h := range model {
		if got[name] != h {
			missing = append(missing, fmt.Sprintf("%s (hash %q, want %q)", name, got[name], h))
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Fatalf("after %d trials another device reads %d files wrong:\n%s", trial, len(missing), strings.Join(missing, "\n"))
	}
	if len(got) != len(model) {
		t.Fatalf("after %d trials another device reads %d files, want %d", trial, len(got), len(model))
	}
	userDir := filepath.Join(configValue(t, e.conf, "data_dir"), e.acct.User)
	journals, _ := filepath.Glob(filepath.Join(userDir, "slot-*", "journal"))
	for _, j := range journals {
		if n, _ := dirSize(j); n != 0 {
			t.Errorf("%s still holds %d bytes after the last copy", j, n)
		}
	}
	t.Logf("%d trials, %d kills inside a flush, %d files read back", trial, steps, len(got))
}

// recoveredRE matches the backend's report of changes it took from its
// slot's journal at start.
var recoveredRE = regexp.MustCompile(`jellyfish: (\d+) changes an earlier process of this device left unstored are stored now`)

func countTrue(b bool) int {
	if b {
		return 1
	}
	return 0
}
