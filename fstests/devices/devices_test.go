// Package devices_test checks that several devices of one account, writing
// at the same time, end with the same tree and lose nothing.
package devices_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rclone/rclone/fs"
	"github.com/rclone/rclone/fs/object"
	"github.com/rclone/rclone/fs/operations"

	_ "github.com/jellyfish-p2p/jellyfish/backend/jellyfish"
	"github.com/jellyfish-p2p/jellyfish/fstests/jftest"
)

// device opens the account as a separate device: its own data dir, so its
// own client node, device slot, head and log.
func device(t *testing.T, ctx context.Context, conf, name string) fs.Fs {
	t.Helper()
	f, err := fs.NewFs(ctx, name+":")
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func put(t *testing.T, ctx context.Context, f fs.Fs, remote, content string) {
	t.Helper()
	info := object.NewStaticObjectInfo(remote, time.Now(), int64(len(content)), true, nil, f)
	if _, err := f.Put(ctx, strings.NewReader(content), info); err != nil {
		t.Fatalf("put %s: %v", remote, err)
	}
}

func flush(t *testing.T, ctx context.Context, f fs.Fs) {
	t.Helper()
	if err := f.Features().Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

// tree lists every file of f with its contents.
func tree(t *testing.T, ctx context.Context, f fs.Fs) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := operations.ListFn(ctx, f, func(o fs.Object) {
		rc, err := o.Open(ctx)
		if err != nil {
			t.Errorf("open %s: %v", o.Remote(), err)
			return
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		out[o.Remote()] = string(b)
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func poll(t *testing.T, ctx context.Context, f fs.Fs) {
	t.Helper()
	if _, err := f.Features().Command(ctx, "poll", nil, nil); err != nil {
		t.Fatal(err)
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestThreeDevicesConverge(t *testing.T) {
	net := jftest.StartNetwork(t, 8)
	acct := net.CreateAccount(t, "dana")
	conf := useDevices(t, acct, map[string]string{"data_shards": "4", "parity_shards": "4"}, "a", "b", "c")
	ctx := context.Background()
	a := device(t, ctx, conf, "a")
	put(t, ctx, a, "shared.txt", "v0 from a")
	put(t, ctx, a, "moved-later.txt", "original")
	flush(t, ctx, a)

	devB := device(t, ctx, conf, "b")
	// c is offline during what follows; it opens only at the end.
	if got := tree(t, ctx, devB)["shared.txt"]; got != "v0 from a" {
		t.Fatalf("b sees %q", got)
	}

	// Concurrently: different paths, the same path, a delete racing an
	// edit, a move racing an edit.
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		put(t, ctx, a, "only-a.txt", "a")
		put(t, ctx, a, "shared.txt", "edit from a")
		o, err := a.NewObject(ctx, "moved-later.txt")
		if err != nil {
			t.Error(err)
			return
		}
		if _, err := a.Features().Move(ctx, o, "moved.txt"); err != nil {
			t.Error(err)
		}
	}()
	go func() {
		defer wg.Done()
		put(t, ctx, devB, "only-b.txt", "b")
		put(t, ctx, devB, "shared.txt", "edit from b")
		put(t, ctx, devB, "moved-later.txt", "edited by b")
	}()
	wg.Wait()
	flush(t, ctx, a)
	flush(t, ctx, devB)
	poll(t, ctx, a)
	poll(t, ctx, devB)
	flush(t, ctx, a)
	flush(t, ctx, devB)
	poll(t, ctx, a)
	poll(t, ctx, devB)

	c := device(t, ctx, conf, "c")
	ta, tb, tc := tree(t, ctx, a), tree(t, ctx, devB), tree(t, ctx, c)
	if fmt.Sprint(ta) != fmt.Sprint(tb) || fmt.Sprint(tb) != fmt.Sprint(tc) {
		t.Fatalf("devices disagree:\n a: %v\n b: %v\n c: %v", keys(ta), keys(tb), keys(tc))
	}
	// Every write is present, at its path or in a conflict copy.
	values := map[string]bool{}
	for _, v := range ta {
		values[v] = true
	}
	for _, want := range []string{"a", "b", "edit from a", "edit from b", "original", "edited by b"} {
		if !values[want] {
			t.Errorf("write %q lost; tree: %v", want, ta)
		}
	}
	if ta["moved.txt"] != "original" {
		t.Errorf("move lost: %v", ta)
	}
	t.Logf("converged tree: %v", ta)
	conflicts := 0
	for k := range ta {
		if strings.Contains(k, ".conflict-") {
			conflicts++
		}
	}
	if conflicts == 0 {
		t.Errorf("no conflict copy kept: %v", keys(ta))
	}
}

// useDevices writes an rclone config with one remote per name for acct,
// each with opts and its own data dir (so its own device), and makes it
// the config of this test. It returns the config's path.
func useDevices(t *testing.T, acct *jftest.Account, opts map[string]string, names ...string) string {
	t.Helper()
	conf := filepath.Join(t.TempDir(), "rclone.conf")
	var b bytes.Buffer
	for _, d := range names {
		fmt.Fprintf(&b, "[%s]\n%s\n", d, acct.RemoteConfig(t, opts))
	}
	if err := os.WriteFile(conf, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("RCLONE_CONFIG", conf)
	jftest.ReloadConfig(t)
	return conf
}
