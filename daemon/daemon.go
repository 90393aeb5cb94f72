// Package daemon is `portcullis run`: it follows the mail logs, turns what
// they say into bans through the verdict engine, puts the bans in the
// kernel and records everything in the store.
//
// Data flows one way: log sources -> parser -> engine -> decisions, applied
// to the store first (with the events and read positions that led to them,
// in one transaction) and then to the kernel. A crash between the two is
// mended at the next start, which puts every unexpired stored ban back in the
// kernel before reading a line. Stopping the daemon leaves the datapath
// attached with its maps pinned: enforcement never depends on it running.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sync/errgroup"

	"github.com/portcullis-mail/portcullis/config"
	"github.com/portcullis-mail/portcullis/loader"
	"github.com/portcullis-mail/portcullis/logs"
	"github.com/portcullis-mail/portcullis/store"
	"github.com/portcullis-mail/portcullis/verdict"
)

// Options configure Run.
type Options struct {
	Config config.Config
	// Reload returns a fresh configuration on SIGHUP; nil disables reloads.
	Reload func() (config.Config, error)
	Logger *slog.Logger
	// Journalctl and JournalFiles point the journal source at another
	// program or at journal files (tests); empty means the system journal.
	Journalctl   string
	JournalFiles []string
	// Clock returns the time; nil means time.Now.
	Clock func() time.Time
}

// Daemon is a running portcullis daemon.
type Daemon struct {
	log     *slog.Logger
	now     func() time.Time
	started time.Time

	// mu orders everything that changes bans (log batches, control
	// commands, reloads) and guards cfg, which a reload replaces. The
	// engine is single-threaded by design.
	mu     sync.Mutex
	cfg    config.Config
	dp     *loader.Datapath
	st     *store.Store
	eng    *verdict.Engine
	parser *logs.Parser
	allow  []netip.Prefix // what the engine and the kernel allowlist hold

	// netns is the network namespace the daemon started in: its addresses
	// are this host's.
	netns netns.NsHandle

	geo geoState

	hung time.Duration // 0: defaultHungAfter (tests shorten it)

	healthMu sync.Mutex
	sources  map[string]*sourceHealth
	lastErr  string

	alerts *alerts
}

// Run runs the daemon until ctx ends. It returns an error only when it
// cannot start or a part fails for good; the datapath stays attached either
// way.
func Run(ctx context.Context, opts Options) error {
	d, err := start(ctx, opts)
	if err != nil {
		return err
	}
	defer d.close()
	return d.run(ctx, opts)
}

