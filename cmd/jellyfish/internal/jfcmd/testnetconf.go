package jfcmd

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/rclone/rclone/fs/config/obscure"
)

// RemoteName is the name of the remote `jellyfish testnet` writes.
const RemoteName = "jellyfish"

func init() {
	testnetReadyHooks = append(testnetReadyHooks, writeTestnetConfig)
}

// testnetRedundancy picks k+m for an n-node testnet so that every shard of
// a segment lands on its own node and a third of the nodes can be lost:
// k = n/3 (at least 1), m = n-k.
func testnetRedundancy(n int) (k, m int) {
	k = max(1, n/3)
	return k, max(1, n-k)
}

// writeTestnetConfig writes DIR/rclone.conf with a ready [jellyfish] remote
// for the account --account created.
func writeTestnetConfig(ctx context.Context, r *TestnetReady) error {
	if r.Username == "" {
		return nil
	}
	addrs := make([]string, len(r.Bootstrap))
	for i, a := range r.Bootstrap {
		addrs[i] = a.String()
	}
	k, m := testnetRedundancy(len(addrs))
	var b strings.Builder
	fmt.Fprintf(&b, "[%s]\n", RemoteName)
	fmt.Fprintf(&b, "type = jellyfish\n")
	fmt.Fprintf(&b, "username = %s\n", r.Username)
	fmt.Fprintf(&b, "password = %s\n", obscure.MustObscure(r.Password))
	fmt.Fprintf(&b, "bootstrap = %s\n", strings.Join(addrs, " "))
	fmt.Fprintf(&b, "data_shards = %d\nparity_shards = %d\n", k, m)
	fmt.Fprintf(&b, "data_dir = %s\n", filepath.Join(r.Dir, "devices"))
	if r.InsecureTestKDF {
		fmt.Fprintf(&b, "insecure_test_kdf = true\n")
	}
	r.ConfigFile = filepath.Join(r.Dir, "rclone.conf")
	return os.WriteFile(r.ConfigFile, []byte(b.String()), 0o600)
}
