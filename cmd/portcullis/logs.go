package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/portcullis-mail/portcullis/config"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/portcullis-mail/portcullis/logs"
)

// logsCommand is "portcullis logs": tools for the log parsers.
func logsCommand() *cli.Command {
	return &cli.Command{
		Name:  "logs",
		Usage: "work with mail server logs",
		Subcommands: []*cli.Command{{
			Name:      "test",
			Usage:     "show the events the parsers find in log files, and lines that look like failures but match no rule",
			ArgsUsage: "FILE... (- for standard input; .gz files are read decompressed)",
			Flags: []cli.Flag{
				&cli.BoolFlag{Name: "json", Usage: "print one JSON object per event"},
			},
			Action: logsTest,
		}},
	}
}

// maxSuspicious bounds the unmatched lines listed.
const maxSuspicious = 50

type eventJSON struct {
	File     string `json:"file"`
	Line     int64  `json:"line"`
	Time     string `json:"time"`
	Service  string `json:"service"`
	Kind     string `json:"kind"`
	IP       string `json:"ip"`
	User     string `json:"user"`
	Attempts int    `json:"attempts"`
	Rule     string `json:"rule"`
}

type ruleTotal struct {
	kind     logs.Kind
	events   int
	attempts int
	addrs    map[string]bool
}

type suspicious struct {
	file string
	line int64
	text string
}

