package clitest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// bin is the jellyfish binary built by TestMain.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "jellyfish-clitest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "jellyfish")
	build := exec.Command("go", "build", "-tags", "noselfupdate", "-o", bin, "github.com/jellyfish-p2p/jellyfish/cmd/jellyfish")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build jellyfish:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const password = "orbit lantern gravel mosaic"

// proc is a running jellyfish child process.
type proc struct {
	cmd  *exec.Cmd
	done chan error
}

func start(t *testing.T, env []string, stdout, stderr io.Writer, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Env = append(cmd.Env, "HOME="+t.TempDir())
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// stop sends sig and requires exit status 0 within limit.
func (p *proc) stop(t *testing.T, sig os.Signal, limit time.Duration) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("after %v: exit %v, want 0", sig, err)
		}
	case <-time.After(limit):
		t.Fatalf("still running %v after %v", limit, sig)
	}
}

// TestNodeDaemon runs `jellyfish node` as a child process: it prints a
// structured startup line with its peer ID and addresses, says that it
// starts a new network, runs shard collection rounds at
// --collect-interval with --collect-grace, and exits 0 soon after SIGTERM.
func TestNodeDaemon(t *testing.T) {
	pr, pw := io.Pipe()
	p := start(t, nil, io.Discard, pw, "node", "--data-dir", t.TempDir(),
		"--listen", "/ip4/127.0.0.1/tcp/0", "--listen", "/ip4/127.0.0.1/udp/0/quic-v1", "--log-format", "json", "--tier", "2",
		"--collect-grace", "48h", "--collect-interval", "200ms")
	lines := jsonLines(pr)
	deadline := time.After(30 * time.Second)
	var running, firstNode, collected bool
	for !running || !firstNode || !collected {
		select {
		case m, ok := <-lines:
			if !ok {
				t.Fatal("node exited before its startup line")
			}
			switch m["msg"] {
			case "jellyfish node running":
				running = true
				peer, _ := m["peer"].(string)
				addrs, _ := m["addrs"].([]any)
				if !strings.HasPrefix(peer, "12D3Koo") || len(addrs) < 2 || m["tier"] != float64(2) {
					t.Fatalf("startup line %v", m)
				}
				for _, a := range addrs {
					if s, _ := a.(string); !strings.HasSuffix(s, "/p2p/"+peer) {
						t.Fatalf("address %v lacks /p2p/%s", a, peer)
					}
				}
			case "shard collection":
				collected = true
				if m["grace"] != "48h0m0s" || m["shards_removed"] != float64(0) || m["bytes_freed"] != float64(0) {
					t.Fatalf("collection line %v", m)
				}
			default:
				if s, _ := m["msg"].(string); strings.Contains(s, "no bootstrap peers configured") {
					firstNode = true
				}
			}
		case <-deadline:
			t.Fatalf("no startup line within 30s (running=%v first-node message=%v collection round=%v)", running, firstNode, collected)
		}
	}
	p.stop(t, syscall.SIGTERM, 10*time.Second)
	pw.Close()
	for range lines {
	}
}

// jsonLines decodes the JSON log lines read from r (a node's structured
// log) onto the channel it returns, which is closed when r ends; lines that
// are not JSON objects are skipped.
func jsonLines(r io.Reader) <-chan map[string]any {
	lines := make(chan map[string]any, 64)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				lines <- m
			}
		}
	}()
	return lines
}

// run runs a jellyfish command to completion and returns its output and
// exit code.
func run(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("%v: %v", args, err)
	}
	return o.String(), e.String(), code
}

