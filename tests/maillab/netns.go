package maillab

// This file is the lab's only network-namespace code. It is deliberately
// small and self-contained so it can be replaced by internal/testnet when
// that package lands.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netns"
)

// namespace is a named network namespace created with `ip netns add`, so it
// is visible at /run/netns/NAME and `ip netns exec` works on it.
type namespace struct {
	name string
}

// randomSuffix returns n hex characters from crypto/rand: namespace and
// interface names must not collide between labs started by parallel tests.
func randomSuffix(n int) string {
	b := make([]byte, (n+1)/2)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("read random bytes: %v", err)) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b)[:n]
}

// ipCommand runs `ip ARGS...` and returns its combined output in the error.
func ipCommand(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// newNamespace creates the namespace, brings its loopback up and turns off
// IPv6 duplicate address detection so addresses are usable at once.
func newNamespace(ctx context.Context, name string) (*namespace, error) {
	if err := ipCommand(ctx, "netns", "add", name); err != nil {
		return nil, err
	}
	ns := &namespace{name: name}
	if err := ipCommand(ctx, "-n", name, "link", "set", "lo", "up"); err != nil {
		return ns, err
	}
	// Interfaces copy "default" when created in this namespace; without
	// this, IPv6 addresses stay tentative for a second or more.
	for _, key := range []string{"net.ipv6.conf.all.accept_dad", "net.ipv6.conf.default.accept_dad"} {
		if err := ns.sysctl(ctx, key, "0"); err != nil {
			return ns, err
		}
	}
	return ns, nil
}

// sysctl writes a per-namespace sysctl from inside the namespace.
func (ns *namespace) sysctl(ctx context.Context, key, value string) error {
	path := filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
	return ns.do(func() error {
		if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
			return fmt.Errorf("set %s in netns %s: %w", key, ns.name, err)
		}
		return nil
	})
}

// path is the bind mount that names the namespace.
func (ns *namespace) path() string { return filepath.Join("/run/netns", ns.name) }

// command returns a command that runs inside the namespace. `ip netns exec`
// is enough for the lab: no bpffs pins need to stay visible.
func (ns *namespace) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns.name, name}, args...)...)
}

// do runs fn on a locked OS thread switched into the namespace. Sockets
// created by fn stay in the namespace after do returns.
func (ns *namespace) do(fn func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("get current netns: %w", err)
	}
	defer orig.Close()
	target, err := netns.GetFromName(ns.name)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open netns %s: %w", ns.name, err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter netns %s: %w", ns.name, err)
	}
	fnErr := fn()
	if err := netns.Set(orig); err != nil {
		// Leave the thread locked: the runtime then discards it when this
		// goroutine ends instead of reusing a thread in the wrong namespace.
		return fmt.Errorf("return from netns %s: %w", ns.name, err)
	}
	runtime.UnlockOSThread()
	return fnErr
}

// inode identifies the namespace among the ones processes refer to.
func (ns *namespace) inode() (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(ns.path(), &st); err != nil {
		return 0, fmt.Errorf("stat netns %s: %w", ns.name, err)
	}
	return st.Ino, nil
}

// pids lists the processes whose network namespace is this one.
func (ns *namespace) pids() ([]int, error) {
	ino, err := ns.inode()
	if err != nil {
		return nil, err
	}
	return pidsInNetns(ino)
}

// pidsInNetns scans /proc for processes whose net namespace has inode ino.
func pidsInNetns(ino uint64) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("read /proc: %w", err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join("/proc", e.Name(), "ns/net"), &st); err != nil {
			continue // the process exited while we looked
		}
		if st.Ino == ino {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// killAll sends SIGKILL to every process left in the namespace and waits,
// bounded, until none is left, so deleting the namespace really frees it.
func (ns *namespace) killAll(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		pids, err := ns.pids()
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v still in netns %s after %v", pids, ns.name, timeout)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL) // it may have exited already
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// remove kills what is left in the namespace and deletes it.
func (ns *namespace) remove() error {
	killErr := ns.killAll(5 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ipCommand(ctx, "netns", "del", ns.name); err != nil {
		return fmt.Errorf("%w (after kill: %v)", err, killErr)
	}
	return killErr
}