// start brings up the store, the datapath and the engine, and puts every
// unexpired ban back in the kernel, before a single log line is read.
func start(ctx context.Context, opts Options) (*Daemon, error) {
	cfg := opts.Config
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	now := opts.Clock
	if now == nil {
		now = time.Now
	}
	d := &Daemon{log: log, now: now, started: now(), cfg: cfg, sources: map[string]*sourceHealth{}}
	d.geo.rewatch = make(chan struct{}, 1)
	ns, err := netns.Get()
	if err != nil {
		return nil, fmt.Errorf("open own network namespace: %w", err)
	}
	d.netns = ns

	if err := os.MkdirAll(cfg.Daemon.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("create state directory: %w", err)
	}
	st, err := store.Open(ctx, cfg.Daemon.StateDir)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	d.st = st
	d.startAlerts(cfg)
	if err := d.checkUncleanExit(ctx); err != nil {
		d.close()
		return nil, err
	}

	// Reading the bans to restore takes about as long as loading the
	// program; do both at once (a reboot's restore must be quick).
	type inForce struct {
		bans []store.Ban
		err  error
	}
	restoreAt := now()
	stored := make(chan inForce, 1)
	go func() {
		bans, err := st.BansInForce(ctx, restoreAt)
		stored <- inForce{bans, err}
	}()

	c := cfg.Datapath.Capacity
	dp, err := loader.Load(loader.Options{
		PinDir: cfg.Daemon.PinDir,
		Logger: log,
		Capacity: loader.Capacity{
			Bans: c.Bans, PrefixBans: c.PrefixBans, Allowlist: c.Allowlist, Sources: c.Sources,
		},
	})
	got := <-stored
	if err != nil {
		d.close()
		return nil, fmt.Errorf("load datapath: %w", err)
	}
	d.dp = dp
	if got.err != nil {
		d.close()
		return nil, fmt.Errorf("read bans in force: %w", got.err)
	}

	eng, err := verdict.New(verdictConfig(cfg.Verdict))
	if err != nil {
		d.close()
		return nil, fmt.Errorf("verdict engine: %w", err)
	}
	d.eng = eng
	parser, err := logs.NewParser(logs.ParserOptions{Now: now, Custom: cfg.Logs.CustomRules()})
	if err != nil {
		d.close()
		return nil, fmt.Errorf("log parser: %w", err)
	}
	d.parser = parser

	if err := d.restore(ctx, restoreAt, got.bans); err != nil {
		d.close()
		return nil, err
	}
	if err := d.applyDatapath(cfg.Datapath); err != nil {
		d.close()
		return nil, err
	}
	if err := d.refreshAllowlist(); err != nil {
		d.close()
		return nil, err
	}
	if err := d.applyGeo(cfg.Geo); err != nil {
		d.close()
		return nil, err
	}
	if err := d.attach(cfg.Daemon.Interfaces); err != nil {
		d.close()
		return nil, err
	}
	return d, nil
}

func (d *Daemon) close() {
	if d.netns.IsOpen() {
		d.netns.Close()
	}
	if d.st != nil {
		if err := d.st.Close(); err != nil {
			d.log.Error("close store", "err", err)
		}
	}
	d.closeGeo()
	if d.dp != nil {
		d.dp.Close() // pins stay: enforcement continues
	}
}

// run follows the logs and keeps house until ctx ends.
func (d *Daemon) run(ctx context.Context, opts Options) error {
	sources, err := d.sourcesFor(opts)
	if err != nil {
		return err
	}
	// Listen before anything runs, so a port in use is an error at start,
	// not a silent lack of metrics.
	var metrics net.Listener
	if addr := d.cfg.Daemon.Metrics; addr != "" {
		if metrics, err = net.Listen("tcp", addr); err != nil {
			return fmt.Errorf("metrics: listen on %s: %w", addr, err)
		}
	}
	notify := NewNotifier()
	g, ctx := errgroup.WithContext(ctx)
	for _, s := range sources {
		h := d.track(s)
		g.Go(func() error { return d.follow(ctx, s, h) })
	}
	socket := d.cfg.Daemon.Socket
	g.Go(func() error { return d.serveControl(ctx, socket) })
	if metrics != nil {
		d.log.Info("serving metrics", "addr", metrics.Addr().String())
		g.Go(func() error { return d.serveMetrics(ctx, metrics) })
	}
	g.Go(func() error { return d.housekeeping(ctx, notify) })
	addrs := d.subscribeAddrs()
	g.Go(func() error { return d.watchAddrs(ctx, addrs) })
	g.Go(func() error { return d.watchGeo(ctx) })
	g.Go(func() error { return d.reloads(ctx, opts.Reload, notify) })
	g.Go(func() error { return d.watch(ctx) })
	if err := notify.Ready(); err != nil {
		d.log.Warn("tell systemd we are ready", "err", err)
	}
	d.log.Info("running", "sources", len(sources), "pin_dir", d.cfg.Daemon.PinDir, "state_dir", d.cfg.Daemon.StateDir)
	err = g.Wait()
	_ = notify.Stopping()
	if err := d.writeHeartbeat(context.Background(), true); err != nil {
		d.log.Warn("write final heartbeat", "err", err)
	}
	if errors.Is(err, context.Canceled) || ctx.Err() != nil && err == nil {
		d.log.Info("stopped; the datapath stays attached and keeps enforcing (`portcullis detach --all` stops it)")
		return nil
	}
	return err
}
