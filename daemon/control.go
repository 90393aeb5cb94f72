package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/portcullis-mail/portcullis/maps"
	"github.com/portcullis-mail/portcullis/store"
)

// The control socket takes one JSON request per connection and answers
// with one JSON response. It is root-only (mode 0600 in a 0700 directory):
// whoever can write to it can ban and unban.

// Request is a command to the daemon.
type Request struct {
	Command   string   `json:"command"` // ban, unban, allow, disallow, status
	Prefixes  []string `json:"prefixes,omitempty"`
	Scope     string   `json:"scope,omitempty"`
	Seconds   int64    `json:"seconds,omitempty"` // ban length; 0 with Permanent
	Permanent bool     `json:"permanent,omitempty"`
	Reason    string   `json:"reason,omitempty"`
}

// Response is the daemon's answer.
type Response struct {
	Error    string   `json:"error,omitempty"`
	Messages []string `json:"messages,omitempty"`
	Status   *Status  `json:"status,omitempty"`
}

// ErrNotRunning means no daemon answers on the control socket.
var ErrNotRunning = errors.New("the daemon is not running")

// Call sends a request to the daemon at socket.
func Call(ctx context.Context, socket string, req Request) (Response, error) {
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "unix", socket)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return Response{}, ErrNotRunning
		}
		return Response{}, fmt.Errorf("connect to the daemon at %s: %w", socket, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	} else {
		_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	}
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return Response{}, fmt.Errorf("send to the daemon: %w", err)
	}
	var resp Response
	if err := json.NewDecoder(io.LimitReader(conn, 16<<20)).Decode(&resp); err != nil {
		return Response{}, fmt.Errorf("read the daemon's answer: %w", err)
	}
	if resp.Error != "" {
		return resp, errors.New(resp.Error)
	}
	return resp, nil
}

// serveControl listens on socket, which start fixed (a reload cannot move it).
func (d *Daemon) serveControl(ctx context.Context, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create control socket directory: %w", err)
	}
	// A socket left by a daemon that died is in the way; a live one is not
	// ours to take.
	if _, err := Call(ctx, path, Request{Command: "ping"}); err == nil {
		return fmt.Errorf("another daemon answers on %s", path)
	}
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("restrict %s: %w", path, err)
	}
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	defer os.Remove(path)
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("accept on %s: %w", path, err)
		}
		go d.serveConn(ctx, conn)
	}
}

func (d *Daemon) serveConn(ctx context.Context, conn net.Conn) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	var req Request
	if err := json.NewDecoder(io.LimitReader(conn, 1<<20)).Decode(&req); err != nil {
		_ = json.NewEncoder(conn).Encode(Response{Error: "bad request: " + err.Error()})
		return
	}
	resp, err := d.do(ctx, req)
	if err != nil {
		resp.Error = err.Error()
	}
	_ = json.NewEncoder(conn).Encode(resp)
}

