package jellyfish

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/rclone/rclone/fs"
	"github.com/rclone/rclone/fs/config"
	"github.com/rclone/rclone/fs/config/configmap"
	"github.com/rclone/rclone/fs/config/obscure"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/client"
)

// configure walks a new remote through creating or logging into an
// account: after username, password and bootstrap are set it asks whether
// to create a new account, then proves the password works on the network.
// Non-interactive `config create` logs in (set create_account=true in the
// parameters to create instead).
func configure(ctx context.Context, name string, m configmap.Mapper, in fs.ConfigIn) (*fs.ConfigOut, error) {
	switch in.State {
	case "":
		if v, ok := m.Get("create_account"); ok && v != "" {
			config.FileDeleteKey(name, "create_account")
			return fs.ConfigResult("account", v)
		}
		return fs.ConfigConfirm("account", false, "config_create_account",
			"Create a new Jellyfish account with this username and password?\n\nChoose No to log in to an existing account.")
	case "account":
		create, _ := strconv.ParseBool(in.Result)
		if err := checkAccount(ctx, m, create); err != nil {
			return nil, err
		}
		return nil, nil
	}
	return nil, fmt.Errorf("jellyfish: unknown config state %q", in.State)
}

// checkAccount creates the account, or logs in, through a short-lived
// client node.
func checkAccount(ctx context.Context, m configmap.Mapper, create bool) error {
	get := func(k string) string { v, _ := m.Get(k); return v }
	user, err := account.NormalizeUsername(get("username"))
	if err != nil {
		return err
	}
	pw, err := obscure.Reveal(get("password"))
	if err != nil || pw == "" {
		return errors.New("jellyfish: a password is needed")
	}
	boot, err := parseBootstrap(get("bootstrap"))
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "jellyfish-config-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	c, err := client.New(ctx, client.Config{DataDir: dir, Bootstrap: boot})
	if err != nil {
		return fmt.Errorf("jellyfish: join the network: %w", err)
	}
	defer c.Close()
	var opts []account.Option
	if test, _ := strconv.ParseBool(get("insecure_test_kdf")); test {
		opts = append(opts, account.InsecureTestKDF())
	}
	mgr := account.NewManager(c.Records(), opts...)
	if create {
		a, err := mgr.Create(ctx, user, pw)
		if err != nil {
			return err
		}
		fs.Logf(nil, "Created Jellyfish account %q (identity %s)", user, a.ID())
		return nil
	}
	a, err := mgr.Login(ctx, user, pw)
	if err != nil {
		return err
	}
	fs.Logf(nil, "Logged in to Jellyfish account %q (identity %s)", user, a.ID())
	return nil
}
