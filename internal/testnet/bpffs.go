package testnet

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// bpffsDir is where the loader pins maps and links.
const bpffsDir = "/sys/fs/bpf"

// MountBPFFS mounts bpffs at /sys/fs/bpf unless it is mounted there already.
// It holds an exclusive lock on the directory while it checks and mounts,
// because `go test ./...` runs packages in parallel and a second mount on top
// of the first would hide every pin made before it.
func MountBPFFS() error {
	return withDirLock(bpffsDir, func() error {
		// The check goes by path, not by the locked descriptor, which may be
		// the directory underneath a mount made by whoever held the lock
		// before us.
		var st unix.Statfs_t
		if err := unix.Statfs(bpffsDir, &st); err != nil {
			return fmt.Errorf("statfs %s: %w", bpffsDir, err)
		}
		if st.Type == unix.BPF_FS_MAGIC {
			return nil
		}
		if err := unix.Mount("bpf", bpffsDir, "bpf", 0, "mode=0700"); err != nil {
			return fmt.Errorf("mount bpffs at %s: %w", bpffsDir, err)
		}
		return nil
	})
}

// withDirLock runs fn holding an exclusive flock on dir, creating dir if
// needed, to serialise mount changes across test processes. The lock is on
// the directory's inode, so it holds for whoever opened the directory before
// a mount on it.
func withDirLock(dir string, fn func() error) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open %s: %w", dir, err)
	}
	defer f.Close() // releases the lock
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", dir, err)
	}
	return fn()
}
