package clitest

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/nodestatus"
)

// TestNodeMaintains: `jellyfish node --account-config ... --maintain
// jellyfish:` opens the owner's remote and logs a maintenance round that
// renewed the shards of a file stored before, shows the round on its
// status page, trusts the providers holding the account's shards with
// their test shards (provider.Admission.TrustObservers; the status page
// counts them), then stops cleanly on SIGTERM.
func TestNodeMaintains(t *testing.T) {
	dir := t.TempDir()
	env := []string{"JELLYFISH_PASSWORD=" + password}
	start(t, env, io.Discard, io.Discard, "testnet", "--nodes", "4", "--dir", dir, "--quota-mib", "64", "--account", "alice", "--insecure-test-kdf")
	conf := filepath.Join(dir, "rclone.conf")
	waitFor(t, 60*time.Second, func() bool {
		_, err := os.Stat(conf)
		return err == nil
	})
	src := filepath.Join(t.TempDir(), "big.bin")
	if err := os.WriteFile(src, []byte(strings.Repeat("jellyfish maintains ", 20000)), 0o600); err != nil {
		t.Fatal(err)
	}
	if so, se, code := run(t, nil, "copyto", src, "jellyfish:big.bin", "--config", conf); code != 0 {
		t.Fatalf("copyto: %d\n%s%s", code, so, se)
	}

	// The account's keys, for the node to be linked to it.
	cfgDir := t.TempDir()
	keyEnv := []string{"JELLYFISH_PASSWORD=" + password, "JELLYFISH_ACCOUNT_PASSPHRASE="}
	if so, se, code := run(t, keyEnv, "account", "login", "--bootstrap-file", filepath.Join(dir, "bootstrap.txt"),
		"--insecure-test-kdf", "--config-dir", cfgDir, "--username", "alice"); code != 0 {
		t.Fatalf("account login: %d\n%s%s", code, so, se)
	}

	pr, pw := io.Pipe()
	p := start(t, nil, io.Discard, pw, "node", "--data-dir", t.TempDir(), "--config", conf,
		"--bootstrap-file", filepath.Join(dir, "bootstrap.txt"), "--listen", "/ip4/127.0.0.1/tcp/0",
		"--account-config", filepath.Join(cfgDir, "accounts", "alice.json"),
		"--log-format", "json", "--maintain", "jellyfish:", "--maintain-interval", "1h", "--status-addr", "127.0.0.1:0")
	lines := jsonLines(pr)
	deadline := time.After(90 * time.Second)
	var statusURL string
	var renewed, holders any
	for done, trusted := false, false; !done || !trusted; {
		select {
		case m, ok := <-lines:
			if !ok {
				t.Fatal("node exited before a maintenance round")
			}
			switch m["msg"] {
			case "status page":
				statusURL = m["url"].(string)
			case "maintenance round":
				if m["renewed"] == nil || m["renewed"].(float64) < 1 || m["renewed"] != m["shards"] || m["segments_unrepairable"] != float64(0) {
					t.Fatalf("maintenance round: %v", m)
				}
				t.Logf("%v", m)
				renewed, holders = m["renewed"], m["holders"]
				done = true
			case "observers trusted with test shards":
				if !done || m["providers"] != holders {
					t.Fatalf("%v after a round with %v holders", m, holders)
				}
				trusted = true
			case "maintenance round had errors", "cannot open the remote to maintain; retrying":
				t.Fatalf("%v", m)
			}
		case <-deadline:
			t.Fatal("no maintenance round logged within 90s")
		}
	}
	sn := &statusNode{url: strings.TrimSuffix(statusURL, "/")}
	var round *nodestatus.RoundStatus
	for _, r := range sn.snapshot(t).Rounds {
		if r.Name == "maintenance" {
			round = &r
		}
	}
	if round == nil || round.Runs != 1 || round.Failed != 0 || round.IntervalSeconds != 3600 || round.LastFigures["renewed"] != renewed || round.LastStart == nil {
		t.Fatalf("maintenance round on the status page: %+v", round)
	}
	if st := sn.snapshot(t).Storage; float64(st.TrustedObservers) != holders || !strings.Contains(st.Admission, fmt.Sprintf("the test shards of the %d providers holding the linked account's shards", st.TrustedObservers)) {
		t.Fatalf("trusted observers on the status page: %d (%q); the round had %v holders", st.TrustedObservers, st.Admission, holders)
	}
	p.stop(t, syscall.SIGTERM, 30*time.Second)
	pw.Close()
	for range lines {
	}
}
