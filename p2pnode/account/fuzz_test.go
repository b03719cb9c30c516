package account

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"golang.org/x/crypto/chacha20poly1305"
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

// fuzzIdentity returns a fixed identity key, so the seeds are the same
// every run.
func fuzzIdentity(tb testing.TB) crypto.PrivKey {
	tb.Helper()
	k, _, err := crypto.GenerateEd25519Key(bytes.NewReader(bytes.Repeat([]byte{0x3c}, 64)))
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

// FuzzRecoveryBody: any bytes either fail to parse or parse to a state
// the format has (active with a nonce and a ciphertext, revoked with
// nothing after the header), whose parts are the body's bytes in order.
func FuzzRecoveryBody(f *testing.F) {
	id := fuzzIdentity(f)
	body, err := sealRecovery("/jf/recovery/x", [32]byte{1}, &keys{identity: id, root: RootKey{2}, user: alice})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(body)
	f.Add(body[:2+chacha20poly1305.NonceSizeX+chacha20poly1305.Overhead])
	f.Add(body[:2+chacha20poly1305.NonceSizeX+chacha20poly1305.Overhead-1])
	f.Add([]byte{1, recoveryRevoked})
	f.Add([]byte{1, recoveryRevoked, 0})
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		rb, err := parseRecoveryBody(b)
		if err != nil {
			if !errors.Is(err, errTampered) {
				t.Fatalf("error without errTampered: %v", err)
			}
			return
		}
		if len(b) > maxSealedBody || !bytes.Equal(rb.header, b[:2]) || rb.header[0] != 1 || rb.state != b[1] {
			t.Fatalf("body %x parsed with header %x, state %d", b, rb.header, rb.state)
		}
		switch rb.state {
		case recoveryActive:
			if len(rb.nonce) != chacha20poly1305.NonceSizeX || len(rb.sealed) < chacha20poly1305.Overhead {
				t.Fatalf("active body with nonce %d, sealed %d bytes", len(rb.nonce), len(rb.sealed))
			}
		case recoveryRevoked:
			if len(b) != 2 {
				t.Fatalf("revoked body of %d bytes", len(b))
			}
		default:
			t.Fatalf("parsed unknown state %d", rb.state)
		}
		again := append(append(bytes.Clone(rb.header), rb.nonce...), rb.sealed...)
		if !bytes.Equal(again, b) {
			t.Fatalf("body %x reassembles as %x", b, again)
		}
	})
}

// FuzzKeyringBody: a body parseKeyringBody accepts is version 1, holds a
// nonce and at least an authentication tag, and fits maxSealedBody.
func FuzzKeyringBody(f *testing.F) {
	body, err := sealKeyring("/jf/keyring/x", RootKey{3}, &Keyring{Login: fuzzIdentity(f)})
	if err != nil {
		f.Fatal(err)
	}
	empty, err := sealKeyring("/jf/keyring/x", RootKey{3}, &Keyring{})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(body)
	f.Add(empty)
	f.Add(empty[:len(empty)-1])
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := parseKeyringBody(b)
		if err != nil {
			if !errors.Is(err, errTampered) {
				t.Fatalf("error without errTampered: %v", err)
			}
			return
		}
		if !bytes.Equal(got, b) || b[0] != 1 || len(b) < 1+chacha20poly1305.NonceSizeX+chacha20poly1305.Overhead || len(b) > maxSealedBody {
			t.Fatalf("keyring body of %d bytes accepted", len(b))
		}
	})
}

// FuzzParseRecoveryKey: no text crashes ParseRecoveryKey and every
// failure is ErrRecoveryKeyFormat; a key it reads has a text form that
// reads back as the same key, in either case and with spaces for dashes.
func FuzzParseRecoveryKey(f *testing.F) {
	var k RecoveryKey
	for i := range k {
		k[i] = byte(i*7 + 1)
	}
	s := k.String()
	f.Add(s)
	f.Add(strings.ToLower(strings.ReplaceAll(s, "-", " ")))
	f.Add(strings.ReplaceAll(strings.ReplaceAll(s, "0", "O"), "1", "l"))
	f.Add(s[:len(s)-1])
	f.Add(s + "0")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseRecoveryKey(s)
		if err != nil {
			if !errors.Is(err, ErrRecoveryKeyFormat) {
				t.Fatalf("error without ErrRecoveryKeyFormat: %v", err)
			}
			return
		}
		text := k.String()
		for _, in := range []string{text, strings.ToLower(text), strings.ReplaceAll(text, "-", " ")} {
			if got, err := ParseRecoveryKey(in); err != nil || got != k {
				t.Fatalf("%q read as %x; its text %q reads as %x, %v", s, k, in, got, err)
			}
		}
	})
}
