// Package faults holds fault-injection tests of Jellyfish: real provider
// nodes on 127.0.0.1 (fstests/jftest), the jellyfish binary run as child
// processes that are killed with SIGKILL or interrupted with SIGINT and
// SIGTERM at random moments or at exact steps of a flush (a tap on the
// providers sees every shard put and head record as it arrives), nodes
// killed mid-transfer, shard files corrupted or deleted on the providers'
// disks, a provider that serves garbage, wrong credentials and full
// quotas. The package has only tests; run them with
//
//	go test ./fstests/faults/
//
// `make test-interrupts` runs the random interruptions 200 times
// (JELLYFISH_INTERRUPTS, JELLYFISH_INTERRUPT_SEED), and `make
// test-known-bugs` the checks of reported bugs that are skipped otherwise
// (JELLYFISH_KNOWN_BUGS).
package faults
