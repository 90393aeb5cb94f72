package loader

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Mode is how XDP is attached.
type Mode string

// The attach modes.
const (
	ModeAuto    Mode = "auto"    // native, falling back to generic
	ModeNative  Mode = "native"  // in the driver
	ModeGeneric Mode = "generic" // in the kernel's network stack, for any driver
)

// ParseMode reads auto, native or generic.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeAuto, ModeNative, ModeGeneric:
		return m, nil
	}
	return "", fmt.Errorf("unknown mode %q (want auto, native or generic)", s)
}

// ErrNotAttached means the interface has no portcullis link.
var ErrNotAttached = errors.New("not attached")

// Attachment is one interface the program runs on.
type Attachment struct {
	Iface   string `json:"iface"`
	Ifindex int    `json:"ifindex"`
	Mode    Mode   `json:"mode"` // native or generic, as the kernel reports it
	LinkID  uint32 `json:"link_id"`
	// Stale is set when the link outlived its interface (removed, or
	// re-created under the same name): it enforces nothing.
	Stale bool `json:"stale,omitempty"`
}

func linksDir(pinDir string) string { return filepath.Join(pinDir, "links") }

type pinnedLink struct {
	iface string
	link  link.Link
}

// pinnedLinks opens every pinned link; the caller closes them.
func pinnedLinks(pinDir string) ([]pinnedLink, error) {
	entries, err := os.ReadDir(linksDir(pinDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list pinned links: %w", err)
	}
	var out []pinnedLink
	for _, e := range entries {
		l, err := link.LoadPinnedLink(filepath.Join(linksDir(pinDir), e.Name()), nil)
		if err != nil {
			for _, pl := range out {
				pl.link.Close()
			}
			return nil, fmt.Errorf("open pinned link %s: %w", e.Name(), err)
		}
		out = append(out, pinnedLink{iface: e.Name(), link: l})
	}
	return out, nil
}

// Attach runs the program on iface. Attaching where it already runs is a
// no-op that reports the existing attachment; a link left behind by an
// interface that was removed or re-created is replaced.
func (d *Datapath) Attach(iface string, mode Mode) (Attachment, bool, error) {
	l, err := lockDir(d.pinDir)
	if err != nil {
		return Attachment{}, false, fmt.Errorf("open pin directory: %w", err)
	}
	defer l.unlock()

	nl, err := netlink.LinkByName(iface)
	if err != nil {
		return Attachment{}, false, fmt.Errorf("interface %q: %w", iface, errNoIface(err))
	}
	ifindex := nl.Attrs().Index
	pin := filepath.Join(linksDir(d.pinDir), iface)

	if existing, err := link.LoadPinnedLink(pin, nil); err == nil {
		a, err := describe(iface, existing)
		if err == nil && !a.Stale && a.Ifindex == ifindex {
			existing.Close()
			return a, false, nil
		}
		existing.Close()
		// The interface went away or was re-created: the old link holds
		// nothing. Replace it.
		if err := os.Remove(pin); err != nil {
			return Attachment{}, false, fmt.Errorf("remove stale link of %s: %w", iface, err)
		}
		d.log.Warn("replacing stale xdp link", "iface", iface)
	} else if !errors.Is(err, os.ErrNotExist) {
		return Attachment{}, false, fmt.Errorf("open pinned link of %s: %w", iface, err)
	}

	if attrs := nl.Attrs(); attrs.Xdp != nil && attrs.Xdp.Attached {
		return Attachment{}, false, fmt.Errorf("%s already runs another XDP program (id %d) that portcullis did not attach; detach it first (`ip link set dev %s xdp off`)", iface, attrs.Xdp.ProgId, iface)
	}

	var lk link.Link
	switch mode {
	case ModeNative:
		lk, err = d.attach(ifindex, link.XDPDriverMode)
	case ModeGeneric:
		lk, err = d.attach(ifindex, link.XDPGenericMode)
	case ModeAuto, "":
		lk, err = d.attach(ifindex, link.XDPDriverMode)
		if err != nil {
			d.log.Warn("native XDP not available, using generic mode (slower, same verdicts)", "iface", iface, "reason", err)
			lk, err = d.attach(ifindex, link.XDPGenericMode)
		}
	default:
		return Attachment{}, false, fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil {
		return Attachment{}, false, fmt.Errorf("attach xdp to %s: %w", iface, err)
	}
	defer lk.Close()
	if err := lk.Pin(pin); err != nil {
		return Attachment{}, false, fmt.Errorf("pin link of %s: %w", iface, err)
	}
	a, err := describe(iface, lk)
	if err != nil {
		return Attachment{}, false, err
	}
	d.log.Info("attached", "iface", iface, "mode", a.Mode)
	return a, true, nil
}

func (d *Datapath) attach(ifindex int, flags link.XDPAttachFlags) (link.Link, error) {
	return link.AttachXDP(link.XDPOptions{Program: d.prog, Interface: ifindex, Flags: flags})
}

func errNoIface(err error) error {
	var nf netlink.LinkNotFoundError
	if errors.As(err, &nf) {
		return errors.New("no such interface")
	}
	return err
}

// describe reports a link's interface and mode, as the kernel sees them now.
func describe(iface string, l link.Link) (Attachment, error) {
	info, err := l.Info()
	if err != nil {
		return Attachment{}, fmt.Errorf("link info of %s: %w", iface, err)
	}
	a := Attachment{Iface: iface, LinkID: uint32(info.ID)}
	if x := info.XDP(); x != nil {
		a.Ifindex = int(x.Ifindex)
	}
	nl, err := netlink.LinkByIndex(a.Ifindex)
	if a.Ifindex == 0 || err != nil || nl.Attrs().Name != iface {
		a.Stale = true
		return a, nil
	}
	a.Mode = ModeNative
	if x := nl.Attrs().Xdp; x != nil && x.AttachMode == unix.XDP_FLAGS_SKB_MODE {
		a.Mode = ModeGeneric
	}
	return a, nil
}

// Attachments lists the interfaces the pinned datapath runs on.
func Attachments(pinDir string) ([]Attachment, error) {
	links, err := pinnedLinks(pinDir)
	if err != nil {
		return nil, err
	}
	var out []Attachment
	for _, pl := range links {
		a, err := describe(pl.iface, pl.link)
		pl.link.Close()
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Iface < out[j].Iface })
	return out, nil
}

// Detach stops the program on iface by removing its pinned link.
func Detach(pinDir, iface string) error {
	l, err := lockDir(pinDir)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s: %w (nothing is loaded in %s)", iface, ErrNotAttached, pinDir)
	}
	if err != nil {
		return fmt.Errorf("open pin directory: %w", err)
	}
	defer l.unlock()
	return detach(pinDir, iface)
}

