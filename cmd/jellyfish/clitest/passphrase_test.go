package clitest

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestNodeEncryptedKeyFile: `account login --passphrase-file` writes the
// device cache with its keys sealed (version 3; show still reads it
// without the passphrase). `jellyfish node --account-config` on it exits
// 1 with a message naming the ways to give the passphrase when it has
// none, refuses a passphrase file others can read and a wrong
// passphrase, and with --account-passphrase-file starts, logs the
// account, lists itself in the account record with the sealed keys and
// runs a caretaker round, never logging the passphrase. `account
// passphrase` removes the passphrase (the node then refuses the
// passphrase it is still given) and sets a new one, which `account
// devices` and a second login need.
func TestNodeEncryptedKeyFile(t *testing.T) {
	bootFile := testnetChild(t, 4)
	cfg := t.TempDir()
	common := []string{"--bootstrap-file", bootFile, "--insecure-test-kdf", "--config-dir", cfg, "--username", "alice"}
	noPass := []string{"JELLYFISH_PASSWORD=" + password, "JELLYFISH_ACCOUNT_PASSPHRASE=", "JELLYFISH_NEW_ACCOUNT_PASSPHRASE="}
	acct := func(env []string, args ...string) (string, string, int) {
		return run(t, append(append([]string(nil), noPass...), env...), append(append([]string{"account"}, args...), common...)...)
	}
	so, se, code := acct(nil, "create")
	if code != 0 {
		t.Fatalf("create: %d\n%s%s", code, so, se)
	}
	id := field(so, "account id: ")

	const passphrase = "harbor violet seventy quill"
	secrets := t.TempDir()
	passFile := filepath.Join(secrets, "passphrase")
	if err := os.WriteFile(passFile, []byte(passphrase+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	so, se, code = acct(nil, "login", "--passphrase-file", passFile)
	if code != 0 || !strings.Contains(so, "encrypted under the passphrase") {
		t.Fatalf("login --passphrase-file: %d\n%s%s", code, so, se)
	}
	cache := filepath.Join(cfg, "accounts", "alice.json")
	checkMode(t, cache, 0o600)
	c := readCache(t, cache)
	if c["version"] != float64(3) || c["account_id"] != id || c["identity_key"] != nil || c["root_key"] != nil ||
		c["verifier"] != nil || c["sealed"] == nil || c["passphrase"] == nil {
		t.Fatalf("encrypted device cache: %v", c)
	}
	if so, se, code = acct(nil, "show"); code != 0 || !strings.Contains(so, "account id: "+id) || !strings.Contains(so, "(this device)") {
		t.Fatalf("show of an encrypted cache: %d\n%s%s", code, so, se)
	}

	node := func(env []string, args ...string) (string, int) {
		_, stderr, code := run(t, append(append([]string(nil), noPass...), env...), append([]string{"node", "--data-dir", t.TempDir(),
			"--listen", "/ip4/127.0.0.1/tcp/0", "--bootstrap-file", bootFile, "--account-config", cache}, args...)...)
		return stderr, code
	}
	// No passphrase, no terminal: one clear line saying how to give it.
	se, code = node(nil)
	if code != 1 || !strings.Contains(se, "is encrypted") || !strings.Contains(se, "--account-passphrase-file") ||
		!strings.Contains(se, "JELLYFISH_ACCOUNT_PASSPHRASE") || strings.Count(strings.TrimSpace(se), "\n") != 0 {
		t.Fatalf("node without the passphrase: exit %d\n%s", code, se)
	}
	open := filepath.Join(secrets, "open-passphrase")
	if err := os.WriteFile(open, []byte(passphrase+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if se, code = node(nil, "--account-passphrase-file", open); code != 1 || !strings.Contains(se, "readable by others") {
		t.Fatalf("node with a passphrase file of mode 0644: exit %d\n%s", code, se)
	}
	if se, code = node([]string{"JELLYFISH_ACCOUNT_PASSPHRASE=granite velvet oyster"}); code != 1 || !strings.Contains(se, "wrong passphrase") {
		t.Fatalf("node with a wrong passphrase: exit %d\n%s", code, se)
	}

	// The passphrase file: the node runs for the account.
	pr, pw := io.Pipe()
	var (
		mu  sync.Mutex
		all strings.Builder
	)
	p := start(t, noPass, io.Discard, pw, "node", "--data-dir", t.TempDir(), "--listen", "/ip4/127.0.0.1/tcp/0",
		"--bootstrap-file", bootFile, "--account-config", cache, "--account-passphrase-file", passFile, "--log-format", "json")
	lines := make(chan map[string]any, 64)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			mu.Lock()
			all.WriteString(sc.Text() + "\n")
			mu.Unlock()
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				lines <- m
			}
		}
	}()
	var nodeID string
	deadline := time.After(60 * time.Second)
	for running, listed, cared := false, false, false; !running || !listed || !cared; {
		select {
		case m, ok := <-lines:
			if !ok {
				t.Fatal("node exited before it listed itself in the account record")
			}
			switch m["msg"] {
			case "jellyfish node running":
				running = true
				nodeID, _ = m["peer"].(string)
				if m["account"] != "alice "+id {
					t.Fatalf("startup line %v", m)
				}
			case "node listed in the account record":
				listed = true
			case "caretaker round":
				cared = true
				if m["errors"] != float64(0) {
					t.Fatalf("caretaker round %v", m)
				}
			case "could not add this node to the account record", "account record not readable; node not listed in it", "no caretaker for the account's records":
				t.Fatalf("%v", m)
			}
		case <-deadline:
			t.Fatal("the node did not list itself in the account record and run a caretaker round within 60s")
		}
	}
	so, se, code = acct(nil, "show")
	if code != 0 || !strings.Contains(so, "nodes:      1") || !strings.Contains(so, nodeID) {
		t.Fatalf("show after the node linked: %d\n%s%s", code, so, se)
	}
	p.stop(t, syscall.SIGTERM, 30*time.Second)
	pw.Close()
	for range lines {
	}
	mu.Lock()
	if strings.Contains(all.String(), passphrase) {
		t.Fatal("the node logged the passphrase")
	}
	mu.Unlock()

	// Without the passphrase the node refuses the passphrase it is given.
	if so, se, code = acct(nil, "passphrase", "--remove", "--passphrase-file", passFile); code != 0 || !strings.Contains(so, "removed") {
		t.Fatalf("passphrase --remove: %d\n%s%s", code, so, se)
	}
	if c = readCache(t, cache); c["version"] != float64(2) || c["identity_key"] == nil || c["sealed"] != nil {
		t.Fatalf("device cache after removing the passphrase: %v", c)
	}
	if se, code = node(nil, "--account-passphrase-file", passFile); code != 1 || !strings.Contains(se, "not encrypted, yet a passphrase was given") {
		t.Fatalf("node with a passphrase for a clear key file: exit %d\n%s", code, se)
	}

	// A new passphrase from the environment; devices and login need it.
	const newPassphrase = "lantern orchid basalt ninety"
	if so, se, code = acct([]string{"JELLYFISH_NEW_ACCOUNT_PASSPHRASE=" + newPassphrase}, "passphrase", cache); code != 0 || !strings.Contains(so, "now encrypted") {
		t.Fatalf("passphrase FILE: %d\n%s%s", code, so, se)
	}
	if _, se, code = acct(nil, "devices"); code != 1 || !strings.Contains(se, "JELLYFISH_ACCOUNT_PASSPHRASE") {
		t.Fatalf("devices without the passphrase: exit %d\n%s", code, se)
	}
	if so, se, code = acct([]string{"JELLYFISH_ACCOUNT_PASSPHRASE=" + newPassphrase}, "devices"); code != 0 || !strings.Contains(so, "(this device)") {
		t.Fatalf("devices with the passphrase: %d\n%s%s", code, so, se)
	}
	if _, se, code = acct([]string{"JELLYFISH_ACCOUNT_PASSPHRASE=" + passphrase}, "login"); code != 1 || !strings.Contains(se, "wrong passphrase") {
		t.Fatalf("login over an encrypted cache with the old passphrase: exit %d\n%s", code, se)
	}
	if so, se, code = acct([]string{"JELLYFISH_ACCOUNT_PASSPHRASE=" + newPassphrase}, "login"); code != 0 || !strings.Contains(so, "encrypted under the passphrase") {
		t.Fatalf("login over an encrypted cache: %d\n%s%s", code, so, se)
	}
	if c = readCache(t, cache); c["version"] != float64(3) {
		t.Fatalf("device cache after a second login: %v", c)
	}
}
