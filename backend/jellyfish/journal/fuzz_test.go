package journal

import (
	"bytes"
	"errors"
	"testing"

	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish/ns"
)

// FuzzDecodePayload: no record payload crashes decodePayload, and every
// failure is a format error; a payload that decodes encodes again to
// bytes that decode to the same record (varints longer than needed are
// read, so the bytes themselves may change), and is refused without its
// last byte.
func FuzzDecodePayload(f *testing.F) {
	for _, c := range []struct {
		es   []ns.Entry
		data []Data
	}{
		{[]ns.Entry{entry("a", 1), entry("dir/b", 2)}, []Data{{Pack: ns.PackID{9}, Off: 100, Bytes: []byte("packed bytes")}, {Off: 7}}},
		{[]ns.Entry{entry("c", 3)}, nil},
		{nil, nil},
	} {
		b, err := encodePayload(nil, c.es, c.data)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
		f.Add(b[:len(b)-1])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, err := decodePayload(b)
		if err != nil {
			if !errors.Is(err, ErrFormat) && !errors.Is(err, ns.ErrFormat) {
				t.Fatalf("error without ErrFormat: %v", err)
			}
			return
		}
		for _, d := range rec.Data {
			if d.Off < 0 || d.Off > 1<<61 {
				t.Fatalf("data at offset %d accepted", d.Off)
			}
		}
		again, err := encodePayload(nil, rec.Entries, rec.Data)
		if err != nil {
			t.Fatalf("decoded payload does not encode: %v", err)
		}
		rec2, err := decodePayload(again)
		if err != nil {
			t.Fatalf("re-encoded payload does not decode: %v", err)
		}
		// The encoding is canonical, so equal encodings mean equal records.
		again2, err := encodePayload(nil, rec2.Entries, rec2.Data)
		if err != nil || !bytes.Equal(again, again2) {
			t.Fatalf("round trip changed the record: %x, then %x (%v)", again, again2, err)
		}
		if _, err := decodePayload(b[:len(b)-1]); err == nil {
			t.Fatalf("payload %x accepted without its last byte", b)
		}
	})
}
