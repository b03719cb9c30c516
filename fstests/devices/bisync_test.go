package devices_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/rclone/rclone/cmd/bisync"
	"github.com/rclone/rclone/fs"

	_ "github.com/rclone/rclone/backend/local"

	"github.com/jellyfish-p2p/jellyfish/fstests/jftest"
)

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func readFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestBisyncTwoDevices runs rclone's bisync between a local folder on each
// of two devices and the same account: after each side's changes have gone
// through the network, both folders hold the same files.
func TestBisyncTwoDevices(t *testing.T) {
	net := jftest.StartNetwork(t, 8)
	acct := net.CreateAccount(t, "erin")
	conf := useDevices(t, acct, map[string]string{"data_shards": "4", "parity_shards": "4"}, "devA", "devB")
	ctx := context.Background()
	localA, localB := t.TempDir(), t.TempDir()
	remoteA, remoteB := device(t, ctx, conf, "devA"), device(t, ctx, conf, "devB")
	lfA, err := fs.NewFs(ctx, localA)
	if err != nil {
		t.Fatal(err)
	}
	lfB, err := fs.NewFs(ctx, localB)
	if err != nil {
		t.Fatal(err)
	}
	rA, err := fs.NewFs(ctx, "devA:sync")
	if err != nil {
		t.Fatal(err)
	}
	rB, err := fs.NewFs(ctx, "devB:sync")
	if err != nil {
		t.Fatal(err)
	}
	if err := rA.Mkdir(ctx, ""); err != nil {
		t.Fatal(err)
	}
	flush(t, ctx, rA)
	poll(t, ctx, remoteB)
	workA, workB := t.TempDir(), t.TempDir()
	run := func(local fs.Fs, remote fs.Fs, work string, resync bool) {
		t.Helper()
		opt := &bisync.Options{Workdir: work, CheckFilename: bisync.DefaultCheckFilename, CheckSync: bisync.CheckSyncTrue, Resync: resync, MaxDelete: 50}
		if err := bisync.Bisync(ctx, local, remote, opt); err != nil {
			t.Fatalf("bisync %s <-> %s: %v", local, remote, err)
		}
		flush(t, ctx, remote)
	}

	writeFiles(t, localA, map[string]string{"a1.txt": "from a", "common/doc.txt": "first draft"})
	run(lfA, rA, workA, true)
	poll(t, ctx, remoteB)
	run(lfB, rB, workB, true)
	if got := readFiles(t, localB); got["a1.txt"] != "from a" || got["common/doc.txt"] != "first draft" {
		t.Fatalf("device B did not receive A's files: %v", got)
	}

	// Both sides change, then each bisyncs in turn.
	writeFiles(t, localA, map[string]string{"a2.txt": "second from a", "common/doc.txt": "second draft"})
	writeFiles(t, localB, map[string]string{"b1.txt": "from b"})
	if err := os.Remove(filepath.Join(localB, "a1.txt")); err != nil {
		t.Fatal(err)
	}
	run(lfA, rA, workA, false)
	poll(t, ctx, remoteB)
	run(lfB, rB, workB, false)
	poll(t, ctx, remoteA)
	run(lfA, rA, workA, false)

	gotA, gotB := readFiles(t, localA), readFiles(t, localB)
	want := map[string]string{"a2.txt": "second from a", "b1.txt": "from b", "common/doc.txt": "second draft"}
	for _, got := range []map[string]string{gotA, gotB} {
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("folders did not converge:\n A: %v\n B: %v\n want %v", gotA, gotB, want)
		}
	}
}
