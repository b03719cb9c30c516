// Package suite runs rclone's VFS test suite (vfs/vfstest) against the
// Jellyfish backend. Its test builds only with the jellyfish_vfstest tag,
// against the shadow of the rclone module made by fstests/vfs, which runs
// it; see fstests/vfs/vfs_test.go for why.
package suite
