package logs

import "testing"

func TestLooksLikeFailure(t *testing.T) {
	tests := []struct {
		line string
		want bool
	}{
		{"Dec  4 19:40:01 mx sshd[7]: Failed password for root from 198.18.0.9 port 2222 ssh2", true},
		{"Dec  4 19:40:01 mx postfix/submission/smtpd[7]: warning: unknown[198.18.0.9]: SASL LOGIN authentication failed: UGFzc3dvcmQ6", true},
		{"Dec  4 19:40:01 mx dovecot: imap-login: Disconnected (auth failed, 3 attempts in 6 secs): user=<a>", true},
		{"Dec  4 19:40:01 mx webmail[42]: Login failed for bob from 198.18.4.4", true},
		{"Dec  4 19:40:01 mx newmta[1]: client 198.18.0.9: Authentication failure (535)", true},
		{"Dec  4 19:40:01 mx postfix/smtpd[7]: connect from mail.example.org[198.18.0.7]", false},
		{"Dec  4 19:40:01 mx dovecot: imap-login: Login: user=<bob>, method=PLAIN, rip=198.18.0.5", false},
		{"Dec  4 19:40:01 mx postfix/qmgr[7]: 4ABC: from=<a@example.org>, size=1234, nrcpt=1 (queue active)", false},
	}
	for _, tt := range tests {
		if got := LooksLikeFailure([]byte(tt.line)); got != tt.want {
			t.Errorf("LooksLikeFailure(%q) = %v, want %v", tt.line, got, tt.want)
		}
	}
	ordinary := []byte(tests[5].line)
	if n := testing.AllocsPerRun(100, func() { LooksLikeFailure(ordinary) }); n > 0 {
		t.Errorf("LooksLikeFailure allocates %v times a line", n)
	}
}
