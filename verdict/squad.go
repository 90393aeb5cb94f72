package verdict

import (
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// squad is one /24 or /48 and the sources in it banned lately.
type squad struct {
	members  []member // oldest first
	offences int
	until    int64
	scope    Scope
}

type member struct {
	source key
	at     int64
}

// joinSquad adds a freshly banned source to its squad and returns the
// squad's ban when it is complete, or a note for the member's reason when
// the prefix may not be banned.
func (e *Engine) joinSquad(src key, addr netip.Addr, now time.Time) (*Decision, string) {
	prefix := e.squadPrefix(addr)
	s := e.addMember(prefix, src, now.UnixNano())
	tnow := now.UnixNano()
	if len(s.members) < e.cfg.SquadSources || s.until > tnow {
		return nil, ""
	}
	if a, ok := e.allow.overlaps(prefix); ok {
		return nil, fmt.Sprintf("; squad %s not banned: holds allowlisted %s", prefix, a)
	}
	if e.past(s.until, tnow) {
		s.offences = 0
	}
	s.offences++
	d := escalate(e.cfg.SquadBanTime, e.cfg.Factor, s.offences, max(e.cfg.MaxBanTime, e.cfg.SquadBanTime))
	span := time.Duration(tnow - s.members[0].at)
	reason := fmt.Sprintf("%d sources of %s banned in %s", len(s.members), prefix, human(span))
	if s.offences > 1 {
		reason += fmt.Sprintf("; ban %d in a row: %s", s.offences, human(d))
	}
	dec := &Decision{
		Prefix: prefix, Scope: e.cfg.Scope, Origin: OriginSubnet,
		Start: now, Expires: now.Add(d), Reason: reason,
		Evidence: len(s.members), Offence: s.offences,
	}
	s.until, s.scope = tnow+int64(d), e.cfg.Scope
	s.members = s.members[:0] // the next squad ban needs fresh evidence
	return dec, ""
}

// addMember records src as banned at t in prefix's squad, dropping members
// banned before the squad window.
func (e *Engine) addMember(prefix netip.Prefix, src key, t int64) *squad {
	s, ok := e.squads[prefix]
	if !ok {
		s = &squad{}
		e.squads[prefix] = s
	}
	s.members = slices.DeleteFunc(s.members, func(m member) bool {
		return m.source == src || m.at <= t-int64(e.cfg.SquadWindow)
	})
	s.members = append(s.members, member{source: src, at: t})
	return s
}

func (e *Engine) squadPrefix(addr netip.Addr) netip.Prefix {
	bits := e.cfg.SquadBitsV6
	if addr.Is4() {
		bits = e.cfg.SquadBitsV4
	}
	p, _ := addr.Prefix(bits)
	return p
}
