package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// pruneChunk is how many rows one pruning transaction deletes. Each chunk
// holds the write lock for a few milliseconds; the daemon's commits wait at
// most that long, never for the whole prune.
const pruneChunk = 2000

// Pruned counts what Prune deleted.
type Pruned struct {
	Events int64
	Bans   int64
}

// Prune deletes events older than before, and bans that ended (were lifted
// or expired) before it. Bans still in force are kept however old they are,
// permanent ones included: they are still enforced and still evidence.
// It deletes in chunks, each in its own transaction, so writers are never
// held up for long; it stops early, with what it did so far, when ctx ends.
func (s *Store) Prune(ctx context.Context, before time.Time) (Pruned, error) {
	var p Pruned
	cut := before.UnixNano()
	steps := []struct {
		what  string
		query string
		n     *int64
	}{
		{"events", `DELETE FROM events WHERE id IN (SELECT id FROM events WHERE time < ? LIMIT ?)`, &p.Events},
		{"bans", `DELETE FROM bans WHERE id IN (SELECT id FROM bans
			WHERE (lifted_at IS NOT NULL AND lifted_at < ?1) OR (lifted_at IS NULL AND expires IS NOT NULL AND expires < ?1)
			LIMIT ?2)`, &p.Bans},
	}
	for _, step := range steps {
		for {
			var n int64
			err := s.inTx(ctx, func(tx *sql.Tx) error {
				res, err := tx.ExecContext(ctx, step.query, cut, pruneChunk)
				if err != nil {
					return err
				}
				n, err = res.RowsAffected()
				return err
			})
			if err != nil {
				return p, fmt.Errorf("prune %s before %s: %w", step.what, before.UTC().Format(time.RFC3339), err)
			}
			*step.n += n
			if n < pruneChunk {
				break
			}
		}
	}
	return p, nil
}