func logsTest(cCtx *cli.Context) error {
	if cCtx.NArg() == 0 {
		return errors.New("logs test: no files given (use - for standard input)")
	}
	asJSON := cCtx.Bool("json")
	out := cCtx.App.Writer
	if out == nil {
		out = os.Stdout
	}
	// Stamps without a year are placed relative to when the file was last
	// written, so old logs get the right year.
	ref := time.Now()
	skipped := false
	skips := map[string]int{}
	// Custom rules come from the configuration file, when there is one,
	// so users can try their rules on their own logs.
	var custom []logs.CustomRule
	if path := globalString(cCtx, "config"); path != "" {
		cfg, err := config.Load(path)
		if err != nil {
			return err
		}
		custom = cfg.Logs.CustomRules()
	}
	p, err := logs.NewParser(logs.ParserOptions{
		Custom: custom,
		Now:    func() time.Time { return ref },
		OnSkip: func(rule, reason string) {
			skipped = true
			skips[rule+": "+reason]++
		},
	})
	if err != nil {
		return fmt.Errorf("logs test: %w", err)
	}
	var tw *tabwriter.Writer
	var enc *json.Encoder
	if asJSON {
		enc = json.NewEncoder(out)
	} else {
		tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "FILE:LINE\tTIME\tSERVICE\tKIND\tADDRESS\tUSER\tATTEMPTS\tRULE")
	}
	totals := map[string]*ruleTotal{}
	var unmatched []suspicious
	unmatchedCount, lines := 0, 0
	var encErr error
	for _, name := range cCtx.Args().Slice() {
		r, mtime, closeFn, err := openLog(name, cCtx.App.Reader)
		if err != nil {
			return err
		}
		if !mtime.IsZero() {
			ref = mtime
		} else {
			ref = time.Now()
		}
		err = eachLine(r, func(n int64, text []byte) {
			lines++
			matched := false
			skipped = false
			p.Parse(logs.Line{Text: text, Origin: logs.Origin{File: name, Line: n}}, func(e logs.Event) {
				matched = true
				t := totals[e.Rule]
				if t == nil {
					t = &ruleTotal{kind: e.Kind, addrs: map[string]bool{}}
					totals[e.Rule] = t
				}
				t.events++
				t.attempts += e.Attempts
				t.addrs[e.Addr.String()] = true
				if asJSON {
					if err := enc.Encode(eventJSON{name, n, e.Time.UTC().Format(time.RFC3339Nano), e.Service, string(e.Kind), e.Addr.String(), e.User, e.Attempts, e.Rule}); err != nil && encErr == nil {
						encErr = err
					}
					return
				}
				fmt.Fprintf(tw, "%s:%d\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", name, n, e.Time.Local().Format(time.DateTime), e.Service, e.Kind, e.Addr, printable(e.User, 40), e.Attempts, e.Rule)
			})
			if !matched && !skipped && logs.LooksLikeFailure(text) {
				unmatchedCount++
				if len(unmatched) < maxSuspicious {
					unmatched = append(unmatched, suspicious{name, n, printable(string(text), 200)})
				}
			}
		})
		closeFn()
		if err != nil {
			return fmt.Errorf("read %s: %w", name, err)
		}
	}
	if encErr != nil {
		return fmt.Errorf("write events: %w", encErr)
	}
	if asJSON {
		return nil
	}
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "RULE\tKIND\tEVENTS\tATTEMPTS\tADDRESSES")
	for _, n := range slices.Sorted(maps.Keys(totals)) {
		t := totals[n]
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\n", n, t.kind, t.events, t.attempts, len(t.addrs))
	}
	if len(skips) > 0 {
		fmt.Fprintln(tw, "\nLINES RECOGNIZED BUT NOT COUNTED ON PURPOSE\tLINES")
		for _, r := range slices.Sorted(maps.Keys(skips)) {
			fmt.Fprintf(tw, "%s\t%d\n", r, skips[r])
		}
	}
	fmt.Fprintf(tw, "\n%d lines read, %d matched no rule but look like failures", lines, unmatchedCount)
	if unmatchedCount > len(unmatched) {
		fmt.Fprintf(tw, " (first %d shown)", len(unmatched))
	}
	fmt.Fprintln(tw, ":")
	for _, s := range unmatched {
		fmt.Fprintf(tw, "%s:%d\t%s\n", s.file, s.line, s.text)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// openLog opens a file, or standard input for "-", decompressing gzip
// (by suffix or magic bytes). It returns the file's modification time
// (zero for standard input).
func openLog(name string, stdin io.Reader) (io.Reader, time.Time, func(), error) {
	var r io.Reader
	var mtime time.Time
	closeFn := func() {}
	if name == "-" {
		if stdin == nil {
			stdin = os.Stdin
		}
		r = stdin
	} else {
		f, err := os.Open(name)
		if err != nil {
			return nil, time.Time{}, nil, fmt.Errorf("open %s: %w", name, err)
		}
		if fi, err := f.Stat(); err == nil {
			mtime = fi.ModTime()
		}
		r, closeFn = f, func() { f.Close() }
	}
	br := bufio.NewReaderSize(r, 64<<10)
	magic, _ := br.Peek(2)
	if strings.HasSuffix(name, ".gz") || bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			closeFn()
			return nil, time.Time{}, nil, fmt.Errorf("open %s: gzip: %w", name, err)
		}
		return zr, mtime, closeFn, nil
	}
	return br, mtime, closeFn, nil
}

// eachLine calls fn for each line of r (numbered from 1) without its line
// ending. Lines longer than the parser reads are passed cut to one byte
// more than that, so the parser skips them without this holding them whole.
func eachLine(r io.Reader, fn func(n int64, text []byte)) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var long []byte
	var n int64
	for {
		chunk, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			if len(long) <= logs.MaxLineLength {
				long = append(long, chunk...)
			}
			continue
		}
		if len(chunk) == 0 && err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		line := chunk
		if long != nil {
			if len(long) <= logs.MaxLineLength {
				long = append(long, chunk...)
			}
			line, long = long, nil
		}
		line = bytes.TrimSuffix(line, []byte("\n"))
		line = bytes.TrimSuffix(line, []byte("\r"))
		n++
		fn(n, line)
		if err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
	}
}

// printable quotes control characters and cuts s to max runes, so log
// content cannot move the terminal's cursor or break the table.
func printable(s string, max int) string {
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n == max {
			b.WriteString("…")
			break
		}
		if r < 0x20 || r == 0x7f || r == '\t' {
			fmt.Fprintf(&b, "\\x%02x", r)
		} else {
			b.WriteRune(r)
		}
		n++
	}
	return b.String()
}
