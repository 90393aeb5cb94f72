package logs

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

// ReplayFile reads the log file at path to its end and hands its lines to
// handle in batches, for replaying rotated logs. A gzip-compressed file (told
// by its content, not its name; concatenated members included) is
// decompressed. Lines are numbered from 1 and named by path; a last line
// without a newline is handed over too, since the file is complete. Batches
// carry no positions: a replay is not resumed.
func ReplayFile(ctx context.Context, path string, maxLineLen int, handle func(Batch) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 64<<10)
	var r io.Reader = br
	if magic, _ := br.Peek(2); bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
		defer zr.Close()
		r = zr
	}

	lb := newLineBuffer(maxLineLen, defaultReadSize)
	var lines []Line
	var n int64
	for {
		_, err := lb.fill(r)
		lines = lines[:0]
		for {
			text, _, ok := lb.next()
			if !ok {
				break
			}
			n++
			lines = append(lines, Line{Text: text, Origin: Origin{File: path, Line: n}})
		}
		done := errors.Is(err, io.EOF)
		if done {
			if text, raw := lb.rest(); raw > 0 {
				n++
				lines = append(lines, Line{Text: text, Origin: Origin{File: path, Line: n}})
			}
		} else if err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
		if len(lines) > 0 {
			if err := handle(Batch{Lines: lines}); err != nil {
				return err
			}
		}
		if done {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}
