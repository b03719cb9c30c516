package account

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/jellyfish-p2p/jellyfish/p2pnode/record"
)

// Record kinds of this package.
const (
	KindLogin   record.Kind = 2
	KindAccount record.Kind = 3

	loginKindName   = "login"
	accountKindName = "account"
)

// LoginKey returns the DHT key of the login record signed by loginPub:
// "/jf/login/<peer ID of the login key>". The login key comes from username
// and password, so nobody without both can compute this key.
func LoginKey(loginPub crypto.PubKey) (string, error) {
	id, err := peer.IDFromPublicKey(loginPub)
	if err != nil {
		return "", err
	}
	return record.KeyFor(loginKindName, id.String()), nil
}

// AccountKey returns the DHT key of an account's public record:
// "/jf/account/<peer ID of the identity key>".
func AccountKey(identity peer.ID) string {
	return record.KeyFor(accountKindName, identity.String())
}

// signerOwnsKey authorises a record whose key names the signer's peer ID.
func signerOwnsKey(rest string, signer crypto.PubKey) error {
	id, err := peer.IDFromPublicKey(signer)
	if err != nil {
		return err
	}
	if rest != id.String() {
		return fmt.Errorf("key %q is not the signer's peer ID %s", rest, id)
	}
	return nil
}

// LoginRules are the validator rules of login records: only the login key
// may write its record, and the body must parse (its contents are opaque).
// Nodes keep login marks for ever: a mark above 0 at a key with no record
// is how Create tells an expired account from a name never used.
func LoginRules() record.KindRules {
	return record.KindRules{
		Kind: KindLogin, Name: loginKindName, Authorize: signerOwnsKey,
		CheckBody: func(b []byte) error { _, err := parseLoginBody(b); return err },
		KeepMarks: true,
	}
}

// AccountRules are the validator rules of account records: only the
// identity key may write its record.
func AccountRules() record.KindRules {
	return record.KindRules{
		Kind: KindAccount, Name: accountKindName, Authorize: signerOwnsKey,
		CheckBody: func(b []byte) error { var p Public; return p.unmarshal(b) },
	}
}

// RecordKinds returns the rules of every record kind accounts use: login,
// account, head, recovery and keyring records. Every node of the network, server or client,
// must register them besides the node kind that record.NewValidator always
// knows (node.Config.RecordKinds), or it refuses to store and serve them
// and accounts only half work.
func RecordKinds() []record.KindRules {
	return []record.KindRules{LoginRules(), AccountRules(), HeadRules(), RecoveryRules(), KeyringRules()}
}

// Login record states.
const (
	stateActive    byte = 1
	stateTombstone byte = 2
	// stateRotated retires a login record whose account was replaced by a
	// new one with new keys (Manager.FinishRotation): devices that cached
	// the old keys find it and stop using them.
	stateRotated byte = 3
)

const (
	loginAAD        = "jellyfish/account/v1/login\x00"
	loginHeaderSize = 1 + 1 + 4 + 4 + 1
)

// loginBody is a parsed login record body:
//
//	version u8 | state u8 | argon2 time u32 | memory KiB u32 | threads u8 |
//	(active only) nonce [24] | XChaCha20-Poly1305 ciphertext
//
// The ciphertext holds: identity key (libp2p marshalled, u16 length) | root
// key [32] | username (u8 length). Its additional data is loginAAD, the DHT
// key and the header, so a body cannot be moved to another key or have its
// parameters edited.
type loginBody struct {
	version uint8
	state   byte
	kdf     KDFParams
	header  []byte
	nonce   []byte
	sealed  []byte
}

var errTampered = errors.New("account: login record is damaged or was tampered with")

