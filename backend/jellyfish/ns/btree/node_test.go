package btree

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// Known-answer vectors: the stored format must not drift.
var (
	leafVector = []item{
		{key: []byte("ab"), val: []byte("x")},
		{key: []byte("ac"), val: []byte{}},
	}
	leafBytes = []byte("JFbt\x01\x00\x02" +
		"\x00\x02ab\x01x" +
		"\x01\x01c\x00")
	internalVector = []item{
		{key: []byte("a"), val: []byte("R1"), sum: Summary{1, 2, 300, 0}},
		{key: []byte("abc"), val: []byte("R2"), sum: Summary{0, 0, 0, 1 << 63}},
	}
	internalBytes = []byte("JFbt\x01\x01\x02" +
		"\x00\x01a\x02R1\x01\x02\xac\x02\x00" +
		"\x01\x02bc\x02R2\x00\x00\x00\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01")
)

func TestNodeKnownAnswer(t *testing.T) {
	for _, c := range []struct {
		name  string
		level int
		items []item
		want  []byte
	}{
		{"leaf", 0, leafVector, leafBytes},
		{"internal", 1, internalVector, internalBytes},
	} {
		got, err := encodeNode(c.level, c.items)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !bytes.Equal(got, c.want) {
			t.Errorf("%s: encoded\n%q\nwant\n%q", c.name, got, c.want)
		}
		if n := nodeSize(c.items, c.level); n != len(c.want) {
			t.Errorf("%s: nodeSize %d, encoded %d", c.name, n, len(c.want))
		}
		n, err := decodeNode(c.want)
		if err != nil {
			t.Fatalf("%s: decode: %v", c.name, err)
		}
		if n.level != c.level || n.size != len(c.want) || len(n.items) != len(c.items) {
			t.Fatalf("%s: decoded level %d size %d items %d", c.name, n.level, n.size, len(n.items))
		}
		for i, it := range n.items {
			w := c.items[i]
			if !bytes.Equal(it.key, w.key) || !bytes.Equal(it.val, w.val) || it.sum != w.sum {
				t.Errorf("%s: item %d = %q %q %v, want %q %q %v", c.name, i, it.key, it.val, it.sum, w.key, w.val, w.sum)
			}
		}
	}
}

// rawNode builds an encoding by hand, so that the decoder can be shown bytes
// the encoder would never write.
func rawNode(version, level byte, count uint64, body ...[]byte) []byte {
	b := append([]byte("JFbt"), version, level)
	b = binary.AppendUvarint(b, count)
	for _, p := range body {
		b = append(b, p...)
	}
	return b
}

func uv(v uint64) []byte { return binary.AppendUvarint(nil, v) }

// leafItem encodes one leaf item by hand.
func leafItem(shared int, suffix string, value []byte) []byte {
	b := uv(uint64(shared))
	b = append(b, uv(uint64(len(suffix)))...)
	b = append(b, suffix...)
	b = append(b, uv(uint64(len(value)))...)
	return append(b, value...)
}

