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
	if err := os.MkdirAll(bpffsDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", bpffsDir, err)
	}
	dir, err := os.Open(bpffsDir)
	if err != nil {
		return fmt.Errorf("open %s: %w", bpffsDir, err)
	}
	defer dir.Close()
	if err := unix.Flock(int(dir.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", bpffsDir, err)
	}
	// Closing dir releases the lock. The check goes by path, not by the
	// descriptor, which may be the directory underneath a mount made by
	// whoever held the lock before us.
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
}