// TestTestnetAndAccounts runs `jellyfish testnet --nodes 4` as a child
// process, waits for its bootstrap.txt, then drives the account commands
// against it as separate processes: create, login (device cache 0600 in a
// 0700 folder), show (identity, this device, no allowance yet), a wrong
// password (exit 1, one clear line), a duplicate create, passwd, and the
// old password refused afterwards. SIGINT then stops the testnet with
// exit 0.
func TestTestnetAndAccounts(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	tn := start(t, nil, &lockedWriter{w: &out}, io.Discard, "testnet", "--nodes", "4", "--dir", dir, "--quota-mib", "64")
	bootFile := filepath.Join(dir, "bootstrap.txt")
	var lines []string
	waitFor(t, 60*time.Second, func() bool {
		b, err := os.ReadFile(bootFile)
		lines = strings.Fields(string(b))
		return err == nil && len(lines) == 4
	})
	for _, l := range lines {
		if !strings.HasPrefix(l, "/ip4/127.0.0.1/") || !strings.Contains(l, "/p2p/12D3Koo") {
			t.Fatalf("bootstrap line %q", l)
		}
	}

	cfg := t.TempDir()
	common := []string{"--bootstrap-file", bootFile, "--insecure-test-kdf", "--config-dir", cfg, "--username", "alice"}
	env := []string{"JELLYFISH_PASSWORD=" + password}
	acct := func(env []string, args ...string) (string, string, int) {
		return run(t, env, append(append([]string{"account"}, args...), common...)...)
	}

	so, se, code := acct(env, "create")
	if code != 0 || !strings.Contains(so, "created account \"alice\"") {
		t.Fatalf("create: %d\n%s%s", code, so, se)
	}
	id := field(so, "account id: ")
	so, se, code = acct(env, "login")
	if code != 0 || !strings.Contains(so, id) {
		t.Fatalf("login: %d\n%s%s", code, so, se)
	}
	cache := filepath.Join(cfg, "accounts", "alice.json")
	checkMode(t, cache, 0o600)
	checkMode(t, filepath.Dir(cache), 0o700)

	so, se, code = acct(nil, "show")
	if code != 0 || !strings.Contains(so, "account id: "+id) || !strings.Contains(so, "(this device)") || !strings.Contains(so, "allowance:  each provider computes it") {
		t.Fatalf("show: %d\n%s%s", code, so, se)
	}
	c := readCache(t, cache)
	if c["version"] != float64(2) || c["verifier"] == nil || c["account_id"] != id || c["device_id"] == nil {
		t.Fatalf("device cache: %v", c)
	}
	// A version 1 cache (no verifier, no login key) still serves show,
	// and the next login rewrites it as version 2 with the same device.
	deviceID := c["device_id"]
	c["version"] = 1
	for _, k := range []string{"verifier", "login_key", "insecure_test_kdf"} {
		delete(c, k)
	}
	b, _ := json.MarshalIndent(c, "", "  ")
	if err := os.WriteFile(cache, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if so, se, code = acct(nil, "show"); code != 0 || !strings.Contains(so, "(this device)") {
		t.Fatalf("show with a version 1 cache: %d\n%s%s", code, so, se)
	}
	if so, se, code = acct(env, "login"); code != 0 {
		t.Fatalf("login over a version 1 cache: %d\n%s%s", code, so, se)
	}
	if c = readCache(t, cache); c["version"] != float64(2) || c["device_id"] != deviceID || c["verifier"] == nil {
		t.Fatalf("device cache after login: %v", c)
	}

	wrong := []string{"JELLYFISH_PASSWORD=granite velvet oyster 42"}
	so, se, code = acct(wrong, "login")
	if code != 1 || strings.TrimSpace(se) != "Error: wrong username or password (or no such account, or one made by a newer version of Jellyfish)" || so != "" {
		t.Fatalf("wrong password: exit %d, stderr %q, stdout %q", code, se, so)
	}
	if _, se, code = acct(env, "create"); code != 1 || !strings.Contains(se, "already exists") {
		t.Fatalf("duplicate create: exit %d, %q", code, se)
	}
	pwFile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwFile, []byte(password+"\n"), 0o600)
	newEnv := []string{"JELLYFISH_PASSWORD=", "JELLYFISH_NEW_PASSWORD=quiet harbor ninety kettle"}
	if so, se, code = acct(newEnv, "passwd", "--password-file", pwFile); code != 0 {
		t.Fatalf("passwd: %d\n%s%s", code, so, se)
	}
	if _, se, code = acct(env, "login"); code != 1 || !strings.Contains(se, "wrong username or password") {
		t.Fatalf("old password after passwd: exit %d, %q", code, se)
	}
	if so, se, code = acct([]string{"JELLYFISH_PASSWORD=quiet harbor ninety kettle"}, "login"); code != 0 || !strings.Contains(so, id) {
		t.Fatalf("new password: %d\n%s%s", code, so, se)
	}
	if _, se, code = run(t, []string{"JELLYFISH_PASSWORD="}, "account", "login", "--username", "alice", "--bootstrap-file", bootFile); code != 1 || !strings.Contains(se, "JELLYFISH_PASSWORD") {
		t.Fatalf("no password and no terminal: exit %d, %q", code, se)
	}

	tn.stop(t, syscall.SIGINT, 15*time.Second)
	if !strings.Contains(out.String(), "stopping the testnet") {
		t.Fatalf("testnet output:\n%s", out.String())
	}
}

func readCache(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func field(out, prefix string) string {
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, prefix); ok {
			return strings.TrimSpace(v)
		}
	}
	return "<missing " + prefix + ">"
}

func checkMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != want {
		t.Fatalf("%s: mode %v, want %v", path, fi.Mode().Perm(), want)
	}
}

// waitFor polls cond every 50 ms until it holds or limit passes.
func waitFor(t *testing.T, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestNodeRefusesOpenKeyFile: a node linked to an account holds every key
// of it; it refuses a key file others can read, before it starts anything.
func TestNodeRefusesOpenKeyFile(t *testing.T) {
	keys := filepath.Join(t.TempDir(), "alice.json")
	if err := os.WriteFile(keys, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := run(t, nil, "node", "--data-dir", t.TempDir(), "--listen", "/ip4/127.0.0.1/tcp/0", "--account-config", keys)
	if code == 0 || !strings.Contains(stderr, "readable by others") || !strings.Contains(stderr, "chmod 600") {
		t.Fatalf("node with a key file of mode 0644: exit %d\n%s", code, stderr)
	}
}
