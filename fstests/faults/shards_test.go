package faults_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rclone/rclone/fs"
	"github.com/rclone/rclone/fs/operations"

	"github.com/jellyfish-p2p/jellyfish/codec"
)

// segmentShards groups the shard files of the one 4+4 object on the
// network by segment, checking that every segment has its 8 shards on 8
// distinct nodes.
func segmentShards(t *testing.T, e *env, segments int) [][]shardFile {
	t.Helper()
	bySeg := make([][]shardFile, segments)
	for _, s := range e.shardFiles(4, 4) {
		if int(s.header.Segment) >= segments {
			t.Fatalf("shard of segment %d, want %d segments", s.header.Segment, segments)
		}
		bySeg[s.header.Segment] = append(bySeg[s.header.Segment], s)
	}
	for seg, shards := range bySeg {
		nodes := map[int]bool{}
		for _, s := range shards {
			nodes[s.node] = true
		}
		if len(shards) != 8 || len(nodes) != 8 {
			t.Fatalf("segment %d: %d shards on %d nodes, want 8 on 8", seg, len(shards), len(nodes))
		}
		sort.Slice(shards, func(i, j int) bool { return shards[i].header.Index < shards[j].header.Index })
	}
	return bySeg
}

// readAll reads o in this process.
func readAll(ctx context.Context, o fs.Object) ([]byte, error) {
	rc, err := o.Open(ctx)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// TestLostAndCorruptShards uploads a file in this process, then takes
// shards away: m whole nodes killed; then nodes killed and shard files
// corrupted on the holders' disks, m shards of every segment in all. The
// file must read back byte for byte, in this process and in a new one.
// With one bad shard more, reading must fail soon, with the codec's
// count of good shards against the k it needs.
func TestLostAndCorruptShards(t *testing.T) {
	const segments = 4
	// Every shard receipted: m shards taken away must leave k that the
	// reference names (an upload may succeed with 6 of 8).
	e := newEnv(t, 8, map[string]string{"segment_size": "1M", "success_shards": "8"})
	ctx := context.Background()
	f := e.newFs(ctx)
	data := randomBytes(t, (segments-1)<<20+4321)
	o, err := operations.Rcat(ctx, f, "victim.bin", io.NopCloser(bytes.NewReader(data)), time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Features().Shutdown(ctx); err != nil { // flush, for the child processes
		t.Fatal(err)
	}
	bySeg := segmentShards(t, e, segments)
	mustRead := func(what string, inProcess bool) {
		t.Helper()
		if inProcess {
			got, err := readAll(ctx, o)
			if err != nil {
				t.Fatalf("%s: read in this process: %v", what, err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("%s: read %d bytes in this process that differ from the %d written", what, len(got), len(data))
			}
		}
		out, stderr, err := e.run("cat", remoteName+":victim.bin")
		if err != nil {
			t.Fatalf("%s: cat in a new process: %v\n%s", what, err, stderr)
		}
		if !bytes.Equal(out, data) {
			t.Fatalf("%s: a new process read %d bytes that differ from the %d written", what, len(out), len(data))
		}
	}
	mustRead("all shards in place", true)

	// m = 4 nodes down, none of them a bootstrap peer of the config.
	for _, i := range []int{3, 4, 5, 6} {
		if err := e.net.Net.Kill(i); err != nil {
			t.Fatal(err)
		}
	}
	// Only a new process reads now: a failed dial to a killed node would
	// put it in this process's libp2p dial backoff, and two of the nodes
	// come back below.
	mustRead("4 nodes killed", false)

	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for _, i := range []int{3, 4} {
		if err := e.net.Net.Restart(rctx, i); err != nil {
			t.Fatal(err)
		}
	}
	// Nodes 5 and 6 stay down; on the live nodes, two more shards of every
	// segment go bad, a different pair in each segment, data shards
	// included, so every segment keeps exactly k = 4 good shards.
	live := func(s shardFile) bool { return e.net.Net.Node(s.node) != nil }
	var spare [][]shardFile // per segment, the good shards left on live nodes
	for seg, shards := range bySeg {
		var ok []shardFile
		for _, s := range shards {
			if live(s) {
				ok = append(ok, s)
			}
		}
		if len(ok) != 6 {
			t.Fatalf("segment %d: %d shards on live nodes, want 6", seg, len(ok))
		}
		for n := 0; n < 2; n++ {
			victim := (seg + n) % len(ok)
			corrupt(t, ok[victim].path)
		}
		ok = append(ok[:seg%len(ok)], ok[seg%len(ok)+2:]...)
		spare = append(spare, ok)
	}
	mustRead("2 nodes killed and 2 shards of every segment corrupted", true)

	// One more bad shard in every segment: 3 good, 4 needed.
	for _, ok := range spare {
		corrupt(t, ok[0].path)
	}
	start := time.Now()
	_, err = readAll(ctx, o)
	took := time.Since(start)
	if err == nil {
		t.Fatal("read with 3 good shards of every segment succeeded")
	}
	t.Logf("read with 3 of 4 needed shards failed after %v: %v", took.Round(time.Millisecond), err)
	var tf *codec.TooFewShardsError
	if !errors.As(err, &tf) || tf.Good != 3 || tf.Need != 4 {
		t.Errorf("error %v (%T) is not a TooFewShardsError with 3 good of 4 needed", err, err)
	}
	if !strings.Contains(err.Error(), "found 3 good shards, need 4") {
		t.Errorf("error %q does not say that 3 good shards were found and 4 are needed", err)
	}
	if took > 20*time.Second {
		t.Errorf("the failed read took %v", took)
	}

	start = time.Now()
	_, stderr, err := e.run("cat", remoteName+":victim.bin")
	took = time.Since(start)
	if err == nil {
		t.Fatal("cat with 3 good shards of every segment succeeded")
	}
	if !strings.Contains(stderr, "found 3 good shards, need 4") {
		t.Errorf("cat's error does not say that 3 good shards were found and 4 are needed:\n%s", stderr)
	}
	if took > 45*time.Second {
		t.Errorf("cat took %v to give up", took)
	}
	t.Logf("cat gave up after %v", took.Round(time.Millisecond))
}

// TestCorruptPackShards: small files packed together share the fate of
// their pack's shards. With m of every segment's shards corrupted on the
// holders, every packed file still reads back byte for byte in a new
// process; with one more, reading fails with the codec's count of good
// shards, and nothing wrong is ever returned.
func TestCorruptPackShards(t *testing.T) {
	// Every shard receipted: an upload may succeed with 6 of 8 (a straggler
	// cancelled on a busy machine), and then 4 corrupted could be 4 of the
	// 7 or 6 the reference names.
	e := newEnv(t, 8, map[string]string{"success_shards": "8"})
	src := t.TempDir()
	want := map[string]string{}
	for i := range 24 {
		data := randomBytes(t, 20<<10+i*511)
		name := fmt.Sprintf("small/f%02d.bin", i)
		writeFile(t, src, name, data)
		want[name] = blake3Hex(data)
	}
	e.mustRun("copy", src, remoteName+":")
	// The only 4+4 object is the pack (the log and checkpoints are 2+6).
	shards := e.shardFiles(4, 4)
	bySeg := map[uint64][]shardFile{}
	for _, s := range shards {
		bySeg[s.header.Segment] = append(bySeg[s.header.Segment], s)
	}
	if len(bySeg) == 0 || len(shards) != 8*len(bySeg) {
		t.Fatalf("%d pack shards in %d segments, want 8 per segment", len(shards), len(bySeg))
	}
	hashes := func() (map[string]string, string, error) {
		out, stderr, err := e.run("hashsum", "blake3", "--download", remoteName+":")
		if err != nil {
			return nil, stderr, err
		}
		return parseHashsum(t, out), stderr, nil
	}
	for seg, ss := range bySeg {
		sort.Slice(ss, func(i, j int) bool { return ss[i].header.Index < ss[j].header.Index })
		for i := range 4 { // m = 4, data shards first: the most rebuilding
			corrupt(t, ss[(i+int(seg))%8].path)
		}
	}
	got, stderr, err := hashes()
	if err != nil {
		t.Fatalf("read with 4 of 8 shards of every pack segment corrupted: %v\n%s", err, stderr)
	}
	for name, h := range want {
		if got[name] != h {
			t.Fatalf("%s: hash %q, want %q", name, got[name], h)
		}
	}
	for seg, ss := range bySeg {
		corrupt(t, ss[(4+int(seg))%8].path)
	}
	out, stderr, err := e.run("hashsum", "blake3", "--download", remoteName+":")
	if err == nil {
		t.Fatal("read with 5 of 8 shards of every pack segment corrupted succeeded")
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if h, name, ok := strings.Cut(line, "  "); ok && len(h) == 64 && want[name] != h {
			t.Fatalf("%s listed with hash %q, want %q", name, h, want[name])
		}
	}
	if !strings.Contains(stderr, "need 4") {
		t.Fatalf("the failure does not say how many shards were needed:\n%s", stderr)
	}
}
