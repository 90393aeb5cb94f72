package maps

import (
	"time"

	"golang.org/x/sys/unix"
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
