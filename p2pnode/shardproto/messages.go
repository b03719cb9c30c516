package shardproto

import (
	"fmt"
	"time"

	"github.com/jellyfish-p2p/jellyfish/codec"
	"github.com/jellyfish-p2p/jellyfish/p2pnode/shardstore"
)

// request is a decoded request header. Which fields are set depends on
// typ; see the encode methods for each layout.
type request struct {
	typ   byte
	id    codec.ShardID
	size  int64            // put
	off   int64            // get
	n     int64            // get (0: whole shard)
	lease time.Time        // put; renew: the new expiry
	ts    time.Time        // put, delete, renew, challenge: signing time
	ids   []codec.ShardID  // renew
	salt  [32]byte         // challenge
	owner shardstore.Owner // proof: the owner the requester names
	nonce [32]byte         // proof: the requester's fresh nonce
	leafs []int64          // proof
	key   []byte           // put, delete, renew, challenge: owner's marshalled public key
	sig   []byte           // put, delete, renew, challenge: owner's signature
	// repair marks a put sent as msgRepair (typ is then msgPut).
	repair bool
	// report: the holder reported, its receipt and its answer
	// (karma.DeletedPart; id is the shard).
	holder, receipt, answer []byte
	// holdings: what holders keep for the signing account.
	holdings []Holding
	// standingVersion: the standing answer's version asked for (0:
	// version 1, the request without the byte).
	standingVersion byte
}

// encode lays out a request header:
//
//	put:       1 ‖ id ‖ size u64 ‖ lease i64 ‖ ts i64 ‖ key16 ‖ sig16
//	get:       2 ‖ id ‖ off u64 ‖ n u64
//	stat:      3 ‖ id
//	delete:    4 ‖ id ‖ ts i64 ‖ key16 ‖ sig16
//	renew:     5 ‖ until i64 ‖ ts i64 ‖ count u16 ‖ count×id ‖ key16 ‖ sig16
//	challenge: 6 ‖ id ‖ salt[32] ‖ ts i64 ‖ key16 ‖ sig16
//	proof:     7 ‖ id ‖ owner[32] ‖ nonce[32] ‖ count u16 ‖ count×leaf u64
//	usage:     8 ‖ ts i64 ‖ key16 ‖ sig16
//	repair:    9 ‖ the put's fields
//	standing:  10 ‖ ts i64 ‖ key16 ‖ sig16 [‖ answer version u8]
//	report:    11 ‖ id ‖ holder16 ‖ receipt16 ‖ answer16
//	holdings:  12 ‖ ts i64 ‖ count u16 ‖ count×(holder16 ‖ bytes u64) ‖ key16 ‖ sig16
//
// Times are Unix nanoseconds; key16/sig16 carry a 2-byte length.
func (r *request) encode() []byte {
	e := enc{}
	if r.typ == msgPut && r.repair {
		e.u8(msgRepair)
	} else {
		e.u8(r.typ)
	}
	switch r.typ {
	case msgPut:
		e.raw(r.id[:])
		e.u64(r.size)
		e.time(r.lease)
		e.time(r.ts)
		e.bytes16(r.key)
		e.bytes16(r.sig)
	case msgGet:
		e.raw(r.id[:])
		e.u64(r.off)
		e.u64(r.n)
	case msgStat:
		e.raw(r.id[:])
	case msgDelete:
		e.raw(r.id[:])
		e.time(r.ts)
		e.bytes16(r.key)
		e.bytes16(r.sig)
	case msgRenew:
		e.time(r.lease)
		e.time(r.ts)
		e.u16(len(r.ids))
		for _, id := range r.ids {
			e.raw(id[:])
		}
		e.bytes16(r.key)
		e.bytes16(r.sig)
	case msgChallenge:
		e.raw(r.id[:])
		e.raw(r.salt[:])
		e.time(r.ts)
		e.bytes16(r.key)
		e.bytes16(r.sig)
	case msgProof:
		e.raw(r.id[:])
		e.raw(r.owner[:])
		e.raw(r.nonce[:])
		e.u16(len(r.leafs))
		for _, l := range r.leafs {
			e.u64(l)
		}
	case msgUsage, msgStanding:
		e.time(r.ts)
		e.bytes16(r.key)
		e.bytes16(r.sig)
		if r.typ == msgStanding && r.standingVersion > 1 {
			e.u8(r.standingVersion)
		}
	case msgReport:
		e.raw(r.id[:])
		e.bytes16(r.holder)
		e.bytes16(r.receipt)
		e.bytes16(r.answer)
	case msgHoldings:
		e.time(r.ts)
		encodeHoldings(&e, r.holdings)
		e.bytes16(r.key)
		e.bytes16(r.sig)
	}
	return e.b
}

