package maillab

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/portcullis-mail/portcullis/internal/testnet"
)

// netnsInode identifies a namespace among the ones processes refer to.
func netnsInode(ns *testnet.NS) (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(ns.Path, &st); err != nil {
		return 0, fmt.Errorf("stat netns %s: %w", ns.Name, err)
	}
	return st.Ino, nil
}

// pidsIn lists the processes whose network namespace is ns: the servers
// the lab started and anything they forked, however they daemonized.
func pidsIn(ns *testnet.NS) ([]int, error) {
	ino, err := netnsInode(ns)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("read /proc: %w", err)
	}
	var pids []int
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		// Never this process: its main thread can sit in a test namespace
		// (testnet unshares on a thread the runtime may not discard).
		if err != nil || pid == self {
			continue
		}
		var st syscall.Stat_t
		// Fails for processes that exited meanwhile and for zombies,
		// which hold no namespace any more.
		if err := syscall.Stat(filepath.Join("/proc", e.Name(), "ns/net"), &st); err != nil {
			continue
		}
		if st.Ino == ino {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// killAllIn sends SIGKILL to every process left in ns and waits, bounded,
// until none is left: testnet only unmounts the namespace, and a surviving
// process would keep it (and its servers' ports) alive.
func killAllIn(ns *testnet.NS, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		pids, err := pidsIn(ns)
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v still in netns %s after %v", pids, ns.Name, timeout)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL) // it may have exited already
		}
		time.Sleep(20 * time.Millisecond)
	}
}
