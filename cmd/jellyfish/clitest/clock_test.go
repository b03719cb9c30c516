package clitest

import (
	"io"
	"syscall"
	"testing"
	"time"
)

// TestNodeCorrectsItsClock: a node whose clock runs 20 minutes fast (beyond
// the 5-minute signature window) joins a four-node network, compares its
// clock with its peers' and runs on theirs: it logs a correction of about
// 20 minutes back.
func TestNodeCorrectsItsClock(t *testing.T) {
	bootFile := testnetChild(t, 4)
	pr, pw := io.Pipe()
	p := start(t, nil, io.Discard, pw, "node", "--data-dir", t.TempDir(),
		"--bootstrap-file", bootFile, "--listen", "/ip4/127.0.0.1/tcp/0",
		"--log-format", "json", "--tier", "1", "--test-clock-skew", "20m")
	lines := jsonLines(pr)
	deadline := time.After(60 * time.Second)
	for done := false; !done; {
		select {
		case m, ok := <-lines:
			if !ok {
				t.Fatal("node exited before correcting its clock")
			}
			if m["msg"] == "clock corrected by the network's" {
				c, err := time.ParseDuration(m["correction"].(string))
				if err != nil || c > -19*time.Minute || c < -21*time.Minute {
					t.Fatalf("correction line %v, want about -20m", m)
				}
				t.Logf("%v", m)
				done = true
			}
		case <-deadline:
			t.Fatal("no clock correction logged within 60s")
		}
	}
	p.stop(t, syscall.SIGTERM, 30*time.Second)
	pw.Close()
	for range lines {
	}
}
