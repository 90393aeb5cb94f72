package testnet

import (
	"os"
	"testing"
)

func TestNewNSLeavesTheProcessInItsNamespace(t *testing.T) {
	RequireRoot(t)
	before, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 8; i++ {
		NewNS(t, "self")
	}
	// Every thread of the process, the main one included, must still be in
	// the namespace the test started in.
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		got, err := os.Readlink("/proc/self/task/" + task.Name() + "/ns/net")
		if err != nil {
			continue // the thread ended
		}
		if got != before {
			t.Errorf("thread %s is in %s, want %s", task.Name(), got, before)
		}
	}
}
