// Package compat runs the previous version of Jellyfish against the current
// one: the jellyfish binary of the commit named in the file
// previous-version (built from the repository's own history with git
// archive and go build) and the binary of this tree, as real processes on
// 127.0.0.1. Providers of both versions share one network; clients of both
// versions write to and read from one account; providers are upgraded and
// downgraded in place; and where the current version made a format the
// previous one cannot read, the previous one must refuse clearly and the
// current one must still read every byte. The package has only tests; run
// them with
//
//	go test -tags noselfupdate ./fstests/compat/
//
// They skip, saying why, where the commit cannot be had: outside a git
// checkout, or in a clone without that history (git fetch --unshallow).
package compat
