package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/portcullis-mail/portcullis/config"
	"github.com/portcullis-mail/portcullis/geo"
	"github.com/portcullis-mail/portcullis/maps"
)

// geoState is the loaded country database and what the kernel enforces
// from it. A load takes seconds with a full database (most of it in the
// kernel), so loads are serialised by a lock of their own and mu is only
// held to swap the result in: log intake, which asks for countries, never
// waits for a load.
type geoState struct {
	load   sync.Mutex
	mu     sync.Mutex
	cfg    config.Geo
	db     *geo.DB
	file   os.FileInfo // of the loaded file, to skip events that change nothing
	loaded time.Time
	// rewatch tells the watcher that the database path may have moved.
	rewatch chan struct{}
}

// GeoInfo is the loaded geo database as `portcullis status` and `geo
// status` show it.
type GeoInfo struct {
	geo.Info
	Loaded   time.Time         `json:"loaded"`
	Policies map[string]string `json:"policies"` // by class: mx, auth, all
}

// GeoPolicies are the configured policies by class; maps.ClassNone is `all`.
func GeoPolicies(g config.Geo) map[maps.Class]geo.Policy {
	conv := func(p config.GeoPolicy) geo.Policy {
		return geo.Policy{Deny: p.Deny, Allow: p.Allow, UnknownDrop: p.Unknown == "drop"}
	}
	return map[maps.Class]geo.Policy{
		maps.ClassMX:   conv(g.Policy.MX),
		maps.ClassAuth: conv(g.Policy.Auth),
		maps.ClassNone: conv(g.Policy.All),
	}
}

// GeoClassName is how config and the CLI name a geo policy's class.
func GeoClassName(c maps.Class) string {
	if c == maps.ClassNone {
		return "all"
	}
	return c.String()
}

// applyGeo loads the configured database and puts its policy in the kernel.
// The new tries are complete before the kernel switches to them (see
// maps.SetGeo); on any error the running database and policy stay.
func (d *Daemon) applyGeo(g config.Geo) error {
	d.geo.load.Lock()
	defer d.geo.load.Unlock()
	return d.loadGeo(g)
}

// loadGeo is applyGeo with d.geo.load held.
func (d *Daemon) loadGeo(g config.Geo) error {
	if g.Database == "" {
		if err := d.dp.Maps.ClearGeo(); err != nil {
			return fmt.Errorf("clear geo policy: %w", err)
		}
		d.swapGeo(g, nil, nil)
		return nil
	}
	start := time.Now()
	fi, err := os.Stat(g.Database)
	if err != nil {
		return fmt.Errorf("geo database: %w", err)
	}
	db, err := geo.Open(g.Database)
	if err != nil {
		return err
	}
	table, err := db.Table(GeoPolicies(g))
	if err != nil {
		db.Close()
		return err
	}
	if err := d.dp.Maps.SetGeo(table); err != nil {
		db.Close()
		return fmt.Errorf("put geo policy in the kernel: %w", err)
	}
	d.swapGeo(g, db, fi)
	n := 0
	for _, c := range table.Countries {
		n += len(c.Prefixes)
	}
	info := db.Info()
	d.log.Info("geo database loaded", "path", info.Path, "type", info.Type, "built", info.Built.Format(time.DateOnly),
		"shape", info.Shape, "prefixes", n, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// swapGeo replaces the state; the caller holds d.geo.load.
func (d *Daemon) swapGeo(g config.Geo, db *geo.DB, fi os.FileInfo) {
	d.geo.mu.Lock()
	defer d.geo.mu.Unlock()
	old := d.geo.db
	moved := g.Database != d.geo.cfg.Database
	d.geo.cfg, d.geo.db, d.geo.file, d.geo.loaded = g, db, fi, d.now()
	if old != nil {
		old.Close()
	}
	if moved {
		select {
		case d.geo.rewatch <- struct{}{}:
		default:
		}
	}
}

func (d *Daemon) closeGeo() {
	d.geo.load.Lock()
	defer d.geo.load.Unlock()
	d.geo.mu.Lock()
	defer d.geo.mu.Unlock()
	if d.geo.db != nil {
		d.geo.db.Close()
		d.geo.db = nil
	}
}

// country is the source's country for the store, "" without a database or
// when it does not place the source.
func (d *Daemon) country(a netip.Addr) string {
	d.geo.mu.Lock()
	defer d.geo.mu.Unlock()
	if d.geo.db == nil {
		return ""
	}
	c, err := d.geo.db.Country(a)
	if err != nil {
		d.log.Debug("geo lookup", "addr", a, "err", err)
	}
	return c
}

func (d *Daemon) geoInfo() *GeoInfo {
	d.geo.mu.Lock()
	defer d.geo.mu.Unlock()
	if d.geo.db == nil {
		return nil
	}
	out := &GeoInfo{Info: d.geo.db.Info(), Loaded: d.geo.loaded.UTC(), Policies: map[string]string{}}
	for c, p := range GeoPolicies(d.geo.cfg) {
		out.Policies[GeoClassName(c)] = p.String()
	}
	return out
}

// geoSettle is how long the watcher waits after the last change to the
// database file before loading it: a file written in place comes in several
// writes, and one renamed into place (geoipupdate) in one event.
const geoSettle = 100 * time.Millisecond

// watchGeo reloads the database when its file changes. It watches the
// directory, since geoipupdate replaces the file by rename and a watch on
// the file itself would follow the old inode.
func (d *Daemon) watchGeo(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		d.log.Warn("cannot watch the geo database; it is reloaded on SIGHUP only", "err", err)
		return nil
	}
	defer w.Close()
	var (
		dir, path string
		settle    <-chan time.Time
	)
	for {
		d.geo.mu.Lock()
		want := d.geo.cfg.Database
		d.geo.mu.Unlock()
		if want != path {
			if dir != "" {
				_ = w.Remove(dir)
				dir = ""
			}
			path = want
			if path != "" {
				if err := w.Add(filepath.Dir(path)); err != nil {
					d.log.Warn("cannot watch the geo database's directory; it is reloaded on SIGHUP only", "dir", filepath.Dir(path), "err", err)
				} else {
					dir = filepath.Dir(path)
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-d.geo.rewatch:
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if filepath.Clean(ev.Name) == filepath.Clean(path) && ev.Op&(fsnotify.Create|fsnotify.Write|fsnotify.Rename) != 0 {
				settle = time.After(geoSettle)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			d.log.Warn("geo database watch", "err", err)
		case <-settle:
			settle = nil
			d.reloadGeoFile()
		}
	}
}

// reloadGeoFile loads the database again if the file is not the one loaded.
// It holds the load lock from reading the configuration to the switch, so a
// SIGHUP's new policy cannot be overwritten by this load of the old one.
func (d *Daemon) reloadGeoFile() {
	d.geo.load.Lock()
	defer d.geo.load.Unlock()
	d.geo.mu.Lock()
	g, loaded := d.geo.cfg, d.geo.file
	d.geo.mu.Unlock()
	if g.Database == "" {
		return
	}
	fi, err := os.Stat(g.Database)
	if err != nil {
		// Gone between writes, or for good: the loaded policy stays.
		d.log.Warn("geo database changed and cannot be read; the loaded one stays", "path", g.Database, "err", err)
		return
	}
	if loaded != nil && os.SameFile(fi, loaded) && fi.ModTime().Equal(loaded.ModTime()) && fi.Size() == loaded.Size() {
		return
	}
	if err := d.loadGeo(g); err != nil {
		d.setError(fmt.Sprintf("geo database reload failed: %v", err))
		d.log.Error("geo database reload failed; the loaded one stays", "err", err)
	}
}
