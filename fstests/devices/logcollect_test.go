package devices_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jellyfish-p2p/jellyfish/fstests/jftest"
)

// TestLogCollection writes many batches on two devices with frequent
// checkpoints, collects old batches with CleanUp, and checks that a new
// device still loads the whole tree.
func TestLogCollection(t *testing.T) {
	net := jftest.StartNetwork(t, 8)
	acct := net.CreateAccount(t, "gus")
	conf := useDevices(t, acct, map[string]string{
		"data_shards": "4", "parity_shards": "4", "checkpoint_every": "3", "cleanup_grace": "0s"}, "a", "b", "c")
	ctx := context.Background()
	a, devB := device(t, ctx, conf, "a"), device(t, ctx, conf, "b")
	for i := range 8 {
		put(t, ctx, a, fmt.Sprintf("a/%d.txt", i), fmt.Sprintf("a%d", i))
		flush(t, ctx, a)
		put(t, ctx, devB, fmt.Sprintf("b/%d.txt", i), fmt.Sprintf("b%d", i))
		flush(t, ctx, devB)
		poll(t, ctx, a)
		poll(t, ctx, devB)
	}
	// Both checkpoints now cover most of both logs.
	put(t, ctx, a, "last.txt", "last")
	flush(t, ctx, a)
	if err := a.Features().CleanUp(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := a.Features().Command(ctx, "status", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	log := st.(map[string]any)["log"].(map[string]uint64)
	if log["collected"] == 0 || log["collected"] > log["checkpoint"] {
		t.Fatalf("nothing collected: %v", log)
	}
	t.Logf("device a's log after cleanup: %v", log)
	c := device(t, ctx, conf, "c")
	got := tree(t, ctx, c)
	if len(got) != 17 || got["last.txt"] != "last" || got["a/0.txt"] != "a0" || got["b/7.txt"] != "b7" {
		t.Fatalf("new device sees %d files: %v", len(got), keys(got))
	}
}
