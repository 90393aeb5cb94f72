package loader

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// ensureBPFFS makes sure dir's parent lives on a bpf filesystem, mounting
// one at /sys/fs/bpf when that is the parent and nothing is mounted there
// yet (minimal systems and containers often lack the mount).
func ensureBPFFS(dir string) error {
	parent := filepath.Dir(filepath.Clean(dir))
	if onBPFFS(parent) {
		return nil
	}
	if parent != "/sys/fs/bpf" {
		return fmt.Errorf("%s is not on a bpf filesystem (mount one with `mount -t bpf bpf %s`)", parent, parent)
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", parent, err)
	}
	if err := unix.Mount("bpf", parent, "bpf", 0, "mode=0700"); err != nil && !errors.Is(err, unix.EBUSY) {
		return fmt.Errorf("mount bpffs at %s: %w", parent, err)
	}
	if !onBPFFS(parent) {
		return fmt.Errorf("%s is not a bpf filesystem after mounting", parent)
	}
	return nil
}

func onBPFFS(path string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	return st.Type == unix.BPF_FS_MAGIC
}

// lock holds an exclusive flock on a directory; attach, detach and upgrade
// take it so that two processes never interleave their changes.
type lock struct{ f *os.File }

func lockDir(dir string) (*lock, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	return &lock{f}, nil
}

func (l *lock) unlock() {
	// Closing the descriptor releases the flock.
	l.f.Close()
}
