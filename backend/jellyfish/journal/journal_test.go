package journal

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/jellyfish-p2p/jellyfish/backend/jellyfish/ns"
)

var (
	key    = bytes.Repeat([]byte{7}, KeySize)
	device = ns.DeviceID{1, 2, 3}
)

func entry(p string, hlc uint64) ns.Entry {
	return ns.Entry{Path: p, Size: int64(len(p)), ModTime: 42, Hash: []byte{1, 2}, Stamp: ns.Stamp{HLC: hlc, Device: device}}
}

func paths(recs []Record) []string {
	var out []string
	for _, r := range recs {
		for _, e := range r.Entries {
			out = append(out, e.Path)
		}
	}
	return out
}

func TestRoundTripRotateDrop(t *testing.T) {
	dir := t.TempDir()
	j, recs, err := Open(dir, key, device)
	if err != nil || len(recs) != 0 {
		t.Fatalf("fresh journal: %v %v", recs, err)
	}
	data := []Data{{Pack: ns.PackID{9}, Off: 100, Bytes: []byte("packed bytes")}}
	if err := j.Append([]ns.Entry{entry("a", 1), entry("b", 2)}, data); err != nil {
		t.Fatal(err)
	}
	first, err := j.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Append([]ns.Entry{entry("c", 3)}, nil); err != nil {
		t.Fatal(err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	// A new process of the device reads both segments back.
	j2, recs, err := Open(dir, key, device)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(paths(recs)); got != "[a b c]" {
		t.Fatalf("recovered %s", got)
	}
	if recs[0].Segment != first || len(recs[0].Data) != 1 || string(recs[0].Data[0].Bytes) != "packed bytes" || recs[0].Data[0].Off != 100 || recs[0].Data[0].Pack != (ns.PackID{9}) {
		t.Fatalf("first record: %+v", recs[0])
	}
	if recs[1].Entries[0].Stamp.HLC != 3 {
		t.Fatalf("entry fields lost: %+v", recs[1].Entries[0])
	}
	// Once they are flushed, the old segments go.
	if err := j2.DropThrough(j2.Segment() - 1); err != nil {
		t.Fatal(err)
	}
	j2.Close()
	if dev, recs, err := Read(dir, key); err != nil || len(recs) != 0 {
		t.Fatalf("after drop: %v %v %v", dev, recs, err)
	}
	if n, _ := Size(dir); n != 0 {
		t.Fatalf("%d bytes left", n)
	}
}

// TestTornTail cuts the last segment at every length: the records wholly
// written before the cut are read, the torn one is not, and nothing fails.
func TestTornTail(t *testing.T) {
	dir := t.TempDir()
	j, _, err := Open(dir, key, device)
	if err != nil {
		t.Fatal(err)
	}
	var ends []int64
	for i := range 3 {
		if err := j.Append([]ns.Entry{entry(fmt.Sprintf("f%d", i), uint64(i+1))}, nil); err != nil {
			t.Fatal(err)
		}
		fi, _ := os.Stat(segName(dir, j.Segment()))
		ends = append(ends, fi.Size())
	}
	name := segName(dir, j.Segment())
	j.Close()
	full, _ := os.ReadFile(name)
	for cut := headerSize; cut <= len(full); cut++ {
		os.WriteFile(name, full[:cut], 0o600)
		_, recs, err := Read(dir, key)
		if err != nil {
			t.Fatalf("cut at %d: %v", cut, err)
		}
		want := 0
		for _, e := range ends {
			if int64(cut) >= e {
				want++
			}
		}
		if len(recs) != want {
			t.Fatalf("cut at %d: %d records, want %d", cut, len(recs), want)
		}
	}
}

func TestDamageAndForeignKeys(t *testing.T) {
	dir := t.TempDir()
	j, _, err := Open(dir, key, device)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		j.Append([]ns.Entry{entry(fmt.Sprintf("f%d", i), uint64(i+1))}, nil)
	}
	name := segName(dir, j.Segment())
	j.Close()
	full, _ := os.ReadFile(name)

	// A bit flipped in the middle record: the first is returned with an
	// error, never the damaged one or anything after it.
	bad := bytes.Clone(full)
	bad[headerSize+(len(full)-headerSize)/2] ^= 1
	os.WriteFile(name, bad, 0o600)
	_, recs, err := Read(dir, key)
	if !errors.Is(err, ErrDamaged) || len(recs) != 1 {
		t.Fatalf("damaged middle: %d records, %v", len(recs), err)
	}

	// Another account's journal is recognised, not misread.
	os.WriteFile(name, full, 0o600)
	if _, _, err := Read(dir, bytes.Repeat([]byte{8}, KeySize)); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("foreign key: %v", err)
	}
	// Open refuses another device's journal.
	if _, _, err := Open(dir, key, ns.DeviceID{4}); err == nil {
		t.Fatal("another device's journal opened")
	}

	// A record copied into another segment does not open there.
	other := filepath.Join(dir, fmt.Sprintf("%016x%s", 99, suffix))
	moved := bytes.Clone(full[:headerSize])
	moved[12] = 99 // segment number in the header
	moved = append(moved, full[headerSize:]...)
	os.WriteFile(other, moved, 0o600)
	if _, _, err := Read(dir, key); !errors.Is(err, ErrDamaged) {
		t.Fatalf("record moved between segments: %v", err)
	}
}

// TestConcurrentAppends checks that every acknowledged append is read back
// once, whatever the interleaving and rotations.
func TestConcurrentAppends(t *testing.T) {
	dir := t.TempDir()
	j, _, err := Open(dir, key, device)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				if err := j.Append([]ns.Entry{entry(fmt.Sprintf("w%d/%d", w, i), 1)}, []Data{{Off: int64(i), Bytes: make([]byte, 1000)}}); err != nil {
					t.Error(err)
				}
				if i%17 == 0 {
					if _, err := j.Rotate(); err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	wg.Wait()
	j.Close()
	_, recs, err := Read(dir, key)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, p := range paths(recs) {
		seen[p]++
	}
	if len(seen) != 400 {
		t.Fatalf("%d distinct paths, want 400", len(seen))
	}
	for p, n := range seen {
		if n != 1 {
			t.Fatalf("%s read %d times", p, n)
		}
	}
}

func BenchmarkAppend4KiB(b *testing.B) {
	j, _, err := Open(b.TempDir(), key, device)
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	data := []Data{{Bytes: make([]byte, 4096)}}
	es := []ns.Entry{entry("some/folder/file.txt", 1)}
	b.SetBytes(4096)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := j.Append(es, data); err != nil {
				b.Fatal(err)
			}
		}
	})
}
