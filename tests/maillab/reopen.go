package maillab

import (
	"context"
	"fmt"
	"path/filepath"
)

// ReopenLogs makes Postfix and Dovecot reopen their log files, as
// logrotate's postrotate scripts do after renaming them: `postfix reload`
// starts postlogd again, which opens maillog_file anew (what `postfix
// logrotate` does after its rename), and `doveadm log reopen` asks Dovecot's
// log process to reopen log_path.
func (l *Lab) ReopenLogs(ctx context.Context) error {
	if err := l.postfix.run(ctx, "reload"); err != nil {
		return fmt.Errorf("reopen postfix log: %w", err)
	}
	conf := filepath.Join(l.dir, "dovecot", "dovecot.conf")
	if err := runCombined(l.server.Command(ctx, "doveadm", "-c", conf, "log", "reopen")); err != nil {
		return fmt.Errorf("reopen dovecot log: %w", err)
	}
	return nil
}
