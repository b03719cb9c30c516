package devices_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jellyfish-p2p/jellyfish/fstests/jftest"
)

// TestOverwritesLeaveNoConflicts: a server-side copy or move over an
// existing file and a modification-time change are ordinary writes, not
// concurrent ones, so another device sees the result and no conflict copy.
func TestOverwritesLeaveNoConflicts(t *testing.T) {
	net := jftest.StartNetwork(t, 6)
	acct := net.CreateAccount(t, "hal")
	conf := useDevices(t, acct, map[string]string{"data_shards": "3", "parity_shards": "3"}, "a", "b")
	ctx := context.Background()
	a := device(t, ctx, conf, "a")
	// x is written twice, so its entry names the version it replaced.
	put(t, ctx, a, "x.txt", "x draft")
	put(t, ctx, a, "x.txt", "x contents")
	put(t, ctx, a, "y.txt", "y contents")
	put(t, ctx, a, "z.txt", "z contents")
	x, err := a.NewObject(ctx, "x.txt")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Features().Copy(ctx, x, "y.txt"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Features().Move(ctx, x, "z.txt"); err != nil {
		t.Fatal(err)
	}
	z, err := a.NewObject(ctx, "z.txt")
	if err != nil {
		t.Fatal(err)
	}
	if err := z.SetModTime(ctx, time.Unix(1_000_000_000, 0)); err != nil {
		t.Fatal(err)
	}
	flush(t, ctx, a)
	got := tree(t, ctx, device(t, ctx, conf, "b"))
	for k := range got {
		if strings.Contains(k, "conflict") {
			t.Errorf("spurious conflict copy %q", k)
		}
	}
	if got["y.txt"] != "x contents" || got["z.txt"] != "x contents" || len(got) != 2 {
		t.Fatalf("tree: %v", got)
	}
}
