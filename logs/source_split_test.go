package logs

import (
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

func TestLineBufferSplits(t *testing.T) {
	tests := []struct {
		name     string
		input    string
		maxLen   int
		want     []string
		wantRaw  int64 // input taken by the complete lines
		wantRest string
		wantCut  int64
	}{
		{"lines", "a\nbb\n", 8, []string{"a", "bb"}, 5, "", 0},
		{"empty lines", "\n\nx\n", 8, []string{"", "", "x"}, 4, "", 0},
		{"partial last line", "a\nbb", 8, []string{"a"}, 2, "bb", 0},
		{"CRLF", "a\r\nb\r\n", 8, []string{"a", "b"}, 6, "", 0},
		{"CR at the limit is the line ending", "12345678\r\n", 8, []string{"12345678"}, 10, "", 0},
		{"cut", "123456789\nok\n", 8, []string{"12345678", "ok"}, 13, "", 1},
		{"cut line spanning reads", strings.Repeat("x", 100) + "\nok\n", 8, []string{"xxxxxxxx", "ok"}, 104, "", 1},
		{"cut line without end yet", "ok\n" + strings.Repeat("y", 100), 8, []string{"ok"}, 3, "yyyyyyyy", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newLineBuffer(tt.maxLen, 16)
			// One byte per read: every split point is met.
			r := iotest.OneByteReader(strings.NewReader(tt.input))
			var got []string
			var raw int64
			for {
				_, err := b.fill(r)
				for {
					line, n, ok := b.next()
					if !ok {
						break
					}
					got = append(got, string(line))
					raw += n
				}
				if err == io.EOF {
					break
				}
			}
			rest, restRaw := b.rest()
			if !slices.Equal(got, tt.want) {
				t.Errorf("lines = %q, want %q", got, tt.want)
			}
			if raw != tt.wantRaw {
				t.Errorf("raw = %d, want %d", raw, tt.wantRaw)
			}
			if string(rest) != tt.wantRest {
				t.Errorf("rest = %q, want %q", rest, tt.wantRest)
			}
			if raw+restRaw != int64(len(tt.input)) {
				t.Errorf("lines and rest account for %d bytes of %d", raw+restRaw, len(tt.input))
			}
			if b.cut != tt.wantCut {
				t.Errorf("cut = %d, want %d", b.cut, tt.wantCut)
			}
		})
	}
}