func detach(pinDir, iface string) error {
	pin := filepath.Join(linksDir(pinDir), iface)
	lk, err := link.LoadPinnedLink(pin, nil)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s: %w", iface, ErrNotAttached)
	}
	if err != nil {
		return fmt.Errorf("open pinned link of %s: %w", iface, err)
	}
	defer lk.Close()
	// Unpinning drops the last reference once lk is closed; the kernel
	// detaches the program then.
	if err := lk.Unpin(); err != nil {
		return fmt.Errorf("unpin link of %s: %w", iface, err)
	}
	return nil
}

// DetachAll detaches every interface; with purge it also removes the pinned
// program and maps, that is every ban. It returns the interfaces detached.
func DetachAll(pinDir string, purge bool) ([]string, error) {
	l, err := lockDir(pinDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("nothing is loaded in %s: %w", pinDir, ErrNotAttached)
	}
	if err != nil {
		return nil, fmt.Errorf("open pin directory: %w", err)
	}
	defer l.unlock()
	links, err := pinnedLinks(pinDir)
	if err != nil {
		return nil, err
	}
	var done []string
	for _, pl := range links {
		pl.link.Close()
		if err := detach(pinDir, pl.iface); err != nil {
			return done, err
		}
		done = append(done, pl.iface)
	}
	if purge {
		if err := os.RemoveAll(pinDir); err != nil {
			return done, fmt.Errorf("remove %s: %w", pinDir, err)
		}
		return done, nil
	}
	if len(done) == 0 {
		return nil, fmt.Errorf("no interface: %w", ErrNotAttached)
	}
	return done, nil
}

// Info describes the pinned program.
type Info struct {
	ProgramID uint32 `json:"program_id"`
	Tag       string `json:"tag"`
}

// ProgramInfo reports the pinned program's id and tag.
func ProgramInfo(pinDir string) (Info, error) {
	p, err := ebpf.LoadPinnedProgram(filepath.Join(pinDir, progPin), nil)
	if err != nil {
		return Info{}, fmt.Errorf("open pinned program: %w", err)
	}
	defer p.Close()
	pi, err := p.Info()
	if err != nil {
		return Info{}, fmt.Errorf("program info: %w", err)
	}
	id, _ := pi.ID()
	return Info{ProgramID: uint32(id), Tag: pi.Tag}, nil
}
