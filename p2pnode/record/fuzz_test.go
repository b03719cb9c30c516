package record

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
)

// FuzzDecodeRecord feeds arbitrary bytes to the decoder and the validator.
// Neither may panic, and anything Decode accepts must re-encode to exactly
// the same bytes: the format has one encoding per record.
func FuzzDecodeRecord(f *testing.F) {
	priv := seededKey(f, 7)
	_, good := signNode(f, priv, 1, t0.Add(time.Hour))
	f.Add(good)
	f.Add([]byte("JFR\x01"))
	v := newTestValidator(f)
	key := NodeKey(peerOf(f, priv))
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = v.Validate(key, data)
		r, err := Decode(data)
		if err != nil {
			return
		}
		pub, err := crypto.MarshalPublicKey(r.Signer)
		if err != nil {
			t.Fatal(err)
		}
		again, err := encodeUnsigned(r.Kind, r.Seq, uint64(r.Expires.Unix()), pub, r.Body)
		if err != nil {
			t.Fatal(err)
		}
		again = binary.BigEndian.AppendUint16(again, uint16(len(r.Signature)))
		again = append(again, r.Signature...)
		if !bytes.Equal(again, data) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", data, again)
		}
		var n NodeInfo
		if n.Unmarshal(r.Body) == nil {
			if _, err := n.Marshal(); err != nil {
				t.Fatalf("accepted body does not marshal: %v", err)
			}
		}
	})
}
