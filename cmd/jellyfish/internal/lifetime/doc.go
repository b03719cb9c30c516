// Package lifetime holds the lifetime simulation: an in-process network
// of real provider nodes whose Jellyfish clock (records, leases, shard
// request signatures, stamps, maintenance) moves a day per tick while
// libp2p keeps real time. Nodes leave for good and new ones join, the
// owner's devices sleep and wake, and the owner's node (when the
// scenario has one) runs its caretaker and maintenance round every day,
// each tick's work finishing before the next. At the end a device that
// never used the account logs in and reads every file back.
//
// Each scenario prints one line,
//
//	lifetime SCENARIO: days=D files=N readable=R lost=L repairs=X repair-bytes=B model-repairs=M gone=G/S
//
// with the durability model's expected repairs for the same parameters
// where it applies. Runs print their seed (JELLYFISH_SIM_SEED replays
// one, as far as the real-time parts allow). `make test` runs 90 days on
// 20 nodes; `make test-long` a year on 40 (JELLYFISH_LIFETIME=long).
package lifetime
