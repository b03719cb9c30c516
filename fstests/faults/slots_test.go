package faults_test

import (
	"bytes"
	"testing"
)

// TestRepeatedCommandsOneSlot runs short commands one after the other on
// one device slot, as a user or a script does. Every one must read the
// file.
//
// Known bug: a process never closes its client node (the session has no
// Close, and neither Shutdown nor the atexit hook ends the node), so the
// QUIC connections of every process that ended stay open on the providers
// until the QUIC idle timeout; all processes of a slot have the slot's
// peer ID, and the ninth within that time hits the providers' per-peer
// connection limit and cannot reach them. Each process now joins with a
// fresh identity and leaves the network at exit; this keeps it that way.
func TestRepeatedCommandsOneSlot(t *testing.T) {
	e := newEnv(t, 8, nil)
	data := randomBytes(t, 50000) // larger than inline_max: read from shards
	p := writeFile(t, t.TempDir(), "x.bin", data)
	if _, stderr, err := runWith(t, e.conf, "copyto", p, remoteName+":x.bin"); err != nil {
		t.Fatalf("copyto: %v\n%s", err, stderr)
	}
	for i := range 12 {
		out, stderr, err := runWith(t, e.conf, "cat", remoteName+":x.bin")
		if err != nil {
			t.Fatalf("cat %d: %v\n%s", i+1, err, stderr)
		}
		if !bytes.Equal(out, data) {
			t.Fatalf("cat %d read %d bytes that differ from the %d written", i+1, len(out), len(data))
		}
	}
}
