// Package faults holds fault-injection tests of Jellyfish: real provider
// nodes on 127.0.0.1 (fstests/jftest), the jellyfish binary run as child
// processes that are killed with SIGKILL, nodes killed mid-transfer, shard
// files corrupted on the providers' disks, a provider that serves garbage,
// wrong credentials and full quotas. The package has only tests; run them
// with
//
//	go test ./fstests/faults/
package faults
