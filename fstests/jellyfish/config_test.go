package jellyfish_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rclone/rclone/fs"
	"github.com/rclone/rclone/fs/config"
	"github.com/rclone/rclone/fs/config/configfile"
	"github.com/rclone/rclone/fs/rc"

	"github.com/jellyfish-p2p/jellyfish/fstests/jftest"
)

// TestConfigCreate drives rclone's `config create` for a jellyfish remote:
// it creates the account on the network, refuses a weak password and a
// second creation, and the remote then works; a login with the wrong
// password fails with the single clear message.
func TestConfigCreate(t *testing.T) {
	net := jftest.StartNetwork(t, 6)
	conf := filepath.Join(t.TempDir(), "rclone.conf")
	if err := os.WriteFile(conf, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := config.SetConfigPath(conf); err != nil {
		t.Fatal(err)
	}
	configfile.Install()
	ctx := context.Background()
	params := func(pw, create string) rc.Params {
		return rc.Params{
			"username": "carol", "password": pw, "bootstrap": net.Bootstrap(),
			"insecure_test_kdf": "true", "data_dir": t.TempDir(),
			"data_shards": "3", "parity_shards": "3", "create_account": create,
		}
	}
	opts := config.UpdateRemoteOpt{Obscure: true, NonInteractive: true}
	const pw = "amber fjord velvet compass"
	if _, err := config.CreateRemote(ctx, "weak", "jellyfish", params("carol12345", "true"), opts); err == nil || !strings.Contains(err.Error(), "password refused") {
		t.Fatalf("weak password: %v", err)
	}
	if _, err := config.CreateRemote(ctx, "jf", "jellyfish", params(pw, "true"), opts); err != nil {
		t.Fatal(err)
	}
	if v, ok := config.FileGetValue("jf", "create_account"); ok {
		t.Fatalf("create_account left in the config: %q", v)
	}
	if _, err := config.CreateRemote(ctx, "again", "jellyfish", params(pw, "true"), opts); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second create: %v", err)
	}
	if _, err := config.CreateRemote(ctx, "login", "jellyfish", params(pw, "false"), opts); err != nil {
		t.Fatalf("log in: %v", err)
	}
	_, err := config.CreateRemote(ctx, "wrong", "jellyfish", params("another fine long passphrase", "false"), opts)
	if err == nil || !strings.Contains(err.Error(), "wrong username or password") {
		t.Fatalf("wrong password: %v", err)
	}
	f, err := fs.NewFs(ctx, "jf:")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Mkdir(ctx, "hello"); err != nil {
		t.Fatal(err)
	}
}
