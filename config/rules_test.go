package config

import (
	"strings"
	"testing"
)

func TestCustomRulesAreCheckedWithTheirLines(t *testing.T) {
	file := `[logs]
files = ["/var/log/mail.log"]

[[logs.rule]]
name = "webmail"
service = "webmail"
kind = "auth_failure"
pattern = '^login failed for (?P<user>\S+) from (?P<ip>\S+)$'

[[logs.rule]]
name = "broken"
service = "x"
kind = "nonsense"
pattern = 'from (\S+)$'
`
	_, err := Parse([]byte(file), "portcullis.toml")
	if err == nil {
		t.Fatal("a broken rule was accepted")
	}
	got := err.Error()
	for _, want := range []string{
		`portcullis.toml:10: logs.rule[1]: custom rule broken: kind "nonsense"`,
		`portcullis.toml:10: logs.rule[1]: custom rule broken: pattern: no (?P<ip>...) group`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("errors\n%s\nlack %q", got, want)
		}
	}
	if strings.Contains(got, "logs.rule[0]") {
		t.Errorf("the good rule was reported:\n%s", got)
	}

	good := file[:strings.Index(file, "[[logs.rule]]\nname = \"broken\"")]
	cfg, err := Parse([]byte(good), "portcullis.toml")
	if err != nil {
		t.Fatal(err)
	}
	rules := cfg.Logs.CustomRules()
	if len(rules) != 1 || rules[0].Name != "webmail" || rules[0].Kind != "auth_failure" {
		t.Errorf("rules %+v, want the webmail rule", rules)
	}
}
