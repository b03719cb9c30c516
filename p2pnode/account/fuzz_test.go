package account

import (
	"bytes"
	"testing"
)

// FuzzLoginBody: any bytes either fail to parse or parse to a state the
// record format has (active with a nonce and ciphertext, tombstone or
// rotated with nothing after the header), and the header is the first
// bytes of the body.
func FuzzLoginBody(f *testing.F) {
	p := KDFParams{Time: 3, MemoryKiB: 64 * 1024, Threads: 4}
	f.Add(tombstoneBody(VersionV1, p))
	f.Add(rotatedBody(VersionV1, p))
	f.Add(append(loginHeader(VersionV1, stateActive, p), make([]byte, 24+16+40)...))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		lb, err := parseLoginBody(b)
		if err != nil {
			return
		}
		if !bytes.HasPrefix(b, lb.header) || len(lb.header) != loginHeaderSize {
			t.Fatalf("header %x is not the body's first %d bytes", lb.header, loginHeaderSize)
		}
		switch lb.state {
		case stateActive:
			if len(lb.nonce) != 24 || len(lb.sealed) < 16 {
				t.Fatalf("active body with nonce %d, sealed %d bytes", len(lb.nonce), len(lb.sealed))
			}
		case stateTombstone, stateRotated:
			if len(b) != loginHeaderSize {
				t.Fatalf("state %d with %d bytes after the header", lb.state, len(b)-loginHeaderSize)
			}
		default:
			t.Fatalf("parsed unknown state %d", lb.state)
		}
	})
}

// FuzzPublic: an account record body that parses marshals back to the
// same bytes.
func FuzzPublic(f *testing.F) {
	seed, err := (&Public{Created: 1_800_000_000, Devices: []Device{{ID: DeviceID{1, 2, 3}, Name: "device-010203"}}}).marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var p Public
		if p.unmarshal(b) != nil {
			return
		}
		again, err := p.marshal()
		if err != nil {
			t.Fatalf("a parsed body does not marshal: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("body %x marshals back as %x", b, again)
		}
	})
}
