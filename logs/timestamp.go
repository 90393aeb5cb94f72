package logs

import "time"

// The timestamp shapes a log line can start with. Each parser returns the
// time, the rest of the line after the stamp and its separating space, and
// whether the shape matched. They are written by hand rather than with
// time.Parse so that a line costs no allocation: time.FixedZone allocates,
// so stamps that carry a zone are returned in UTC instead.

// clock gives the reference time and zone for stamps that omit the year or
// the zone.
type clock struct {
	now func() time.Time
	loc *time.Location
}

// parseTimestamp reads the timestamp at the start of b in any of the shapes
// mail software writes: RFC 3164 ("Dec  4 19:40:01", also "Dec 04" as
// Postfix's maillog_file and Dovecot's log_path write it), RFC 3339 / ISO 8601
// with or without fraction and zone (rsyslog high precision, journal exports,
// "2013-06-12 03:57:58" as Exim and Dovecot write it) and TAI64N
// ("@4000000068f1..." from daemontools' multilog).
func (c clock) parseTimestamp(b []byte) (time.Time, []byte, bool) {
	if len(b) == 0 {
		return time.Time{}, b, false
	}
	switch {
	case b[0] == '@':
		return parseTAI64N(b)
	case isDigit(b[0]):
		return c.parseISO(b)
	default:
		return c.parseRFC3164(b)
	}
}

var months = [12]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

// parseRFC3164 reads "Mmm dd hh:mm:ss" (day space- or zero-padded, an
// optional fraction after the seconds) and infers the year: the stamp is put
// in the reference year, and if that would be more than a day in the future
// (a December line read in January) in the year before.
func (c clock) parseRFC3164(b []byte) (time.Time, []byte, bool) {
	// "Dec 4 19:40:01" is 14 bytes.
	if len(b) < 14 || b[3] != ' ' {
		return time.Time{}, b, false
	}
	month := 0
	for i, m := range months {
		if b[0] == m[0] && b[1] == m[1] && b[2] == m[2] {
			month = i + 1
			break
		}
	}
	if month == 0 {
		return time.Time{}, b, false
	}
	// The day is space-padded ("Dec  4"), zero-padded ("Dec 04", Postfix's
	// maillog_file and Dovecot's log_path) or, in logs that passed through
	// tools squeezing spaces, bare ("Dec 4").
	var day, i int
	switch {
	case b[4] == ' ' && isDigit(b[5]):
		day, i = int(b[5]-'0'), 6
	case isDigit(b[4]) && isDigit(b[5]):
		day, i = int(b[4]-'0')*10+int(b[5]-'0'), 6
	case isDigit(b[4]) && b[5] == ' ':
		day, i = int(b[4]-'0'), 5
	default:
		return time.Time{}, b, false
	}
	if len(b) < i+9 || b[i] != ' ' {
		return time.Time{}, b, false
	}
	hh, mm, ss, ok := parseClock(b[i+1 : i+9])
	if !ok || day < 1 || day > 31 {
		return time.Time{}, b, false
	}
	nsec, rest := parseFraction(b[i+9:])
	if len(rest) > 0 {
		if rest[0] != ' ' {
			return time.Time{}, b, false
		}
		rest = rest[1:]
	}
	now := c.now().In(c.loc)
	// Feb 29 exists only in leap years: walk back to the latest year in
	// which the stamp is a real date not in the future.
	for year := now.Year(); year >= now.Year()-4; year-- {
		t := time.Date(year, time.Month(month), day, hh, mm, ss, nsec, c.loc)
		if t.Day() != day {
			continue
		}
		if t.After(now.Add(24 * time.Hour)) {
			continue
		}
		return t, rest, true
	}
	return time.Time{}, b, false
}

// parseISO reads "2006-01-02T15:04:05", with 'T' or a space between date
// and time, an optional fraction, and an optional zone ("Z", "+01:00",
// "+0100"; for the space-separated shape also a separate " +0100" as Exim
// writes with log_timezone).
func (c clock) parseISO(b []byte) (time.Time, []byte, bool) {
	if len(b) < 19 || b[4] != '-' || b[7] != '-' || (b[10] != 'T' && b[10] != ' ') {
		return time.Time{}, b, false
	}
	year, ok1 := digits(b[0:4])
	month, ok2 := digits(b[5:7])
	day, ok3 := digits(b[8:10])
	hh, mm, ss, ok4 := parseClock(b[11:19])
	if !ok1 || !ok2 || !ok3 || !ok4 || month < 1 || month > 12 || day < 1 || day > 31 {
		return time.Time{}, b, false
	}
	nsec, rest := parseFraction(b[19:])
	offset, rest, zoned := parseZone(rest)
	if !zoned && b[10] == ' ' && len(rest) >= 6 && rest[0] == ' ' && (rest[1] == '+' || rest[1] == '-') {
		offset, rest, zoned = parseZone(rest[1:])
		if !zoned {
			rest = b[19:]
		}
	}
	if len(rest) > 0 {
		if rest[0] != ' ' {
			return time.Time{}, b, false
		}
		rest = rest[1:]
	}
	if zoned {
		t := time.Date(year, time.Month(month), day, hh, mm, ss, nsec, time.UTC).Add(-time.Duration(offset) * time.Second)
		return t, rest, true
	}
	t := time.Date(year, time.Month(month), day, hh, mm, ss, nsec, c.loc)
	if t.Day() != day {
		return time.Time{}, b, false
	}
	return t, rest, true
}

