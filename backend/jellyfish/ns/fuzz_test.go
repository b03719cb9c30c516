package ns

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// Fuzz targets of the checkpoint values (keys.go) and of the entries a
// journal record holds. Every encoding here takes varints as
// binary.Uvarint reads them, longer than needed included, so a value that
// decodes is checked to encode to bytes that decode to the same value,
// not to its own bytes.

// FuzzDecodeEntries: decoding never panics and fails with ErrFormat; what
// decodes encodes again to entries that decode the same, and is refused
// without its last byte.
func FuzzDecodeEntries(f *testing.F) {
	for _, es := range [][]Entry{sampleEntries(), nil, sampleEntries()[3:]} {
		b, err := EncodeEntries(es)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
		if len(b) > 1 {
			f.Add(b[:len(b)-1])
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		es, err := DecodeEntries(b)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error without ErrFormat: %v", err)
			}
			return
		}
		again, err := EncodeEntries(es)
		if err != nil {
			t.Fatalf("decoded entries do not encode: %v", err)
		}
		es2, err := DecodeEntries(again)
		if err != nil {
			t.Fatalf("re-encoded entries do not decode: %v", err)
		}
		if !reflect.DeepEqual(normEntries(es), normEntries(es2)) {
			t.Fatal("round trip changed the entries")
		}
		if _, err := DecodeEntries(b[:len(b)-1]); err == nil {
			t.Fatalf("entries %x accepted without their last byte", b)
		}
	})
}

// headsPath is the path FuzzDecodeHeads decodes heads for.
const headsPath = "docs/a.txt"

// FuzzDecodeHeads: decoding a checkpoint value as a path's heads never
// panics, nor does summarizing it; what decodes holds at least one head,
// all of the path, encodes again to heads that decode the same, and is
// refused without its last byte.
func FuzzDecodeHeads(f *testing.F) {
	heads := sampleEntries()
	for i := range heads {
		heads[i].Path = headsPath
	}
	for _, hs := range [][]Entry{heads, heads[1:2]} {
		b, err := EncodeHeads(hs)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
		f.Add(b[:len(b)-1])
	}
	f.Add([]byte{0})
	sum := Summarizer(func(c []byte) int64 { return int64(len(c)) }, func(p *Pack) int64 { return p.Size })
	f.Fuzz(func(t *testing.T, b []byte) {
		sum(EntryKey(headsPath), b)
		hs, err := DecodeHeads(headsPath, b)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error without ErrFormat: %v", err)
			}
			return
		}
		if len(hs) == 0 || len(hs) > maxBases {
			t.Fatalf("%d heads accepted", len(hs))
		}
		for i := range hs {
			if hs[i].Path != headsPath {
				t.Fatalf("head of path %q", hs[i].Path)
			}
		}
		again, err := EncodeHeads(hs)
		if err != nil {
			t.Fatalf("decoded heads do not encode: %v", err)
		}
		hs2, err := DecodeHeads(headsPath, again)
		if err != nil {
			t.Fatalf("re-encoded heads do not decode: %v", err)
		}
		if !reflect.DeepEqual(normEntries(hs), normEntries(hs2)) {
			t.Fatal("round trip changed the heads")
		}
		if _, err := DecodeHeads(headsPath, b[:len(b)-1]); err == nil {
			t.Fatalf("heads %x accepted without their last byte", b)
		}
	})
}

// FuzzDecodePack: decoding a pack record never panics, nor does
// summarizing it or locating its extents; what decodes keeps the pack's
// invariants, encodes again to a record that decodes the same, and is
// refused without its last byte.
func FuzzDecodePack(f *testing.F) {
	for _, p := range samplePacks() {
		b, err := EncodePack(&p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
		f.Add(b[:len(b)-1])
	}
	id := PackID{6}
	sum := Summarizer(func(c []byte) int64 { return int64(len(c)) }, func(p *Pack) int64 { return p.Size })
	f.Fuzz(func(t *testing.T, b []byte) {
		sum(PackKey(id), b)
		p, err := DecodePack(id, b)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error without ErrFormat: %v", err)
			}
			return
		}
		if err := checkPack(p); err != nil || p.ID != id {
			t.Fatalf("decoded pack %s: %v", p.ID, err)
		}
		p.Locate(0, p.Size)
		for _, x := range p.Map {
			if at, ok := p.Locate(x.Off, x.Len); len(p.Ref) > 0 && (!ok || at != x.At) {
				t.Fatalf("extent %+v located at %d, %v", x, at, ok)
			}
		}
		again, err := EncodePack(p)
		if err != nil {
			t.Fatalf("decoded pack does not encode: %v", err)
		}
		p2, err := DecodePack(id, again)
		if err != nil {
			t.Fatalf("re-encoded pack does not decode: %v", err)
		}
		if !reflect.DeepEqual(normPacks([]Pack{*p}), normPacks([]Pack{*p2})) {
			t.Fatal("round trip changed the pack")
		}
		if _, err := DecodePack(id, b[:len(b)-1]); err == nil {
			t.Fatalf("pack %x accepted without its last byte", b)
		}
	})
}

// FuzzDecodeHolders: decoding a shard's holders never panics; what
// decodes is within the limits, encodes again to the same holders, and
// is refused without its last byte.
func FuzzDecodeHolders(f *testing.F) {
	for _, hs := range [][][]byte{{bytes.Repeat([]byte{0x12}, 38), {3}}, nil} {
		b, err := EncodeHolders(hs)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		hs, err := DecodeHolders(b)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error without ErrFormat: %v", err)
			}
			return
		}
		if len(hs) > maxHolders {
			t.Fatalf("%d holders accepted", len(hs))
		}
		for _, h := range hs {
			if len(h) == 0 || len(h) > maxPeerID {
				t.Fatalf("holder of %d bytes accepted", len(h))
			}
		}
		again, err := EncodeHolders(hs)
		if err != nil {
			t.Fatalf("decoded holders do not encode: %v", err)
		}
		hs2, err := DecodeHolders(again)
		if err != nil || !reflect.DeepEqual(hs, hs2) {
			t.Fatalf("round trip changed the holders: %v", err)
		}
		if _, err := DecodeHolders(b[:len(b)-1]); err == nil {
			t.Fatalf("holders %x accepted without their last byte", b)
		}
	})
}
