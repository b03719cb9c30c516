package account

import (
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/record"
)

// KindHead is the kind byte of head records: one per device of an account,
// pointing at that device's namespace log. Only the device writes its own
// head, so sequence numbers never conflict.
const KindHead record.Kind = 4

const headKindName = "head"

// HeadKey returns the DHT key of a device's head record:
// "/jf/head/<identity peer ID>/<device ID hex>".
func HeadKey(identity peer.ID, device DeviceID) string {
	return record.KeyFor(headKindName, identity.String()+"/"+hex.EncodeToString(device[:]))
}

// MaxHeadBody bounds a head record's body.
const MaxHeadBody = 3 << 10

// HeadRules are the validator rules of head records: the account's identity
// key signs them (every device of the account holds it), and the key names
// that identity and a well-formed device ID. The body is opaque (encrypted
// by the account) but bounded. The identity is the publisher of its heads.
func HeadRules() record.KindRules {
	return record.KindRules{
		Kind: KindHead, Name: headKindName,
		Authorize: func(rest string, signer crypto.PubKey) error {
			id, dev, ok := strings.Cut(rest, "/")
			if !ok || len(dev) != 2*len(DeviceID{}) {
				return fmt.Errorf("head key %q is not <identity>/<device>", rest)
			}
			if _, err := hex.DecodeString(dev); err != nil || strings.ToLower(dev) != dev {
				return fmt.Errorf("head key %q: device is not lower-case hex", rest)
			}
			return signerOwnsKey(id, signer)
		},
		// One identity writes a head per device: limits on stored
		// records count heads per identity.
		Publisher: func(rest string) string {
			id, _, _ := strings.Cut(rest, "/")
			return id
		},
		CheckBody: func(b []byte) error {
			if len(b) > MaxHeadBody {
				return fmt.Errorf("head body of %d bytes exceeds %d", len(b), MaxHeadBody)
			}
			return nil
		},
	}
}

// VerifyOwned checks a record's signature over key and that the key names
// its signer, as the network's validators do.
func VerifyOwned(key string, raw []byte) (*record.Record, error) {
	rec, err := record.Verify(key, raw)
	if err != nil {
		return nil, err
	}
	pk, err := record.ParseKey(key)
	if err != nil {
		return nil, err
	}
	owner, _, _ := strings.Cut(pk.Rest, "/")
	if err := signerOwnsKey(owner, rec.Signer); err != nil {
		return nil, err
	}
	return rec, nil
}