func parseLoginBody(b []byte) (*loginBody, error) {
	if len(b) < loginHeaderSize {
		return nil, fmt.Errorf("%w: body of %d bytes", errTampered, len(b))
	}
	lb := &loginBody{
		version: b[0], state: b[1],
		kdf:    KDFParams{Time: binary.BigEndian.Uint32(b[2:]), MemoryKiB: binary.BigEndian.Uint32(b[6:]), Threads: b[10]},
		header: b[:loginHeaderSize],
	}
	rest := b[loginHeaderSize:]
	switch lb.state {
	case stateTombstone, stateRotated:
		if len(rest) != 0 {
			return nil, fmt.Errorf("%w: tombstone with a payload", errTampered)
		}
	case stateActive:
		if len(rest) < chacha20poly1305.NonceSizeX+chacha20poly1305.Overhead {
			return nil, fmt.Errorf("%w: payload of %d bytes", errTampered, len(rest))
		}
		lb.nonce, lb.sealed = rest[:chacha20poly1305.NonceSizeX], rest[chacha20poly1305.NonceSizeX:]
	default:
		return nil, fmt.Errorf("%w: state %d", errTampered, lb.state)
	}
	return lb, nil
}

func loginHeader(version, state byte, p KDFParams) []byte {
	h := []byte{version, state}
	h = binary.BigEndian.AppendUint32(h, p.Time)
	h = binary.BigEndian.AppendUint32(h, p.MemoryKiB)
	return append(h, p.Threads)
}

// keys are an account's random keys: what the login record protects.
type keys struct {
	identity crypto.PrivKey
	root     RootKey
	user     Username
}

// marshal encodes the keys as the sealed payload of login and recovery
// records: identity key (libp2p marshalled, u16 length) | root key [32] |
// username (u8 length).
func (k *keys) marshal() ([]byte, error) {
	idb, err := crypto.MarshalPrivateKey(k.identity)
	if err != nil {
		return nil, err
	}
	payload := binary.BigEndian.AppendUint16(nil, uint16(len(idb)))
	payload = append(payload, idb...)
	payload = append(payload, k.root[:]...)
	payload = append(payload, byte(len(k.user)))
	return append(payload, k.user...), nil
}

// seal encrypts payload under key with a random nonce: header ‖ nonce ‖
// XChaCha20-Poly1305 ciphertext, with additional data ad.
func seal(key [32]byte, header, payload, ad []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(key[:])
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, chacha20poly1305.NonceSizeX)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	out := append(bytes.Clone(header), nonce...)
	return aead.Seal(out, nonce, payload, ad), nil
}

func sealLogin(dhtKey string, version uint8, p KDFParams, wrap [32]byte, k *keys) ([]byte, error) {
	payload, err := k.marshal()
	if err != nil {
		return nil, err
	}
	defer clear(payload)
	header := loginHeader(version, stateActive, p)
	return seal(wrap, header, payload, loginAD(dhtKey, header))
}

func tombstoneBody(version uint8, p KDFParams) []byte {
	return loginHeader(version, stateTombstone, p)
}

func rotatedBody(version uint8, p KDFParams) []byte {
	return loginHeader(version, stateRotated, p)
}

func loginAD(dhtKey string, header []byte) []byte {
	ad := append([]byte(loginAAD), dhtKey...)
	ad = append(ad, 0)
	return append(ad, header...)
}

func (lb *loginBody) open(dhtKey string, wrap [32]byte) (*keys, error) {
	aead, err := chacha20poly1305.NewX(wrap[:])
	if err != nil {
		return nil, err
	}
	payload, err := aead.Open(nil, lb.nonce, lb.sealed, loginAD(dhtKey, lb.header))
	if err != nil {
		return nil, errTampered
	}
	defer clear(payload)
	return unmarshalKeys(payload)
}

