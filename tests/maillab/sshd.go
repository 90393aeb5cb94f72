package maillab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

type sshdConfig struct {
	HostKey, PidFile, AuthorizedKeys string
}

// SSHPort is the lab sshd's port.
const SSHPort = 22

// startSSHD runs a private OpenSSH server in the foreground (-D).
func startSSHD(ctx context.Context, l *Lab) (*foreground, error) {
	base := filepath.Join(l.dir, "ssh")
	cfg := sshdConfig{
		HostKey:        filepath.Join(base, "ssh_host_ed25519_key"),
		PidFile:        filepath.Join(base, "sshd.pid"),
		AuthorizedKeys: filepath.Join(base, "authorized_keys"),
	}
	if err := mkdirs(0o755, base); err != nil {
		return nil, err
	}
	// sshd refuses to start without its privilege separation directory,
	// which the Debian package leaves to systemd-tmpfiles or the init
	// script to create; neither runs here.
	if err := mkdirs(0o755, "/run/sshd"); err != nil {
		return nil, err
	}
	keygen := exec.CommandContext(ctx, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "maillab", "-f", cfg.HostKey)
	if err := runCombined(keygen); err != nil {
		return nil, err
	}
	if err := os.WriteFile(cfg.AuthorizedKeys, nil, 0o644); err != nil {
		return nil, fmt.Errorf("create authorized_keys: %w", err)
	}
	conf := filepath.Join(base, "sshd_config")
	if err := renderTemplate("sshd_config.tmpl", conf, 0o644, cfg); err != nil {
		return nil, err
	}
	cmd := l.server.Command(context.Background(), "/usr/sbin/sshd", "-f", conf, "-D", "-E", l.SSHLog())
	var stderr strings.Builder
	cmd.Stderr = &stderr
	s, err := startForeground("sshd", cmd, nil)
	if err != nil {
		return nil, err
	}
	if err := waitListening(ctx, l.server, s.exited, SSHPort); err != nil {
		_ = s.stop() // stderr is complete once the process is gone
		log, _ := os.ReadFile(l.SSHLog())
		return s, fmt.Errorf("sshd: %w: %s %s", err, strings.TrimSpace(stderr.String()), strings.TrimSpace(string(log)))
	}
	return s, nil
}

// AuthorizeKey adds an OpenSSH authorized_keys line for every account.
func (l *Lab) AuthorizeKey(line string) error {
	if l.sshd == nil {
		return fmt.Errorf("the lab has no sshd (Options.SSH)")
	}
	path := filepath.Join(l.dir, "ssh", "authorized_keys")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	if _, err := fmt.Fprintln(f, strings.TrimSpace(line)); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}
