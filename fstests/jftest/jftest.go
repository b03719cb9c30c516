// Package jftest starts real in-process Jellyfish networks for the
// integration suites under fstests/: provider nodes on 127.0.0.1 and
// accounts created on them.
package jftest

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	"github.com/rclone/rclone/fs/config/obscure"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/client"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/provider"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/testnet"
)

// Network is a provider network of one test.
type Network struct {
	Net   *testnet.Network
	Fleet *provider.Fleet
}

// StartNetwork starts n provider nodes with 256 MiB quotas and waits until
// their node records are published. It is closed when the test ends.
func StartNetwork(t testing.TB, n int) *Network {
	t.Helper()
	return StartNetworkConfig(t, n, provider.TestnetConfig{QuotaBytes: 256 << 20})
}

// StartNetworkConfig starts n provider nodes configured by cfg (quota,
// per-node provider options, testnet options) and waits until their node
// records are published. It is closed when the test ends.
func StartNetworkConfig(t testing.TB, n int, cfg provider.TestnetConfig) *Network {
	t.Helper()
	fleet := provider.NewFleet(cfg)
	nw := testnet.New(t, n, fleet.Options())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := fleet.PublishAll(ctx, nw); err != nil {
		t.Fatal(err)
	}
	return &Network{Net: nw, Fleet: fleet}
}

// Bootstrap returns the multiaddresses of the first three live nodes, as a
// remote's bootstrap option.
func (n *Network) Bootstrap() string {
	var out []string
	for _, i := range n.Net.Live() {
		for _, a := range n.Net.Node(i).Addrs() {
			if strings.Contains(a.String(), "/tcp/") {
				out = append(out, a.String())
			}
		}
		if len(out) >= 3 {
			break
		}
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// Account is an account created on a test network.
type Account struct {
	Net      *Network
	User     string
	Password string
}

// CreateAccount creates user (with the cheap test key derivation) through a
// short-lived client node.
func (n *Network) CreateAccount(t testing.TB, user string) *Account {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var boot []ma.Multiaddr
	for _, f := range strings.Fields(n.Bootstrap()) {
		a, err := ma.NewMultiaddr(f)
		if err != nil {
			t.Fatal(err)
		}
		boot = append(boot, a)
	}
	c, err := client.New(ctx, client.Config{DataDir: t.TempDir(), Bootstrap: boot})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pw := "copper lantern orbit gravel " + fmt.Sprint(len(user))
	u, err := account.NormalizeUsername(user)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := account.NewManager(c.Records(), account.InsecureTestKDF()).Create(ctx, u, pw); err != nil {
		t.Fatalf("create account: %v", err)
	}
	return &Account{Net: n, User: user, Password: pw}
}

// RemoteConfig returns the body of an rclone config section for a
// jellyfish remote of the account, with extra options.
func (a *Account) RemoteConfig(t testing.TB, extra map[string]string) string {
	opts := map[string]string{
		"type":              "jellyfish",
		"username":          a.User,
		"password":          obscure.MustObscure(a.Password),
		"bootstrap":         a.Net.Bootstrap(),
		"insecure_test_kdf": "true",
		"data_dir":          t.TempDir(),
	}
	for k, v := range extra {
		opts[k] = v
	}
	keys := make([]string, 0, len(opts))
	for k := range opts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s = %s\n", k, opts[k])
	}
	return b.String()
}
