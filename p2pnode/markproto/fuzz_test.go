package markproto

import (
	"bytes"
	"errors"
	"testing"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/record"
)

// FuzzReadKey: no request crashes readKey or the key check the service
// makes next. A key it accepts is within (0, record.MaxKeySize] bytes, is
// what the request's first bytes encode (the rest is not read) and is
// refused without its last byte; a key record.ParseKey accepts is
// rebuilt from its parts.
func FuzzReadKey(f *testing.F) {
	for _, key := range []string{"/jf/node/12D3KooWGRfTxR3VwdYuUB7X8S7QGVNRfWdYbLX8vJbHK2XvFqbn", "/jf/login/x", "k"} {
		req := encodeRequest(key)
		f.Add(req)
		f.Add(req[:len(req)-1])
		f.Add(append(req, 0xff))
	}
	f.Add([]byte{0, 0})
	f.Add([]byte{0xff, 0xff, '/'})
	f.Fuzz(func(t *testing.T, b []byte) {
		key, err := readKey(bytes.NewReader(b))
		if err != nil {
			return
		}
		if len(key) == 0 || len(key) > record.MaxKeySize {
			t.Fatalf("accepted a key of %d bytes", len(key))
		}
		req := encodeRequest(key)
		if !bytes.HasPrefix(b, req) {
			t.Fatalf("request %x read as key %q", b, key)
		}
		if _, err := readKey(bytes.NewReader(req[:len(req)-1])); err == nil {
			t.Fatalf("key %q read without its last byte", key)
		}
		if pk, err := record.ParseKey(key); err == nil && record.KeyFor(pk.KindName, pk.Rest) != key {
			t.Fatalf("key %q parsed as %+v", key, pk)
		}
	})
}

// FuzzDecodeAnswer: every answer (the input's first answerSize bytes,
// zero-padded) decodes to a mark that re-encodes to its bytes, to
// ErrBadKey for status 1, or to an error for a status the protocol does
// not have.
func FuzzDecodeAnswer(f *testing.F) {
	f.Add(encodeAnswer(statusOK, 0))
	f.Add(encodeAnswer(statusOK, 1<<40+7))
	f.Add(encodeAnswer(statusBadKey, 0))
	f.Add(encodeAnswer(2, 3))
	f.Fuzz(func(t *testing.T, b []byte) {
		var ans [answerSize]byte
		copy(ans[:], b)
		mark, err := decodeAnswer(ans)
		switch {
		case err == nil:
			if again := encodeAnswer(statusOK, mark); !bytes.Equal(again, ans[:]) {
				t.Fatalf("answer %x encodes back as %x", ans, again)
			}
		case ans[0] == statusOK:
			t.Fatalf("status OK refused: %v", err)
		case ans[0] == statusBadKey && !errors.Is(err, ErrBadKey):
			t.Fatalf("status bad key decoded as %v", err)
		case mark != 0:
			t.Fatalf("refused answer with mark %d", mark)
		}
	})
}
