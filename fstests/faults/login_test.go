package faults_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	"github.com/rclone/rclone/fs/config/configmap"
	"github.com/rclone/rclone/fs/config/obscure"

	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish"
	"github.com/jellyfish-p2p/jellyfish/fstests/jftest"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/account"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/client"
)

// devices returns the devices listed in the account record of acct, read
// through a short-lived client node.
func devices(t *testing.T, acct *jftest.Account) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var boot []ma.Multiaddr
	for _, s := range strings.Fields(acct.Net.Bootstrap()) {
		boot = append(boot, ma.StringCast(s))
	}
	c, err := client.New(ctx, client.Config{DataDir: t.TempDir(), Bootstrap: boot})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	u, err := account.NormalizeUsername(acct.User)
	if err != nil {
		t.Fatal(err)
	}
	m := account.NewManager(c.Records(), account.InsecureTestKDF())
	a, err := m.Login(ctx, u, acct.Password)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := m.Lookup(ctx, a.ID())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range pub.Devices {
		out = append(out, d.Name+"/"+string(d.ID[:]))
	}
	sort.Strings(out)
	return out
}

// shardCount returns the shards held by all live providers.
func (e *env) shardCount() int {
	n := 0
	for _, i := range e.net.Net.Live() {
		n += e.net.Fleet.Provider(i).Store().Usage().Shards
	}
	return n
}

// TestBadLogin opens the remote with a wrong password and with an unknown
// user, in a child process (`jellyfish lsd`) and in this process (NewFs).
// Each fails at once with the one message about a wrong username or
// password, and nothing is created: no device in the account record, no
// shard on any provider, no device ID in the data dir.
func TestBadLogin(t *testing.T) {
	e := newEnv(t, 8, nil)
	// The real account is in use, so it has a device and a head.
	e.mustRun("mkdir", remoteName+":exists")
	devsBefore, shardsBefore := devices(t, e.acct), e.shardCount()
	if len(devsBefore) != 1 {
		t.Fatalf("the account lists %d devices, want 1", len(devsBefore))
	}

	for _, tc := range []struct {
		name string
		acct jftest.Account
	}{
		{"wrong password", jftest.Account{Net: e.net, User: e.acct.User, Password: e.acct.Password + " but wrong"}},
		{"unknown user", jftest.Account{Net: e.net, User: "nobody-here", Password: e.acct.Password}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conf := writeConfig(t, &tc.acct, e.opts)
			start := time.Now()
			out, stderr, err := runWith(t, conf, "lsd", remoteName+":")
			took := time.Since(start)
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() == 0 {
				t.Fatalf("lsd exited with %v, want a non-zero exit status\n%s", err, stderr)
			}
			if len(out) != 0 {
				t.Errorf("lsd printed %q", out)
			}
			if n := strings.Count(stderr, "wrong username or password"); n != 1 {
				t.Errorf("the message about a wrong username or password appears %d times, want once:\n%s", n, stderr)
			}
			if strings.Contains(stderr, "panic") || strings.Contains(stderr, "goroutine ") {
				t.Errorf("lsd crashed:\n%s", stderr)
			}
			if took > 30*time.Second {
				t.Errorf("lsd took %v to fail", took)
			}
			t.Logf("lsd failed after %v: %s", took.Round(time.Millisecond), strings.TrimSpace(stderr))

			m := configmap.Simple{
				"username": tc.acct.User, "password": obscure.MustObscure(tc.acct.Password),
				"bootstrap": e.net.Bootstrap(), "insecure_test_kdf": "true", "data_dir": t.TempDir(),
				"data_shards": "4", "parity_shards": "4",
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if _, err := jellyfish.NewFs(ctx, remoteName, "", withDefaults(m)); !errors.Is(err, account.ErrBadLogin) {
				t.Errorf("NewFs: %v, want an error matching account.ErrBadLogin", err)
			}

			for _, dir := range []string{configValue(t, conf, "data_dir"), m["data_dir"]} {
				found := ""
				filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
					if err == nil && d.Name() == "device" {
						found = p
					}
					return nil
				})
				if found != "" {
					t.Errorf("a failed login left a device ID at %s", found)
				}
			}
		})
	}
	if got := devices(t, e.acct); strings.Join(got, "\n") != strings.Join(devsBefore, "\n") {
		t.Errorf("failed logins changed the account's devices: %q, was %q", got, devsBefore)
	}
	if got := e.shardCount(); got != shardsBefore {
		t.Errorf("failed logins changed the shards on the providers: %d, was %d", got, shardsBefore)
	}
	// The real account still works.
	if out := e.mustRun("lsd", remoteName+":"); !strings.Contains(string(out), "exists") {
		t.Errorf("lsd with the right password: %q", out)
	}
}
