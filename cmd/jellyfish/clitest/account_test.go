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

// TestRecoveryKeyCommands drives the recovery key through the binary on a
// four-node testnet: create prints it once with what it is for; recover
// (username, key and new password from the environment) sets a new
// password, after which the old one is refused and the new one logs in; a
// wrong key and a mistyped one are refused with their own messages;
// recovery-key on the logged-in device makes a new key, the old one is
// then refused as replaced, and the new one (from a file) works.
func TestRecoveryKeyCommands(t *testing.T) {
	bootFile := testnetChild(t, 4)
	cfg := t.TempDir()
	common := []string{"--bootstrap-file", bootFile, "--insecure-test-kdf", "--config-dir", cfg, "--username", "dora"}
	acct := func(env []string, args ...string) (string, string, int) {
		return run(t, append([]string{"JELLYFISH_PASSWORD=", "JELLYFISH_NEW_PASSWORD=", "JELLYFISH_RECOVERY_KEY="}, env...), append(append([]string{"account"}, args...), common...)...)
	}
	const (
		secondPw = "quiet harbor ninety kettle"
		thirdPw  = "velvet granite oyster comet"
	)

	so, se, code := acct([]string{"JELLYFISH_PASSWORD=" + password}, "create")
	if code != 0 || !strings.Contains(so, "gone for good") || !strings.Contains(so, "shown only now") {
		t.Fatalf("create: exit %d\n%s%s", code, so, se)
	}
	key := field(so, "recovery key: ")
	if _, err := account.ParseRecoveryKey(key); err != nil {
		t.Fatalf("create printed %q as the recovery key: %v", key, err)
	}

	wrong, _ := account.NewRecoveryKey()
	if _, se, code = acct([]string{"JELLYFISH_RECOVERY_KEY=" + wrong.String(), "JELLYFISH_NEW_PASSWORD=" + secondPw}, "recover"); code != 1 || !strings.Contains(se, "wrong username or recovery key") {
		t.Fatalf("recover with a wrong key: exit %d, %q", code, se)
	}
	typo := []byte(key) // one character replaced by another of the alphabet
	if typo[3] = '2'; key[3] == '2' {
		typo[3] = '3'
	}
	if _, se, code = acct([]string{"JELLYFISH_RECOVERY_KEY=" + string(typo), "JELLYFISH_NEW_PASSWORD=" + secondPw}, "recover"); code != 1 || !strings.Contains(se, "not a recovery key") {
		t.Fatalf("recover with a mistyped key %s: exit %d, %q", typo, code, se)
	}
	if so, se, code = acct([]string{"JELLYFISH_RECOVERY_KEY=" + strings.ToLower(key), "JELLYFISH_NEW_PASSWORD=" + secondPw}, "recover"); code != 0 || !strings.Contains(so, "old password no longer works") {
		t.Fatalf("recover: exit %d\n%s%s", code, so, se)
	}
	if _, se, code = acct([]string{"JELLYFISH_PASSWORD=" + password}, "login"); code != 1 || !strings.Contains(se, "wrong username or password") {
		t.Fatalf("old password after recover: exit %d, %q", code, se)
	}
	if so, se, code = acct([]string{"JELLYFISH_PASSWORD=" + secondPw}, "login"); code != 0 {
		t.Fatalf("new password: exit %d\n%s%s", code, so, se)
	}

	so, se, code = acct([]string{"JELLYFISH_PASSWORD=" + secondPw}, "recovery-key")
	if code != 0 || !strings.Contains(so, "previous recovery key no longer works") {
		t.Fatalf("recovery-key: exit %d\n%s%s", code, so, se)
	}
	newKey := field(so, "recovery key: ")
	if newKey == key {
		t.Fatal("recovery-key printed the old key")
	}
	if _, se, code = acct([]string{"JELLYFISH_RECOVERY_KEY=" + key, "JELLYFISH_NEW_PASSWORD=" + thirdPw}, "recover"); code != 1 || !strings.Contains(se, "replaced by a newer one") {
		t.Fatalf("recover with the replaced key: exit %d, %q", code, se)
	}
	keyFile := filepath.Join(t.TempDir(), "recovery")
	if err := os.WriteFile(keyFile, []byte(newKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if so, se, code = acct([]string{"JELLYFISH_NEW_PASSWORD=" + thirdPw}, "recover", "--recovery-key-file", keyFile); code != 0 {
		t.Fatalf("recover with the new key: exit %d\n%s%s", code, so, se)
	}
	if so, se, code = acct([]string{"JELLYFISH_PASSWORD=" + thirdPw}, "login"); code != 0 {
		t.Fatalf("third password: exit %d\n%s%s", code, so, se)
	}
}