// unmarshalKeys reverses keys.marshal; any mismatch is errTampered.
func unmarshalKeys(payload []byte) (*keys, error) {
	rd := bytes.NewReader(payload)
	var n uint16
	if binary.Read(rd, binary.BigEndian, &n) != nil || int(n) > rd.Len() {
		return nil, errTampered
	}
	idb := make([]byte, n)
	rd.Read(idb)
	identity, err := crypto.UnmarshalPrivateKey(idb)
	if err != nil {
		return nil, fmt.Errorf("%w: identity key: %v", errTampered, err)
	}
	k := &keys{identity: identity}
	if _, err := rd.Read(k.root[:]); err != nil {
		return nil, errTampered
	}
	ul, err := rd.ReadByte()
	if err != nil || int(ul) != rd.Len() {
		return nil, errTampered
	}
	ub := make([]byte, ul)
	rd.Read(ub)
	k.user = Username(ub)
	return k, nil
}

// Public is the body of an account record: what other peers learn about an
// account. The signer of the record is the identity key.
//
//	version u8 (1) | created unix u64 | node count u8 { len u8 | peer ID } |
//	device count u8 { device ID [16] | name len u8 | name }
type Public struct {
	Created int64
	Nodes   []peer.ID
	Devices []Device
}

// Device is one device of an account.
type Device struct {
	ID   DeviceID
	Name string
}

// DeviceID names a device of an account.
type DeviceID [16]byte

// Limits of the account record body.
const (
	MaxNodes   = 32
	MaxDevices = 32
)

func (p *Public) marshal() ([]byte, error) {
	if len(p.Nodes) > MaxNodes || len(p.Devices) > MaxDevices {
		return nil, fmt.Errorf("account: %d nodes, %d devices: at most %d and %d", len(p.Nodes), len(p.Devices), MaxNodes, MaxDevices)
	}
	b := []byte{1}
	b = binary.BigEndian.AppendUint64(b, uint64(p.Created))
	b = append(b, byte(len(p.Nodes)))
	for _, n := range p.Nodes {
		nb := []byte(n)
		if len(nb) > 255 {
			return nil, fmt.Errorf("account: node ID of %d bytes", len(nb))
		}
		b = append(b, byte(len(nb)))
		b = append(b, nb...)
	}
	b = append(b, byte(len(p.Devices)))
	for _, d := range p.Devices {
		if len(d.Name) > 64 {
			return nil, fmt.Errorf("account: device name of %d bytes", len(d.Name))
		}
		b = append(b, d.ID[:]...)
		b = append(b, byte(len(d.Name)))
		b = append(b, d.Name...)
	}
	return b, nil
}

func (p *Public) unmarshal(b []byte) error {
	bad := func(what string) error { return fmt.Errorf("account record body: %s", what) }
	if len(b) < 11 || b[0] != 1 {
		return bad("short or unknown version")
	}
	var np Public
	np.Created = int64(binary.BigEndian.Uint64(b[1:]))
	rd := bytes.NewReader(b[9:])
	count, _ := rd.ReadByte()
	if count > MaxNodes {
		return bad("too many nodes")
	}
	for range count {
		l, err := rd.ReadByte()
		if err != nil || int(l) > rd.Len() {
			return bad("truncated node")
		}
		nb := make([]byte, l)
		rd.Read(nb)
		id, err := peer.IDFromBytes(nb)
		if err != nil {
			return bad("invalid node ID")
		}
		np.Nodes = append(np.Nodes, id)
	}
	count, err := rd.ReadByte()
	if err != nil || count > MaxDevices {
		return bad("device list")
	}
	for range count {
		var d Device
		if n, _ := rd.Read(d.ID[:]); n != len(d.ID) {
			return bad("truncated device")
		}
		l, err := rd.ReadByte()
		if err != nil || int(l) > rd.Len() || l > 64 {
			return bad("truncated device name")
		}
		nb := make([]byte, l)
		rd.Read(nb)
		d.Name = string(nb)
		np.Devices = append(np.Devices, d)
	}
	if rd.Len() != 0 {
		return bad("trailing bytes")
	}
	*p = np
	return nil
}

// ParsePublic decodes the body of an account record.
func ParsePublic(body []byte) (*Public, error) {
	var p Public
	if err := p.unmarshal(body); err != nil {
		return nil, err
	}
	return &p, nil
}
