package clitest

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/client"
)

// testnetChild runs `jellyfish testnet --nodes n` as a child process
// until the test ends and returns its bootstrap file.
func testnetChild(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	tn := start(t, nil, io.Discard, io.Discard, "testnet", "--nodes", strconv.Itoa(n), "--dir", dir, "--quota-mib", "64")
	t.Cleanup(func() { tn.stop(t, syscall.SIGINT, 15*time.Second) })
	bootFile := filepath.Join(dir, "bootstrap.txt")
	waitFor(t, 60*time.Second, func() bool {
		b, err := os.ReadFile(bootFile)
		return err == nil && len(strings.Fields(string(b))) == n
	})
	return bootFile
}

// joinChild starts an in-process client node on the child's network.
func joinChild(t *testing.T, ctx context.Context, bootFile string) *client.Client {
	t.Helper()
	b, err := os.ReadFile(bootFile)
	if err != nil {
		t.Fatal(err)
	}
	var boot []ma.Multiaddr
	for _, l := range strings.Fields(string(b)) {
		boot = append(boot, ma.StringCast(l))
	}
	c, err := client.New(ctx, client.Config{DataDir: t.TempDir(), Bootstrap: boot})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestCreateOverExpiredAccount: an account whose records expired (made
// here with a clock 35 days behind, so its records expire seconds after
// they are stored) cannot be created again with the same username and
// password: `account create` exits 1 and explains why, where its keys
// survive, and that another password cannot be detected. With another
// password it creates a new account.
func TestCreateOverExpiredAccount(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bootFile := testnetChild(t, 4)
	c := joinChild(t, ctx, bootFile)
	const lifeLeft = 3 * time.Second
	behind := func() time.Time { return time.Now().Add(-account.RecordLifetime + lifeLeft) }
	if _, err := account.NewManager(c.Records(), account.InsecureTestKDF(), account.WithClock(behind)).Create(ctx, "carol", password); err != nil {
		t.Fatal(err)
	}
	now := account.NewManager(c.Records(), account.InsecureTestKDF())
	waitFor(t, 30*time.Second, func() bool {
		_, err := now.Login(ctx, "carol", password)
		return errors.Is(err, account.ErrBadLogin)
	})

	common := []string{"account", "create", "--bootstrap-file", bootFile, "--insecure-test-kdf", "--config-dir", t.TempDir(), "--username", "carol"}
	so, se, code := run(t, []string{"JELLYFISH_PASSWORD=" + password}, common...)
	if code != 1 || so != "" {
		t.Fatalf("create over the expired account: exit %d\n%s%s", code, so, se)
	}
	for _, want := range []string{"opened an account before", "expired", "nothing was created", "device that was logged in", "recovery key", "different password"} {
		if !strings.Contains(se, want) {
			t.Fatalf("the message does not say %q:\n%s", want, se)
		}
	}
	so, se, code = run(t, []string{"JELLYFISH_PASSWORD=quiet harbor ninety kettle"}, common...)
	if code != 0 || !strings.Contains(so, `created account "carol"`) {
		t.Fatalf("create with another password: exit %d\n%s%s", code, so, se)
	}
}
