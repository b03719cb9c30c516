//go:build jellyfish_vfstest

package suite

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/rclone/rclone/fs/config"
	"github.com/rclone/rclone/vfs/vfscommon"
	"github.com/rclone/rclone/vfs/vfstest"

	_ "github.com/jellyfish-p2p/jellyfish/backend/jellyfish"
	"github.com/jellyfish-p2p/jellyfish/fstests/jftest"
)

// TestVFS runs vfstest.RunTests in-process (useVFS): every cache mode from
// off up, each on a fresh random directory of one Jellyfish account on an
// 8-node network with 4+4 redundancy and 1 MiB segments. The parent test
// picks the cache modes with -test.run.
func TestVFS(t *testing.T) {
	net := jftest.StartNetwork(t, 8)
	acct := net.CreateAccount(t, "vfstest")
	section := acct.RemoteConfig(t, map[string]string{
		"data_shards": "4", "parity_shards": "4", "segment_size": "1M", "cleanup_grace": "0s",
	})
	conf := filepath.Join(t.TempDir(), "rclone.conf")
	if err := os.WriteFile(conf, []byte("[TestVFS]\n"+section), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("RCLONE_CONFIG", conf)
	// The VFS cache of the writes and full modes lives under the cache dir.
	if err := config.SetCacheDir(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if err := flag.Set("remote", "TestVFS:"); err != nil {
		t.Fatal(err)
	}
	vfstest.RunTests(t, true, vfscommon.CacheModeOff, true, nil)
}
