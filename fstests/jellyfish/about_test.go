package jellyfish_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rclone/rclone/fs"
	"github.com/rclone/rclone/fs/config"
	"github.com/rclone/rclone/fs/config/configfile"
	"github.com/rclone/rclone/fs/object"

	"github.com/jellyfish-p2p/jellyfish/fstests/jftest"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/provider"
)

// TestAboutShowsWhatProvidersTake: on eight providers that each keep at
// most 2 MiB for an account sharing no node, rclone's About (what `rclone
// about` and `df` on a mount show) says the account may store about
// 16 MiB of shard bytes, not the petabyte a mount shows without a total;
// a 3 MiB file stored in 2+2 segments (6 MiB of shards) takes that much
// off free; total is always used + free.
func TestAboutShowsWhatProvidersTake(t *testing.T) {
	const starter = 2 << 20
	net := jftest.StartNetworkConfig(t, 8, provider.TestnetConfig{
		QuotaBytes: 256 << 20,
		Provider: func(i int, cfg *provider.Config) {
			cfg.Admission = provider.AdmissionConfig{StarterBytes: starter}
		},
	})
	acct := net.CreateAccount(t, "erin")
	conf := filepath.Join(t.TempDir(), "rclone.conf")
	section := acct.RemoteConfig(t, map[string]string{"data_shards": "2", "parity_shards": "2"})
	if err := os.WriteFile(conf, []byte("[ab]\n"+section), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := config.SetConfigPath(conf); err != nil {
		t.Fatal(err)
	}
	configfile.Install()
	ctx := context.Background()
	f, err := fs.NewFs(ctx, "ab:")
	if err != nil {
		t.Fatal(err)
	}
	about := func(what string) (used, free int64) {
		t.Helper()
		u, err := f.Features().About(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if u.Total == nil || u.Free == nil || u.Used == nil {
			t.Fatalf("%s: about without total, free or used: %+v", what, u)
		}
		if *u.Total != *u.Used+*u.Free {
			t.Fatalf("%s: total %d, used %d + free %d", what, *u.Total, *u.Used, *u.Free)
		}
		t.Logf("%s: used %d, free %d, total %d", what, *u.Used, *u.Free, *u.Total)
		return *u.Used, *u.Free
	}
	_, free0 := about("before")
	// The account's metadata records already take a little.
	if free0 > 8*starter || free0 < 8*starter-(1<<20) {
		t.Fatalf("free %d before any file; the providers keep 8 × %d for the account", free0, starter)
	}
	data := make([]byte, 3<<20)
	rand.Read(data)
	if _, err := f.Put(ctx, bytes.NewReader(data), object.NewStaticObjectInfo("f.bin", time.Now(), int64(len(data)), true, nil, f)); err != nil {
		t.Fatal(err)
	}
	used1, free1 := about("after 3 MiB")
	if used1 < 6<<20 {
		t.Fatalf("used %d after storing 6 MiB of shards", used1)
	}
	if d := free0 - free1; d < 6<<20 || d > 7<<20 {
		t.Fatalf("free went from %d to %d after storing 6 MiB of shards", free0, free1)
	}
}
