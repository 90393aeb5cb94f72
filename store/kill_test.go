package store

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/portcullis-mail/portcullis/logs"
)

// The kill test re-runs this test binary as a child that commits batches in
// a loop; the parent kills it with SIGKILL at a random moment and checks the
// database.
const (
	killDirEnv     = "PORTCULLIS_STORE_KILL_DIR"
	killSyncEnv    = "PORTCULLIS_STORE_KILL_SYNC"
	killPosKey     = "file:/var/log/kill-test.log"
	eventsPerBatch = 20
)

// killBatch is batch i as the child commits it: eventsPerBatch events
// tagged with i, one ban, and the read position i.
func killBatch(i int64) Batch {
	b := Batch{
		Bans:      []Ban{killBan(i)},
		Positions: []Position{{Key: killPosKey, Offset: i, Line: i * eventsPerBatch}},
	}
	for j := range eventsPerBatch {
		ev := event(killAddr(i).String(), base.Add(time.Duration(i)*time.Second+time.Duration(j)), fmt.Sprintf("batch-%d", i))
		ev.Origin = logs.Origin{File: "/var/log/kill-test.log", Line: i*eventsPerBatch + int64(j) + 1}
		b.Events = append(b.Events, ev)
	}
	return b
}

func killAddr(i int64) netip.Addr {
	return netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)})
}

func killBan(i int64) Ban {
	return ban(netip.PrefixFrom(killAddr(i), 32).String(), base.Add(time.Duration(i)*time.Second), time.Hour)
}

// TestKillChild is the child of TestKillLosesNothingAcknowledged; it does
// nothing in a normal run.
func TestKillChild(t *testing.T) {
	dir := os.Getenv(killDirEnv)
	if dir == "" {
		t.Skip("runs only as the child of TestKillLosesNothingAcknowledged")
	}
	ctx := context.Background()
	s, err := OpenWith(ctx, dir, Options{Synchronous: Synchronous(os.Getenv(killSyncEnv))})
	if err != nil {
		t.Fatal(err)
	}
	pos, ok, err := s.Position(ctx, killPosKey)
	if err != nil {
		t.Fatal(err)
	}
	if ok {
		// A daemon restarting after a crash decides the last ban again
		// (its evidence is still in the window): recording it must not
		// duplicate it.
		if err := s.Commit(ctx, Batch{Bans: []Ban{killBan(pos.Offset)}}); err != nil {
			t.Fatal(err)
		}
	}
	// Bounded: the parent kills the child long before it gets to the end.
	for i := pos.Offset + 1; i < pos.Offset+20000; i++ {
		if err := s.Commit(ctx, killBatch(i)); err != nil {
			t.Fatal(err)
		}
		// Acknowledge only after Commit returned: from here on the batch
		// must survive anything.
		fmt.Printf("ack %d\n", i)
	}
	t.Fatal("the parent did not kill the child")
}

// TestKillLosesNothingAcknowledged kills a committing process with SIGKILL
// at random moments, several times over the same database, and checks after
// each kill that every acknowledged batch is there, that the read position
// and the events it covers were committed together, and that no ban was
// recorded twice. It runs with both synchronous settings: a process kill
// leaves the written WAL in the kernel's page cache, so NORMAL survives it
// as FULL does (only power loss tells them apart).
func TestKillLosesNothingAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	for _, sync := range []Synchronous{SyncFull, SyncNormal} {
		t.Run("sync="+string(sync), func(t *testing.T) {
			dir := t.TempDir()
			seed := uint64(time.Now().UnixNano())
			t.Logf("seed %d", seed)
			rng := rand.New(rand.NewPCG(seed, seed))
			var acked int64
			for round := range 10 {
				// Kill after a random number of acknowledgements, and a
				// random moment after that one: the child is then
				// somewhere inside its next commit, or between two.
				killAfter := 1 + rng.IntN(60)
				delay := time.Duration(rng.IntN(3000)) * time.Microsecond
				last := runAndKill(t, dir, sync, killAfter, delay)
				if last < acked+int64(killAfter) {
					t.Fatalf("round %d: child acknowledged up to %d, want at least %d", round, last, acked+int64(killAfter))
				}
				acked = last
				checkAfterKill(t, dir, acked)
			}
		})
	}
}

// runAndKill starts the child, reads its acknowledgements until it has seen
// killAfter of them, waits delay, and kills it. It returns the last batch
// acknowledged.
func runAndKill(t *testing.T, dir string, sync Synchronous, killAfter int, delay time.Duration) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestKillChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), killDirEnv+"="+dir, killSyncEnv+"="+string(sync))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var last int64
	seen := 0
	sc := bufio.NewScanner(out)
	for seen < killAfter && sc.Scan() {
		n, ok := strings.CutPrefix(sc.Text(), "ack ")
		if !ok {
			continue
		}
		if last, err = strconv.ParseInt(n, 10, 64); err != nil {
			t.Fatalf("child wrote %q", sc.Text())
		}
		seen++
	}
	if seen < killAfter {
		cmd.Wait()
		t.Fatalf("child stopped after %d acknowledgements: %s", seen, stderr.String())
	}
	// The random moment between two acknowledgements; not a wait for a
	// condition.
	time.Sleep(delay)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Acknowledgements written before the kill still count.
	for sc.Scan() {
		if n, ok := strings.CutPrefix(sc.Text(), "ack "); ok {
			if v, err := strconv.ParseInt(n, 10, 64); err == nil {
				last = v
			}
		}
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, not by SIGKILL: %s", err, stderr.String())
	}
	return last
}

func checkAfterKill(t *testing.T, dir string, acked int64) {
	t.Helper()
	s := openTest(t, dir)
	defer s.Close()
	pos, ok, err := s.Position(t.Context(), killPosKey)
	if err != nil || !ok {
		t.Fatalf("position after the kill: %v, %v", ok, err)
	}
	p := pos.Offset
	// The child may have committed one batch more than it acknowledged.
	if p < acked || p > acked+1 {
		t.Fatalf("position %d after acknowledging %d", p, acked)
	}
	if pos.Line != p*eventsPerBatch {
		t.Errorf("position line %d, want %d", pos.Line, p*eventsPerBatch)
	}
	// Every batch up to the position, complete, once; nothing after it.
	rows, err := s.r.QueryContext(t.Context(), `SELECT rule, COUNT(*) FROM events GROUP BY rule`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	perBatch := map[int64]int{}
	for rows.Next() {
		var rule string
		var n int
		if err := rows.Scan(&rule, &n); err != nil {
			t.Fatal(err)
		}
		i, err := strconv.ParseInt(strings.TrimPrefix(rule, "batch-"), 10, 64)
		if err != nil {
			t.Fatalf("unexpected rule %q", rule)
		}
		perBatch[i] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for i := int64(1); i <= p; i++ {
		if perBatch[i] != eventsPerBatch {
			t.Errorf("batch %d has %d events, want %d", i, perBatch[i], eventsPerBatch)
		}
	}
	if int64(len(perBatch)) != p {
		t.Errorf("events of %d batches, want %d (position %d)", len(perBatch), p, p)
	}
	if n := count(t, s, `SELECT COUNT(*) FROM bans`); int64(n) != p {
		t.Errorf("%d bans, want %d", n, p)
	}
	if n := count(t, s, `SELECT COUNT(*) FROM (SELECT addr FROM bans GROUP BY addr, bits HAVING COUNT(*) > 1)`); n != 0 {
		t.Errorf("%d prefixes banned more than once", n)
	}
	var check string
	if err := s.r.QueryRowContext(t.Context(), `PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Errorf("integrity_check: %q, %v", check, err)
	}
}