// do carries out one control request.
func (d *Daemon) do(ctx context.Context, req Request) (Response, error) {
	switch req.Command {
	case "ping":
		return Response{}, nil
	case "status":
		st, err := d.status(ctx)
		return Response{Status: &st}, err
	}
	prefixes := make([]netip.Prefix, 0, len(req.Prefixes))
	for _, s := range req.Prefixes {
		p, err := maps.ParsePrefix(s)
		if err != nil {
			return Response{}, err
		}
		prefixes = append(prefixes, p)
	}
	if len(prefixes) == 0 {
		return Response{}, errors.New("no address or prefix given")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	switch req.Command {
	case "ban":
		return d.manualBan(ctx, prefixes, req)
	case "unban":
		return d.manualUnban(ctx, prefixes)
	case "allow", "disallow":
		return d.manualAllow(prefixes, req.Command == "allow")
	}
	return Response{}, fmt.Errorf("unknown command %q", req.Command)
}

func (d *Daemon) manualBan(ctx context.Context, prefixes []netip.Prefix, req Request) (Response, error) {
	scope, err := maps.ParseScope(orDefault(req.Scope, "all"))
	if err != nil {
		return Response{}, err
	}
	now := d.now()
	var expires time.Time
	if !req.Permanent {
		if req.Seconds <= 0 {
			return Response{}, errors.New("a ban needs a positive duration or permanent")
		}
		expires = now.Add(time.Duration(req.Seconds) * time.Second)
	}
	reason := orDefault(req.Reason, "manual")
	var (
		kbans []maps.Ban
		sbans []store.Ban
		resp  Response
	)
	for _, p := range prefixes {
		kbans = append(kbans, maps.Ban{Prefix: p, Scope: scope, Origin: maps.OriginManual, Reason: reason, Expires: expires})
		sbans = append(sbans, store.Ban{Prefix: p, Scope: store.Scope(scope.String()), Origin: store.OriginManual, Reason: reason, Start: now, Expires: expires})
	}
	if err := d.st.Commit(ctx, store.Batch{Bans: sbans}); err != nil {
		return Response{}, fmt.Errorf("record bans: %w", err)
	}
	if err := d.dp.Maps.AddBans(kbans); err != nil {
		return Response{}, err
	}
	for _, b := range kbans {
		d.eng.ManualBan(b.Prefix, scopeToVerdict(b.Scope.String()), expires, now)
		until := "permanently"
		if !expires.IsZero() {
			until = "until " + expires.UTC().Format(time.RFC3339)
		}
		resp.Messages = append(resp.Messages, fmt.Sprintf("banned %s (scope %s) %s", b.Prefix, b.Scope, until))
		d.log.Info("ban", "prefix", b.Prefix, "scope", b.Scope, "origin", "manual", "reason", reason, "evidence", 0)
	}
	return resp, nil
}

func (d *Daemon) manualUnban(ctx context.Context, prefixes []netip.Prefix) (Response, error) {
	now := d.now()
	var resp Response
	for _, p := range prefixes {
		kerr := d.dp.Maps.DeleteBan(p)
		if kerr != nil && !errors.Is(kerr, maps.ErrNotFound) {
			return resp, kerr
		}
		n, err := d.st.Bans(ctx, store.BanFilter{Prefix: p, Since: time.Time{}})
		if err != nil {
			return resp, err
		}
		inForce := false
		for _, b := range n {
			if b.InForceAt(now) {
				inForce = true
			}
		}
		if errors.Is(kerr, maps.ErrNotFound) && !inForce {
			return resp, fmt.Errorf("%s is not banned (`portcullis bans` lists the bans)", p)
		}
		if err := d.st.Commit(ctx, store.Batch{Lifts: []store.Lift{{Prefix: p, At: now, Reason: "manual unban"}}}); err != nil {
			return resp, fmt.Errorf("record unban: %w", err)
		}
		// Old evidence must not ban the source again at once.
		d.eng.Unban(p, now)
		resp.Messages = append(resp.Messages, fmt.Sprintf("unbanned %s", p))
		d.log.Info("unban", "prefix", p, "reason", "manual unban")
	}
	return resp, nil
}

func (d *Daemon) manualAllow(prefixes []netip.Prefix, add bool) (Response, error) {
	var resp Response
	for _, p := range prefixes {
		if add {
			if err := d.dp.Maps.Allow(p); err != nil {
				return resp, err
			}
			resp.Messages = append(resp.Messages, fmt.Sprintf("allowed %s", p))
		} else {
			if err := d.dp.Maps.Disallow(p); err != nil {
				if errors.Is(err, maps.ErrNotFound) {
					return resp, fmt.Errorf("%s is not in the allowlist (`portcullis allow list` shows it)", p)
				}
				return resp, err
			}
			resp.Messages = append(resp.Messages, fmt.Sprintf("removed %s from the allowlist", p))
		}
		d.log.Info("allowlist", "prefix", p, "added", add)
	}
	return resp, d.refreshAllowlistLocked()
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