func decodeRequest(b []byte) (*request, error) {
	d := dec{b: b}
	r := &request{typ: d.u8()}
	if r.typ == msgRepair {
		r.typ, r.repair = msgPut, true
	}
	switch r.typ {
	case msgPut:
		r.id = d.id()
		r.size = d.u64()
		r.lease = d.time()
		r.ts = d.time()
		r.key = d.bytes16(maxKey)
		r.sig = d.bytes16(maxKey)
	case msgGet:
		r.id = d.id()
		r.off = d.u64()
		r.n = d.u64()
	case msgStat:
		r.id = d.id()
	case msgDelete:
		r.id = d.id()
		r.ts = d.time()
		r.key = d.bytes16(maxKey)
		r.sig = d.bytes16(maxKey)
	case msgRenew:
		r.lease = d.time()
		r.ts = d.time()
		n := d.u16()
		if n > MaxRenewIDs {
			return nil, fmt.Errorf("%w: %d ids to renew, limit %d", errFrame, n, MaxRenewIDs)
		}
		for i := 0; i < n && d.err == nil; i++ {
			r.ids = append(r.ids, d.id())
		}
		r.key = d.bytes16(maxKey)
		r.sig = d.bytes16(maxKey)
	case msgChallenge:
		r.id = d.id()
		r.salt = d.b32()
		r.ts = d.time()
		r.key = d.bytes16(maxKey)
		r.sig = d.bytes16(maxKey)
	case msgProof:
		r.id = d.id()
		copy(r.owner[:], d.take(shardstore.OwnerSize))
		r.nonce = d.b32()
		n := d.u16()
		if n > MaxProofLeaves {
			return nil, fmt.Errorf("%w: %d proof leaves, limit %d", errFrame, n, MaxProofLeaves)
		}
		for i := 0; i < n && d.err == nil; i++ {
			r.leafs = append(r.leafs, d.u64())
		}
	case msgUsage, msgStanding:
		r.ts = d.time()
		r.key = d.bytes16(maxKey)
		r.sig = d.bytes16(maxKey)
		if r.typ == msgStanding && d.err == nil && len(d.b) > 0 {
			r.standingVersion = d.u8()
		}
	case msgReport:
		r.id = d.id()
		r.holder = d.bytes16(maxIDLen)
		r.receipt = d.bytes16(MaxReportReceipt)
		r.answer = d.bytes16(MaxReportAnswer)
	case msgHoldings:
		r.ts = d.time()
		hs, err := decodeHoldings(&d)
		if err != nil {
			return nil, err
		}
		r.holdings = hs
		r.key = d.bytes16(maxKey)
		r.sig = d.bytes16(maxKey)
	default:
		return nil, fmt.Errorf("%w: unknown message type %d", errFrame, r.typ)
	}
	if err := d.done(); err != nil {
		return nil, err
	}
	return r, nil
}

// response is a decoded response header: status, message, and the fields
// of a successful answer.
//
//	any:       status u8 ‖ message16
//	put OK:    ‖ receipt16
//	get OK:    ‖ shard size u64 ‖ body length u64   (then the body: the whole
//	           shard, or a codec.Prove proof of the range)
//	stat OK:   ‖ size u64 ‖ stored-at i64 ‖ lease i64 ‖ refs u32
//	renew OK:  ‖ count u16 ‖ count×id (the IDs not renewed) ‖ renew receipt16
//	challenge OK: ‖ answer16
//	proof OK:  ‖ proof answer16 (no proofs) ‖ count u16 ‖ count×length u32
//	           (then the proofs, back to back)
//	proof NotFound: ‖ not-found answer16
//	usage OK:  ‖ held u64 ‖ room u64
//
// The signed answers (16: with a 2-byte length) are at most maxAnswer bytes.
type response struct {
	status   Status
	msg      string
	blob     []byte // receipt or signed answer
	size     int64  // get, stat; usage: held
	room     int64  // usage
	bodyLen  int64
	storedAt time.Time
	lease    time.Time
	refs     int64
	ids      []codec.ShardID
	lens     []int64
}

func (r *response) encode(typ byte) []byte {
	e := enc{}
	e.u8(byte(r.status))
	msg := r.msg
	if len(msg) > maxMessage {
		msg = msg[:maxMessage]
	}
	e.bytes16([]byte(msg))
	if r.status == StatusNotFound && typ == msgProof {
		e.bytes16(r.blob)
		return e.b
	}
	if r.status != StatusOK {
		return e.b
	}
	switch typ {
	case msgPut, msgChallenge, msgStanding:
		e.bytes16(r.blob)
	case msgGet:
		e.u64(r.size)
		e.u64(r.bodyLen)
	case msgStat:
		e.u64(r.size)
		e.time(r.storedAt)
		e.time(r.lease)
		e.u32(r.refs)
	case msgRenew:
		e.u16(len(r.ids))
		for _, id := range r.ids {
			e.raw(id[:])
		}
		e.bytes16(r.blob)
	case msgProof:
		e.bytes16(r.blob)
		e.u16(len(r.lens))
		for _, l := range r.lens {
			e.u32(l)
		}
	case msgUsage:
		e.u64(r.size)
		e.u64(r.room)
	}
	return e.b
}

func decodeResponse(typ byte, b []byte) (*response, error) {
	d := dec{b: b}
	r := &response{status: Status(d.u8())}
	r.msg = string(d.bytes16(maxMessage))
	if r.status == StatusNotFound && typ == msgProof && len(d.b) > 0 {
		// Absent, the client treats the answer as unsigned.
		r.blob = d.bytes16(maxAnswer)
	}
	if r.status == StatusOK {
		switch typ {
		case msgPut, msgChallenge, msgStanding:
			r.blob = d.bytes16(maxAnswer)
		case msgGet:
			r.size = d.u64()
			r.bodyLen = d.u64()
		case msgStat:
			r.size = d.u64()
			r.storedAt = d.time()
			r.lease = d.time()
			r.refs = d.u32()
		case msgRenew:
			n := d.u16()
			if n > MaxRenewIDs {
				return nil, fmt.Errorf("%w: %d ids", errFrame, n)
			}
			for i := 0; i < n && d.err == nil; i++ {
				r.ids = append(r.ids, d.id())
			}
			r.blob = d.bytes16(maxAnswer)
		case msgProof:
			r.blob = d.bytes16(maxAnswer)
			n := d.u16()
			if n > MaxProofLeaves {
				return nil, fmt.Errorf("%w: %d proofs", errFrame, n)
			}
			for i := 0; i < n && d.err == nil; i++ {
				r.lens = append(r.lens, d.u32())
			}
		case msgUsage:
			r.size = d.u64()
			r.room = d.u64()
		}
	}
	if err := d.done(); err != nil {
		return nil, err
	}
	return r, nil
}
