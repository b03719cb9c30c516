package faults_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"testing"
	"time"

	"github.com/rclone/rclone/fs"
	"github.com/rclone/rclone/fs/operations"
)

// maintain runs the backend's maintain command and returns its figures.
func maintain(t *testing.T, ctx context.Context, f fs.Fs, opt map[string]string) map[string]float64 {
	t.Helper()
	out, err := f.Features().Command(ctx, "maintain", nil, opt)
	if err != nil {
		t.Fatalf("maintain: %v", err)
	}
	b, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]float64
	if err := json.Unmarshal(b, &st); err != nil {
		// lease_until is a string; the rest are numbers.
		var raw map[string]any
		if err := json.Unmarshal(b, &raw); err != nil {
			t.Fatal(err)
		}
		st = map[string]float64{}
		for k, v := range raw {
			if n, ok := v.(float64); ok {
				st[k] = n
			}
		}
	}
	t.Logf("maintain: %s", b)
	return st
}

// TestMaintainRepairsLostNodes: on real providers, a maintenance round
// renews every shard the account uses; three holders of a segment killed
// are first only "not answering", then, once they have failed for the
// lost-after time, their shards are rebuilt on other providers. Two more
// original holders then go too (five of eight in all, more than the
// parity): the file still reads back, in this process and in another
// process (another device), from the repaired shards' recorded holders.
func TestMaintainRepairsLostNodes(t *testing.T) {
	// Every shard receipted, so that the healthy account below has every
	// shard renewed (an upload may succeed with 6 of 8).
	e := newEnv(t, 12, map[string]string{"segment_size": "1M", "pack_max": "0", "success_shards": "8"})
	ctx := context.Background()
	f := e.newFs(ctx)
	data := randomBytes(t, 1<<20+12345)
	o, err := operations.Rcat(ctx, f, "keep.bin", io.NopCloser(bytes.NewReader(data)), time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	opt := map[string]string{"lost-after": "1s", "audits": "4"}
	st := maintain(t, ctx, f, opt)
	if st["renewed"] != st["shards"] || st["shards"] < 16 || st["segments_repaired"] != 0 || st["audit_failed"] != 0 || st["audited"] == 0 {
		t.Fatalf("a healthy account: %v", st)
	}
	bySeg := segmentShards(t, e, 2)
	for _, s := range bySeg[0][:3] {
		if err := e.net.Net.Kill(s.node); err != nil {
			t.Fatal(err)
		}
	}
	st = maintain(t, ctx, f, opt)
	if st["holders_unreachable"] < 3 || st["segments_repaired"] != 0 {
		t.Fatalf("holders just killed are not lost yet: %v", st)
	}
	time.Sleep(2 * time.Second)
	st = maintain(t, ctx, f, opt)
	if st["holders_lost"] < 3 || st["segments_repaired"] < 1 || st["shards_placed"] < 3 || st["repair_bytes"] == 0 {
		t.Fatalf("holders failing past lost-after: %v", st)
	}
	for _, s := range bySeg[0][3:5] {
		if err := e.net.Net.Kill(s.node); err != nil {
			t.Fatal(err)
		}
	}
	got, err := readAll(ctx, o)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read after repair with 5 of 8 original holders gone: %v", err)
	}
	if err := f.Features().Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// The config's bootstrap nodes may be among those killed.
	e.useLiveBootstrap()
	if out := e.mustRun("cat", remoteName+":keep.bin"); !bytes.Equal(out, data) {
		t.Fatalf("another device reads %d bytes, want %d", len(out), len(data))
	}
}
