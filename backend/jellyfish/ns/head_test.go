package ns

import (
	"bytes"
	"errors"
	"os"
	"reflect"
	"testing"
)

// TestHeadVersion1 opens a head body written by the version 1 encoder.
func TestHeadVersion1(t *testing.T) {
	body, err := os.ReadFile("testdata/v1-head.bin")
	if err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile("testdata/v1-head.key")
	if err != nil {
		t.Fatal(err)
	}
	h, err := OpenHead(key, "/jf/head/x/y", body)
	if err != nil {
		t.Fatal(err)
	}
	want := &Head{Version: 1, Device: DeviceID{1, 2, 3}, BatchSeq: 40, HLC: 123456789, Tip: []byte{1, 2, 3}, Checkpoint: []byte{4, 5}, CPSeq: 32, GCSeq: 10}
	if !reflect.DeepEqual(h, want) {
		t.Fatalf("got %+v, want %+v", h, want)
	}
	if _, err := OpenHead(key, "/jf/head/x/z", body); !errors.Is(err, ErrHeadKey) {
		t.Fatalf("moved to another key: %v", err)
	}
}

// TestHeadVersion2 opens a head body written by the version 2 encoder
// (no seen time).
func TestHeadVersion2(t *testing.T) {
	body, err := os.ReadFile("testdata/v2-head.bin")
	if err != nil {
		t.Fatal(err)
	}
	key, err := os.ReadFile("testdata/v1-head.key")
	if err != nil {
		t.Fatal(err)
	}
	h, err := OpenHead(key, "/jf/head/x/y", body)
	if err != nil {
		t.Fatal(err)
	}
	want := &Head{Version: 2, Device: DeviceID{1, 2, 3}, BatchSeq: 40, HLC: 123456789, Tip: []byte{1, 2, 3}}
	if !reflect.DeepEqual(h, want) {
		t.Fatalf("got %+v, want %+v", h, want)
	}
}

func TestHeadRoundTrip(t *testing.T) {
	key := bytes.Repeat([]byte{3}, HeadKeySize)
	h := &Head{Version: HeadVersion, Device: DeviceID{9}, BatchSeq: 1 << 40, HLC: 77, Seen: 1_800_000_000, Tip: bytes.Repeat([]byte{5}, 3000)}
	body, err := SealHead(key, "/jf/head/a/b", h)
	if err != nil {
		t.Fatal(err)
	}
	got, err := OpenHead(key, "/jf/head/a/b", body)
	if err != nil || !reflect.DeepEqual(got, h) {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	// The body's size depends only on the tip reference, never on the
	// namespace: 24 nonce + 16 tag + 43 fixed + the reference.
	if len(body) != 24+16+43+3000 {
		t.Fatalf("head body of %d bytes", len(body))
	}
	// A device without batches publishes a head too: when it was seen.
	idle := &Head{Version: HeadVersion, Device: DeviceID{8}, Seen: 1_800_000_000}
	if body, err := SealHead(key, "/jf/head/a/c", idle); err != nil {
		t.Fatal(err)
	} else if got, err := OpenHead(key, "/jf/head/a/c", body); err != nil || !reflect.DeepEqual(got, idle) {
		t.Fatalf("head without batches: %+v %v", got, err)
	}
	if _, err := SealHead(key, "k", &Head{Tip: make([]byte, maxHeadRef+1)}); err == nil {
		t.Fatal("oversized reference sealed")
	}
	if _, err := OpenHead(bytes.Repeat([]byte{4}, HeadKeySize), "/jf/head/a/b", body); !errors.Is(err, ErrHeadKey) {
		t.Fatalf("wrong key: %v", err)
	}
}