// parseZone reads "Z", "+hh:mm" or "+hhmm" at the start of b and returns the
// offset east of UTC in seconds.
func parseZone(b []byte) (int, []byte, bool) {
	if len(b) == 0 {
		return 0, b, false
	}
	if b[0] == 'Z' {
		return 0, b[1:], true
	}
	if b[0] != '+' && b[0] != '-' {
		return 0, b, false
	}
	var hh, mm int
	var n int
	switch {
	case len(b) >= 6 && b[3] == ':':
		h, ok1 := digits(b[1:3])
		m, ok2 := digits(b[4:6])
		if !ok1 || !ok2 {
			return 0, b, false
		}
		hh, mm, n = h, m, 6
	case len(b) >= 5:
		h, ok1 := digits(b[1:3])
		m, ok2 := digits(b[3:5])
		if !ok1 || !ok2 {
			return 0, b, false
		}
		hh, mm, n = h, m, 5
	default:
		return 0, b, false
	}
	if hh > 14 || mm > 59 {
		return 0, b, false
	}
	off := hh*3600 + mm*60
	if b[0] == '-' {
		off = -off
	}
	return off, b[n:], true
}

// parseTAI64N reads "@" and 24 hex digits: a TAI64 label (2^62 + 10 + Unix
// seconds, as daemontools writes it, leap seconds ignored) and nanoseconds.
func parseTAI64N(b []byte) (time.Time, []byte, bool) {
	if len(b) < 25 {
		return time.Time{}, b, false
	}
	var label, nsec uint64
	for _, ch := range b[1:17] {
		v, ok := hexVal(ch)
		if !ok {
			return time.Time{}, b, false
		}
		label = label<<4 | uint64(v)
	}
	for _, ch := range b[17:25] {
		v, ok := hexVal(ch)
		if !ok {
			return time.Time{}, b, false
		}
		nsec = nsec<<4 | uint64(v)
	}
	const base = 1<<62 + 10
	if label < base || label-base > 1<<40 || nsec >= 1e9 {
		return time.Time{}, b, false
	}
	rest := b[25:]
	if len(rest) > 0 {
		if rest[0] != ' ' {
			return time.Time{}, b, false
		}
		rest = rest[1:]
	}
	return time.Unix(int64(label-base), int64(nsec)).UTC(), rest, true
}

// parseClock reads "hh:mm:ss".
func parseClock(b []byte) (hh, mm, ss int, ok bool) {
	if len(b) != 8 || b[2] != ':' || b[5] != ':' {
		return 0, 0, 0, false
	}
	h, ok1 := digits(b[0:2])
	m, ok2 := digits(b[3:5])
	s, ok3 := digits(b[6:8])
	// 60 allows a leap second.
	if !ok1 || !ok2 || !ok3 || h > 23 || m > 59 || s > 60 {
		return 0, 0, 0, false
	}
	return h, m, s, true
}

// parseFraction reads an optional ".ddd" (up to nanoseconds; further digits
// are read and dropped).
func parseFraction(b []byte) (int, []byte) {
	if len(b) < 2 || (b[0] != '.' && b[0] != ',') || !isDigit(b[1]) {
		return 0, b
	}
	nsec, scale, i := 0, 100_000_000, 1
	for ; i < len(b) && isDigit(b[i]); i++ {
		nsec += int(b[i]-'0') * scale
		scale /= 10
	}
	return nsec, b[i:]
}

func digits(b []byte) (int, bool) {
	n := 0
	for _, ch := range b {
		if !isDigit(ch) {
			return 0, false
		}
		n = n*10 + int(ch-'0')
	}
	return n, len(b) > 0
}

func isDigit(ch byte) bool { return ch >= '0' && ch <= '9' }

func hexVal(ch byte) (byte, bool) {
	switch {
	case ch >= '0' && ch <= '9':
		return ch - '0', true
	case ch >= 'a' && ch <= 'f':
		return ch - 'a' + 10, true
	case ch >= 'A' && ch <= 'F':
		return ch - 'A' + 10, true
	}
	return 0, false
}
