package clitest

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestStatusCommand: `jellyfish status` without a remote opens the only
// jellyfish remote of --config (a testnet's account), prints the account's
// allowance and class and says that no node answers at --local-node; with
// --json it prints the same figures as JSON. A config without a jellyfish
// remote is refused with one line.
func TestStatusCommand(t *testing.T) {
	dir := t.TempDir()
	env := []string{"JELLYFISH_PASSWORD=" + password}
	start(t, env, io.Discard, io.Discard, "testnet", "--nodes", "4", "--dir", dir, "--quota-mib", "64", "--account", "alice")
	conf := filepath.Join(dir, "rclone.conf")
	waitFor(t, 60*time.Second, func() bool {
		_, err := os.Stat(conf)
		return err == nil
	})
	nowhere := "http://127.0.0.1:1/status.json"
	so, se, code := run(t, nil, "status", "--config", conf, "--local-node", nowhere)
	if code != 0 {
		t.Fatalf("status: %d\n%s%s", code, so, se)
	}
	t.Logf("jellyfish status:\n%s", so)
	for _, want := range []string{
		"(remote jellyfish:)\n",
		"  free:  ",
		"from 4 of 4 providers asked",
		"class at providers: starter\n",
		"nodes in the account record: 0\n",
		"node on this machine: none (no node answers at " + nowhere + ")\n",
	} {
		if !strings.Contains(so, want) {
			t.Fatalf("status lacks %q", want)
		}
	}
	so, se, code = run(t, nil, "status", "jellyfish:", "--config", conf, "--json", "--local-node", "")
	var rep struct {
		Status struct {
			Allowance struct {
				Free  int64 `json:"free"`
				Total int64 `json:"total"`
				Known bool  `json:"known"`
			} `json:"allowance"`
			Class struct {
				Class string `json:"class"`
			} `json:"class"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(so), &rep); code != 0 || err != nil {
		t.Fatalf("status --json: %d, %v\n%s%s", code, err, so, se)
	}
	if a := rep.Status.Allowance; !a.Known || a.Free <= 0 || a.Total < a.Free || rep.Status.Class.Class != "starter" {
		t.Fatalf("status --json: %+v", rep.Status)
	}
	empty := filepath.Join(t.TempDir(), "rclone.conf")
	if err := os.WriteFile(empty, []byte("[here]\ntype = local\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	so, se, code = run(t, nil, "status", "--config", empty)
	if code != 1 || !strings.Contains(se, "Error: no jellyfish remote in the rclone config") {
		t.Fatalf("status without a jellyfish remote: %d\n%s%s", code, so, se)
	}
}
