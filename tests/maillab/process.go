package maillab

import (
	"fmt"
	"os/exec"
	"syscall"
	"time"
)

// foreground is a server this package started in the foreground and so
// owns: its goroutine only waits for the process and ends with it.
type foreground struct {
	name    string
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd.Wait returns
	waitErr error         // cmd.Wait's result, set before exited closes
}

// startForeground starts cmd; after is called once the process is gone
// (to close its log files).
func startForeground(name string, cmd *exec.Cmd, after func()) (*foreground, error) {
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &foreground{name: name, cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		if after != nil {
			after()
		}
		close(p.exited)
	}()
	return p, nil
}

// stop sends SIGTERM, which makes a master process stop its children, and
// SIGKILL if the process has not exited within the grace period.
func (p *foreground) stop() error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM) // it may have exited already
	select {
	case <-p.exited:
		return nil
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("%s did not stop within 5s of SIGTERM", p.name)
	}
}
