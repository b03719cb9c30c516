package record

import (
	"encoding/binary"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// KindNode is the kind byte of node records.
const KindNode Kind = 1

// nodeKindName is the key segment of node records.
const nodeKindName = "node"

// Limits of the node record body.
const (
	// MaxOwnerSize bounds the owner account identifier.
	MaxOwnerSize = 64
	// MaxTier is the largest capacity tier (2^MaxTier GiB).
	MaxTier = 40
	// MaxNodeAddrs bounds the number of listen addresses.
	MaxNodeAddrs = 16
	// nodeBodyVersion is the first byte of a node record body.
	nodeBodyVersion = 1
)

// NodeKey returns the DHT key of the node record of id:
// "/jf/node/<peer ID in its canonical text form>". It is the only place such
// keys are built.
func NodeKey(id peer.ID) string {
	return keyFor(nodeKindName, id.String())
}

// NodeRules returns the rules of node records: only the node whose peer ID
// is derived from the signer may write its key, and the body must be a
// valid NodeInfo.
func NodeRules() KindRules {
	return KindRules{
		Kind: KindNode,
		Name: nodeKindName,
		Authorize: func(rest string, signer crypto.PubKey) error {
			id, err := peer.IDFromPublicKey(signer)
			if err != nil {
				return err
			}
			if rest != id.String() {
				return fmt.Errorf("node key %q is not the signer's peer ID %s", rest, id)
			}
			return nil
		},
		CheckBody: func(body []byte) error {
			var n NodeInfo
			return n.Unmarshal(body)
		},
	}
}

// NodeInfo is the body of a node record: who owns the node, how much it
// offers and where it listens.
type NodeInfo struct {
	// Owner identifies the owning account. Until accounts exist it holds
	// placeholder bytes; at most MaxOwnerSize bytes.
	Owner []byte
	// Tier is the offered capacity tier: tier t offers 2^t GiB.
	Tier uint8
	// Addrs are the node's listen addresses, at most MaxNodeAddrs.
	Addrs []ma.Multiaddr
}

// CapacityGiB returns the capacity the tier offers, in GiB.
func (n NodeInfo) CapacityGiB() uint64 { return 1 << n.Tier }

// Marshal encodes n as
//
//	version(1)=1 len(1) owner tier(1) count(1) { len(2) multiaddr }*
func (n NodeInfo) Marshal() ([]byte, error) {
	if len(n.Owner) > MaxOwnerSize {
		return nil, fmt.Errorf("record: node owner of %d bytes exceeds %d: %w", len(n.Owner), MaxOwnerSize, ErrBadBody)
	}
	if n.Tier > MaxTier {
		return nil, fmt.Errorf("record: node tier %d exceeds %d: %w", n.Tier, MaxTier, ErrBadBody)
	}
	if len(n.Addrs) > MaxNodeAddrs {
		return nil, fmt.Errorf("record: %d node addresses exceed %d: %w", len(n.Addrs), MaxNodeAddrs, ErrBadBody)
	}
	out := []byte{nodeBodyVersion, byte(len(n.Owner))}
	out = append(out, n.Owner...)
	out = append(out, n.Tier, byte(len(n.Addrs)))
	for _, a := range n.Addrs {
		b := a.Bytes()
		if len(b) == 0 || len(b) > MaxRecordSize {
			return nil, fmt.Errorf("record: node address of %d bytes: %w", len(b), ErrBadBody)
		}
		out = binary.BigEndian.AppendUint16(out, uint16(len(b)))
		out = append(out, b...)
	}
	return out, nil
}

// Unmarshal decodes a body written by Marshal, rejecting unknown versions,
// out-of-range fields, invalid multiaddrs and trailing bytes.
func (n *NodeInfo) Unmarshal(body []byte) error {
	rd := reader{buf: body}
	if v := rd.byte(); rd.err == nil && v != nodeBodyVersion {
		return fmt.Errorf("record: node body version %d: %w", v, ErrBadBody)
	}
	ownerLen := int(rd.byte())
	if rd.err == nil && ownerLen > MaxOwnerSize {
		return fmt.Errorf("record: node owner of %d bytes: %w", ownerLen, ErrBadBody)
	}
	owner := make([]byte, ownerLen)
	rd.read(owner)
	tier := rd.byte()
	count := int(rd.byte())
	if rd.err != nil {
		return fmt.Errorf("record: node body: %w", rd.err)
	}
	if tier > MaxTier {
		return fmt.Errorf("record: node tier %d: %w", tier, ErrBadBody)
	}
	if count > MaxNodeAddrs {
		return fmt.Errorf("record: %d node addresses: %w", count, ErrBadBody)
	}
	addrs := make([]ma.Multiaddr, 0, count)
	for range count {
		b := rd.field(MaxRecordSize)
		if rd.err != nil {
			return fmt.Errorf("record: node body: %w", rd.err)
		}
		a, err := ma.NewMultiaddrBytes(b)
		if err != nil {
			return fmt.Errorf("record: node address: %v: %w", err, ErrBadBody)
		}
		addrs = append(addrs, a)
	}
	if rd.off != len(body) {
		return fmt.Errorf("record: node body has %d trailing bytes: %w", len(body)-rd.off, ErrBadBody)
	}
	*n = NodeInfo{Owner: owner, Tier: tier, Addrs: addrs}
	return nil
}