func TestDecodeRefuses(t *testing.T) {
	long := strings.Repeat("k", MaxKey)
	// MaxNodeKeys/MaxKey+1 keys of MaxKey bytes, sharing all but their
	// last two bytes: a small node whose keys written out are too long.
	var manyKeys [][]byte
	var prev []byte
	for i := 0; i <= MaxNodeKeys/MaxKey; i++ {
		key := append([]byte(long[:MaxKey-2]), byte(i>>8), byte(i))
		shared := sharedPrefix(prev, key)
		manyKeys = append(manyKeys, leafItem(shared, string(key[shared:]), nil))
		prev = key
	}
	cases := []struct {
		name string
		data []byte
	}{
		{"nothing", nil},
		{"bad magic", append([]byte("JFbx"), leafBytes[4:]...)},
		{"version 2", rawNode(2, 0, 1, leafItem(0, "a", nil))},
		{"version 0", rawNode(0, 0, 1, leafItem(0, "a", nil))},
		{"level 33", rawNode(1, 33, 1, leafItem(0, "a", nil))},
		{"empty leaf", rawNode(1, 0, 0)},
		{"empty internal", rawNode(1, 1, 0)},
		{"count too large", rawNode(1, 0, 3, leafItem(0, "a", nil), leafItem(0, "b", nil))},
		{"huge count", rawNode(1, 0, 1<<62, leafItem(0, "a", nil))},
		{"truncated", leafBytes[:len(leafBytes)-1]},
		{"truncated header", leafBytes[:5]},
		{"trailing", append(bytes.Clone(leafBytes), 0)},
		{"overlong uvarint", rawNode(1, 0, 1, []byte{0x80, 0x00, 1, 'a', 0})},
		{"overlong count", append([]byte("JFbt\x01\x00\x81\x00"), leafItem(0, "a", nil)...)},
		{"first shared", rawNode(1, 0, 1, leafItem(1, "a", nil))},
		{"shared over previous key", rawNode(1, 0, 2, leafItem(0, "a", nil), leafItem(2, "b", nil))},
		{"shared not longest", rawNode(1, 0, 2, leafItem(0, "ab", nil), leafItem(0, "ac", nil))},
		{"equal keys", rawNode(1, 0, 2, leafItem(0, "a", nil), leafItem(1, "", nil))},
		{"descending keys", rawNode(1, 0, 2, leafItem(0, "b", nil), leafItem(0, "a", nil))},
		{"prefix after key", rawNode(1, 0, 2, leafItem(0, "ab", nil), leafItem(1, "", nil))},
		{"key too long", rawNode(1, 0, 1, leafItem(0, long+"x", nil))},
		{"value too long", rawNode(1, 0, 1, leafItem(0, "a", make([]byte, MaxValue+1)))},
		{"value cut short", rawNode(1, 0, 1, uv(0), uv(1), []byte("a"), uv(1<<20))},
		{"empty ref", rawNode(1, 1, 1, leafItem(0, "a", nil), []byte{0, 0, 0, 0})},
		{"ref too long", rawNode(1, 1, 1, leafItem(0, "a", make([]byte, MaxRef+1)), []byte{0, 0, 0, 0})},
		{"summary missing", rawNode(1, 1, 1, leafItem(0, "a", []byte("ref")), []byte{0, 0, 0})},
		{"node too big", rawNode(1, 0, 1, leafItem(0, "a", make([]byte, MaxNodeBytes)))},
		{"keys too long in total", rawNode(1, 0, uint64(len(manyKeys)), manyKeys...)},
	}
	for _, c := range cases {
		if n, err := decodeNode(c.data); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: decoded to %v, err %v; want ErrFormat", c.name, n, err)
		}
	}
	// Right at the limits is fine.
	ok := rawNode(1, 0, 1, leafItem(0, long, make([]byte, MaxValue)))
	if _, err := decodeNode(ok); err != nil {
		t.Errorf("node at the key and value limits: %v", err)
	}
	if _, err := decodeNode(rawNode(1, 0, uint64(len(manyKeys)-1), manyKeys[:len(manyKeys)-1]...)); err != nil {
		t.Errorf("node at the key total limit: %v", err)
	}
}

func TestEncodeRefuses(t *testing.T) {
	long := make([]byte, MaxKey+1)
	cases := []struct {
		name  string
		level int
		items []item
	}{
		{"empty", 0, nil},
		{"level", MaxLevel + 1, leafVector},
		{"key", 0, []item{{key: long}}},
		{"value", 0, []item{{key: []byte("a"), val: make([]byte, MaxValue+1)}}},
		{"order", 0, []item{{key: []byte("b")}, {key: []byte("a")}}},
		{"duplicate", 0, []item{{key: []byte("a")}, {key: []byte("a")}}},
		{"empty ref", 1, []item{{key: []byte("a")}}},
		{"ref", 1, []item{{key: []byte("a"), val: make([]byte, MaxRef+1)}}},
		{"size", 1, func() []item {
			var items []item
			for i := 0; i < 70; i++ {
				items = append(items, item{key: []byte{byte(i)}, val: make([]byte, MaxRef)})
			}
			return items
		}()},
	}
	for _, c := range cases {
		if _, err := encodeNode(c.level, c.items); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: err %v, want ErrFormat", c.name, err)
		}
	}
}

func FuzzDecodeNode(f *testing.F) {
	f.Add(leafBytes)
	f.Add(internalBytes)
	f.Add(leafBytes[:len(leafBytes)-2])
	f.Fuzz(func(t *testing.T, data []byte) {
		n, err := decodeNode(data)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error without ErrFormat: %v", err)
			}
			return
		}
		again, err := encodeNode(n.level, n.items)
		if err != nil {
			t.Fatalf("decoded node does not encode: %v", err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("re-encoded\n%q\nfrom\n%q", again, data)
		}
		if nodeSize(n.items, n.level) != len(data) {
			t.Fatalf("nodeSize %d of a %d-byte node", nodeSize(n.items, n.level), len(data))
		}
	})
}
