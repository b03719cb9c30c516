// Package shardproto is the Jellyfish shard protocol, /jellyfish/shard/4.0.0:
// how an owner stores shards on a provider node (the holder) and reads,
// renews, deletes and audits them.
//
// Service is the holder side: NewService registers the handler on a
// libp2p host and serves a shardstore.Disk. Client is the owner side: it
// holds a host and the owner's Ed25519 key, and Client.Remote gives the
// shardstore.Store view of one holder.
//
// One request per stream. Every frame is a 4-byte big-endian length and a
// payload of at most MaxHeaderSize; a request header names the operation
// in its first byte, an answer header starts with a Status. Shard bodies
// and proofs follow their header as raw bytes whose length the header
// announced, streamed rather than framed. A put's body follows its header
// at once; a holder that refuses the put, or already holds the shard,
// answers without reading it and the client, which reads the answer while
// it sends, stops within a flow-control window. Puts, deletes, renewals and
// challenges are signed by the owner over the request and the holder's peer
// ID, with a timestamp checked against a window. A challenge, which makes
// the holder hash a whole shard, is answered only to the shard's owners,
// once per shard and owner in 30 days, within a byte budget per address
// and a few at a time; leaf proofs are the frequent audit. The holder signs its answers with
// its host key, so that anyone can check them offline: a put is answered
// with a Receipt, a challenge with a ChallengeAnswer, a renewal with a
// RenewReceipt over the IDs it renewed (a RenewInclusion shows one of
// them), and a leaf-proof request, which carries the requester's fresh
// nonce, with a ProofAnswer over the proofs or a NotFoundAnswer
// (VerifyReceipt, VerifyChallengeAnswer, VerifyRenewInclusion,
// VerifyAuditAnswer). A failed audit is thus the holder's own signed
// statement. Everything a client receives is verified against the shard ID
// before it is returned: whole shards by hashing, ranges and audit leaves
// by their Bao proofs.
//
// Every stream has a deadline, memory for bodies and proofs is reserved in
// the stream's resource-manager scope before it is allocated, and any
// framing or transport error resets the stream. Streams are admitted in
// two phases, each capped in total, per remote address and per peer: a
// stream waiting for its request header holds a pending place, and the
// oldest waiting streams make room for new ones, so half-written headers
// cannot keep anyone out; only a stream whose header decoded (and whose
// owner signature checked) takes a serving slot. A put's space
// reservation is charged to its owner and its remote address, each
// allowed a share of the free space (see shardstore.ContextWithSource),
// and a put whose body stops arriving is reset at once. With WithAdmission
// a put also carries the allowance of its owner's account, which the
// provider's admission policy decides; a put past it is answered
// StatusOverAllowance, whose message tells the user in plain words.
package shardproto
