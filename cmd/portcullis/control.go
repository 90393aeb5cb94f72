package main

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/portcullis-mail/portcullis/daemon"
	"github.com/portcullis-mail/portcullis/store"
)

// viaDaemon hands a change to the running daemon, so that it records it
// and its engine learns of it. handled is false when no daemon runs: the
// caller then changes the pinned maps itself (and the store, recordOffline),
// and the daemon reconciles at its next start.
func viaDaemon(c *cli.Context, req daemon.Request) (handled bool, err error) {
	if err := requireRoot(); err != nil {
		return true, err
	}
	resp, err := daemon.Call(c.Context, globalString(c, "socket"), req)
	if errors.Is(err, daemon.ErrNotRunning) {
		return false, nil
	}
	if err != nil {
		return true, explainErr(err)
	}
	for _, m := range resp.Messages {
		fmt.Fprintln(c.App.Writer, m)
	}
	return true, nil
}

// recordOffline writes a change made without the daemon to its store, if
// the daemon has ever run here: an unban that the store did not hear of
// would be undone by the next start's restore.
func recordOffline(c *cli.Context, b store.Batch) error {
	dir := globalString(c, "state-dir")
	if _, err := os.Stat(filepath.Join(dir, "portcullis.db")); err != nil {
		return nil // no daemon has run here: nothing to keep in step
	}
	st, err := store.Open(c.Context, dir)
	if err != nil {
		return fmt.Errorf("open the daemon's store in %s: %w", dir, err)
	}
	defer st.Close()
	if err := st.Commit(c.Context, b); err != nil {
		return fmt.Errorf("record in the daemon's store: %w", err)
	}
	return nil
}

func prefixStrings(ps []netip.Prefix) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.String()
	}
	return out
}
