package logs

import "bytes"

// failureWords are fragments of what mail software writes about failed
// logins and abuse. They leave out the first letter, so "Failed password"
// and "authentication failed" both match without lower-casing the line
// (which would allocate for every line of ordinary traffic).
var failureWords = [][]byte{
	[]byte("uthentication fail"), []byte("uth failed"), []byte("assword mismatch"),
	[]byte("ailed password"), []byte("nvalid user"), []byte("nknown user"), []byte("ogin failed"),
	[]byte("elay access denied"), []byte("elay not permitted"), []byte("oo many errors"),
	[]byte("regreet"), []byte("NSBL"), []byte("nsbl"), []byte("ncorrect authentication"),
	[]byte("ynchronization error"), []byte("llegal user"), []byte("rute force"),
	[]byte("uthentication failure"), []byte("ogin incorrect"),
}

// LooksLikeFailure reports whether a line reads like a failed login or abuse,
// whatever software wrote it. A line that does and that no rule turns into an
// event is a gap: a new log format, or software no rule knows. `logs test`
// lists such lines; the daemon alerts on a streak of them.
func LooksLikeFailure(text []byte) bool {
	for _, w := range failureWords {
		if bytes.Contains(text, w) {
			return true
		}
	}
	return false
}
