package maillab

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
)

type dovecotConfig struct {
	InstanceName     string
	BaseDir          string
	StateDir         string
	LogFile          string
	AuthVerbose      bool
	AuthFailureDelay string
	AuthPenalty      bool
	PasswdFile       string
	MailDir          string
	MailUID, MailGID int
	AuthSocket       string
}

// The mailbox owner: an unprivileged account every Debian system has.
const mailOwner = "nobody"

// startDovecot runs a private Dovecot in the foreground (-F) so the lab
// owns its master process.
func startDovecot(ctx context.Context, l *Lab) (*foreground, error) {
	base := filepath.Join(l.dir, "dovecot")
	owner, err := user.Lookup(mailOwner)
	if err != nil {
		return nil, fmt.Errorf("look up mailbox owner: %w", err)
	}
	uid, _ := strconv.Atoi(owner.Uid)
	gid, _ := strconv.Atoi(owner.Gid)
	cfg := dovecotConfig{
		InstanceName:     "dovecot-lab-" + l.suffix,
		BaseDir:          filepath.Join(base, "run"),
		StateDir:         filepath.Join(base, "state"),
		LogFile:          l.DovecotLog(),
		AuthVerbose:      l.opts.AuthVerbose,
		AuthFailureDelay: fmt.Sprintf("%d msecs", l.opts.AuthFailureDelay.Milliseconds()),
		AuthPenalty:      l.opts.AuthPenalty,
		PasswdFile:       filepath.Join(base, "passwd"),
		MailDir:          filepath.Join(base, "mail"),
		MailUID:          uid,
		MailGID:          gid,
		// Postfix's smtpd is not chrooted and finds it as private/auth.
		AuthSocket: filepath.Join(l.dir, "postfix", "queue", "private", "auth"),
	}
	if err := mkdirs(0o755, base, cfg.BaseDir, cfg.StateDir, cfg.MailDir); err != nil {
		return nil, err
	}
	var passwd strings.Builder
	for _, u := range l.opts.Users {
		if strings.ContainsAny(u.Name+u.Password, ":\n") {
			return nil, fmt.Errorf("user %q: names and passwords cannot hold ':' or newlines", u.Name)
		}
		fmt.Fprintf(&passwd, "%s:{PLAIN}%s\n", u.Name, u.Password)
		home := filepath.Join(cfg.MailDir, u.Name)
		if err := mkdirs(0o700, home); err != nil {
			return nil, err
		}
		if err := os.Chown(home, uid, gid); err != nil {
			return nil, fmt.Errorf("chown %s: %w", home, err)
		}
	}
	if err := os.WriteFile(cfg.PasswdFile, []byte(passwd.String()), 0o644); err != nil {
		return nil, fmt.Errorf("write dovecot passwd file: %w", err)
	}
	conf := filepath.Join(base, "dovecot.conf")
	if err := renderTemplate("dovecot.conf.tmpl", conf, 0o644, cfg); err != nil {
		return nil, err
	}
	// Not CommandContext: the server must outlive Start's context.
	cmd := l.server.Command(context.Background(), "dovecot", "-c", conf, "-F")
	out, err := os.OpenFile(filepath.Join(base, "stderr.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create dovecot stderr log: %w", err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	d, err := startForeground("dovecot", cmd, func() { out.Close() })
	if err != nil {
		out.Close()
		return nil, err
	}
	if err := waitListening(ctx, l.server, d.exited, 143, 110); err != nil {
		b, _ := os.ReadFile(filepath.Join(base, "stderr.log"))
		return d, fmt.Errorf("dovecot: %w: %s", err, strings.TrimSpace(string(b)))
	}
	return d, nil
}
