package maps

import (
	"fmt"
	"time"

	"github.com/cilium/ebpf"

	"golang.org/x/sys/unix"

	"github.com/portcullis-mail/portcullis/bpf"
)

// The kernel times bans on the boot clock, which keeps counting through
// suspend and never jumps with the wall clock; users think in wall-clock time.
// These convert between the two at the moment of the call.

func bootNow() time.Duration {
	var ts unix.Timespec
	// CLOCK_BOOTTIME cannot fail on Linux for a valid timespec pointer.
	_ = unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
	return time.Duration(ts.Nano())
}

// toBoot converts a wall-clock time to boot-clock ns; the zero time stays 0
// (meaning "at once" or "never", by field). A time already past maps to 1,
// the earliest boot-clock instant, so it is past for the kernel too.
func toBoot(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	b := bootNow() + time.Until(t)
	if b <= 0 {
		return 1
	}
	return uint64(b)
}

// fromBoot converts boot-clock ns to wall-clock time; 0 stays the zero time.
func fromBoot(ns uint64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Now().Add(time.Duration(ns) - bootNow()).Round(time.Millisecond)
}

// SyncBootOffset tells the datapath how far the boot clock is ahead of the
// monotonic one. The kernel checks bans against the cheap coarse monotonic
// clock plus this offset; it changes only across a suspend, so writing it
// whenever bans are added (and periodically from the daemon) keeps ban
// times exact to a tick.
func (m *Maps) SyncBootOffset() error {
	var boot, mono unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono)
	_ = unix.ClockGettime(unix.CLOCK_BOOTTIME, &boot)
	off := uint64(0)
	if d := boot.Nano() - mono.Nano(); d > 0 {
		off = uint64(d)
	}
	if err := m.config.Update(bpf.ConfigBootOffset, off, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("set boot clock offset: %w", err)
	}
	return nil
}
