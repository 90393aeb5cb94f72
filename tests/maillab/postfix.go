package maillab

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// postfix is a private Postfix instance: its own config_directory,
// queue_directory and data_directory, logging through postlogd to a file.
type postfix struct {
	lab       *Lab
	configDir string
	queueDir  string
}

type postfixConfig struct {
	ConfigDir, QueueDir, DataDir string
	LogFile, LogDir              string
	Hostname                     string
	MailboxDomain, MailboxBase   string
	// TLSCert and TLSKey, when set, let clients upgrade with STARTTLS.
	TLSCert, TLSKey string
}

// MailboxDomain is the domain whose mail the lab's Postfix delivers into
// Lab.Mailbox, whatever the local part.
const MailboxDomain = "mailbox.lab.example"

func startPostfix(ctx context.Context, l *Lab) (*postfix, error) {
	base := filepath.Join(l.dir, "postfix")
	p := &postfix{lab: l, configDir: filepath.Join(base, "etc"), queueDir: filepath.Join(base, "queue")}
	cfg := postfixConfig{
		ConfigDir: p.configDir,
		QueueDir:  p.queueDir,
		DataDir:   filepath.Join(base, "data"),
		LogFile:   l.PostfixLog(),
		LogDir:    l.logDir(),
		Hostname:  "mail.lab.example",

		MailboxDomain: MailboxDomain,
		MailboxBase:   filepath.Join(base, "mailbox"),
	}
	if err := mkdirs(0o755, base, p.configDir, p.queueDir, l.logDir()); err != nil {
		return nil, err
	}
	if err := mkdirs(0o700, cfg.MailboxBase); err != nil {
		return nil, err
	}
	if err := os.Chown(cfg.MailboxBase, 65534, 65534); err != nil {
		return nil, fmt.Errorf("chown mailbox: %w", err)
	}
	if l.opts.TLS {
		var err error
		if l.tlsCA, cfg.TLSCert, cfg.TLSKey, err = writeTLS(base); err != nil {
			return nil, err
		}
	}
	if err := renderTemplate("main.cf.tmpl", filepath.Join(p.configDir, "main.cf"), 0o644, cfg); err != nil {
		return nil, err
	}
	if err := renderTemplate("master.cf.tmpl", filepath.Join(p.configDir, "master.cf"), 0o644, cfg); err != nil {
		return nil, err
	}
	// `postfix start` creates the queue and data directories with the
	// right owners (post-install create-missing) and returns once the
	// master daemon reports it is up (master -w).
	if err := p.run(ctx, "start"); err != nil {
		return p, err
	}
	if err := waitListening(ctx, l.server, nil, 25, 587); err != nil {
		return p, fmt.Errorf("postfix: %w", err)
	}
	return p, nil
}

// run runs `postfix -c CONFIG_DIR ARGS` inside the server namespace.
func (p *postfix) run(ctx context.Context, args ...string) error {
	cmd := p.lab.server.Command(ctx, "postfix", append([]string{"-c", p.configDir}, args...)...)
	return runCombined(cmd)
}

// masterPID reads the master daemon's pid file; 0 when there is none.
func (p *postfix) masterPID() int {
	b, err := os.ReadFile(filepath.Join(p.queueDir, "pid", "master.pid"))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b)))
	if err != nil {
		return 0
	}
	return pid
}

// stop asks the master to stop and waits for it to go; the namespace
// cleanup kills whatever it leaves behind.
func (p *postfix) stop() error {
	pid := p.masterPID()
	if pid == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stopErr := p.run(ctx, "stop")
	if err := waitGone(pid, 5*time.Second); err != nil {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		return fmt.Errorf("postfix stop: %w (stop said: %v)", err, stopErr)
	}
	return nil
}

// runCombined runs cmd and puts its output into the error.
func runCombined(cmd *exec.Cmd) error {
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", cmd.String(), err, bytes.TrimSpace(out))
	}
	return nil
}

// waitGone polls until process pid no longer exists (or is a zombie).
func waitGone(pid int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil || isZombie(b) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("process %d still running after %v", pid, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// isZombie reads the state field of /proc/PID/stat, which follows the
// parenthesised command name.
func isZombie(stat []byte) bool {
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}
