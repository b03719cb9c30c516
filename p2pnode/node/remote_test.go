package node_test

import (
	"bytes"
	"testing"
	"time"

	pb "github.com/libp2p/go-libp2p-kad-dht/pb"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/record"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/testnet"
)

func peerID(priv crypto.PrivKey) (peer.ID, error) { return peer.IDFromPrivateKey(priv) }

// TestRemoteNodesRejectBadRecords sends records straight to a remote node
// with raw PUT_VALUE messages, bypassing the sender's own validator, and
// checks with raw GET_VALUE that the remote node refused to store them.
func TestRemoteNodesRejectBadRecords(t *testing.T) {
	nw := testnet.New(t, 3, testnet.Options{})
	ctx := testCtx(t, 30*time.Second)
	sender, target, victim := nw.Node(0), nw.Node(1), nw.Node(2)
	pm, err := pb.NewProtocolMessenger(sender.DHT().MessageSender())
	if err != nil {
		t.Fatal(err)
	}
	rawPut := func(key string, value []byte) error {
		return pm.PutValue(ctx, target.ID(), &recpb.Record{Key: []byte(key), Value: value})
	}
	rawGet := func(key string) []byte {
		t.Helper()
		rec, _, err := pm.GetValue(ctx, target.ID(), key)
		if err != nil {
			t.Fatalf("raw get %q: %v", key, err)
		}
		return rec.GetValue()
	}

	senderKey := record.NodeKey(sender.ID())
	victimKey := record.NodeKey(victim.ID())
	now := time.Now()

	// Control: the raw path does store a good record, so the refusals
	// below are the remote validator's doing.
	good := signNode(t, sender.PrivateKey(), 10, now.Add(time.Hour))
	if err := rawPut(senderKey, good); err != nil {
		t.Fatalf("raw put of a good record: %v", err)
	}
	if !bytes.Equal(rawGet(senderKey), good) {
		t.Fatal("target does not serve the good record")
	}

	// forged: the sender writes the victim's node record with its own key.
	forgedBody, _ := record.NodeInfo{Owner: []byte("thief")}.Marshal()
	forgedRec := record.Record{Kind: record.KindNode, Seq: 99, Expires: now.Add(time.Hour), Body: forgedBody}
	forged, err := forgedRec.Sign(victimKey, sender.PrivateKey())
	if err != nil {
		t.Fatal(err)
	}
	misSigned := bytes.Clone(signNode(t, victim.PrivateKey(), 5, now.Add(time.Hour)))
	misSigned[len(misSigned)-1] ^= 0x55
	older := signNode(t, sender.PrivateKey(), 9, now.Add(2*time.Hour))
	expired := signNode(t, sender.PrivateKey(), 11, now.Add(time.Second))
	oversize := append(bytes.Clone(good), make([]byte, record.MaxRecordSize)...)

	cases := []struct {
		name  string
		key   string
		value []byte
		// want is what the target must still serve at key afterwards.
		want []byte
	}{
		{"forged", victimKey, forged, nil},
		{"mis-signed", victimKey, misSigned, nil},
		{"moved to another key", victimKey, good, nil},
		{"oversize", victimKey, oversize, nil},
		{"replayed older", senderKey, older, good},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := rawPut(c.key, c.value); err == nil {
				t.Error("remote node acknowledged the put")
			}
			if got := rawGet(c.key); !bytes.Equal(got, c.want) {
				t.Fatalf("target serves %d bytes at %s, want %d bytes", len(got), c.key, len(c.want))
			}
		})
	}

	t.Run("expired", func(t *testing.T) {
		// Valid for a second, then refused.
		key := senderKey
		if err := testnet.WaitFor(ctx, func() bool { return time.Now().After(now.Add(time.Second)) }); err != nil {
			t.Fatal(err)
		}
		if err := rawPut(key, expired); err == nil {
			t.Error("remote node acknowledged an expired record")
		}
		if got := rawGet(key); !bytes.Equal(got, good) {
			t.Fatal("expired record replaced the stored one")
		}
	})

}
