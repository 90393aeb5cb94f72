package logs

import (
	"bytes"
	"context"
	"io"
)

// Source follows one or more logs and hands their lines over in batches.
type Source interface {
	// Run delivers batches to handle, one at a time, until ctx is done or
	// handle returns an error; it returns that error, or ctx's.
	Run(ctx context.Context, handle func(Batch) error) error
}

// Batch is a run of lines read together, and where reading stands after them.
//
// The Text of every Line points into a buffer the source reuses: it is valid
// only until handle returns. A consumer that keeps a line past that copies it.
type Batch struct {
	// Lines are the complete lines read, in order.
	Lines []Line
	// Positions are where the source stands once the lines are consumed. The
	// consumer saves them (with whatever it derived from the lines, in one
	// transaction where it can) before handle returns nil; a batch may carry
	// positions and no lines, to record where a first start began.
	Positions []Position
}

// DefaultMaxLineLen is the longest line a source hands over; longer lines are
// cut to it.
const DefaultMaxLineLen = 64 << 10

// defaultReadSize is how much a source reads at once: large enough that one
// read() yields thousands of typical log lines.
const defaultReadSize = 256 << 10

// lineBuffer splits bytes read from a stream into lines without copying them.
// Lines longer than maxLen are cut to maxLen and the rest of the line is
// discarded as it arrives, so a line without end never holds more than maxLen
// bytes.
type lineBuffer struct {
	buf        []byte
	start, end int // unconsumed bytes are buf[start:end]
	maxLen     int

	// cutting is set while the line at start has been cut: buf[start:start+maxLen]
	// is what is kept, and input is discarded up to the next newline.
	cutting bool
	// dropped counts bytes discarded from the line being cut.
	dropped int64
	// cut counts the lines that were cut.
	cut int64
}

func newLineBuffer(maxLen, readSize int) lineBuffer {
	if maxLen <= 0 {
		maxLen = DefaultMaxLineLen
	}
	if readSize <= 0 {
		readSize = defaultReadSize
	}
	// Room for a kept line head plus a full read, so every fill makes
	// progress.
	return lineBuffer{buf: make([]byte, max(readSize, 2*maxLen)+maxLen), maxLen: maxLen}
}

// fill moves the unconsumed bytes to the front and reads once from r. Lines
// returned by next before the call are invalid after it.
func (b *lineBuffer) fill(r io.Reader) (int, error) {
	if b.start > 0 {
		b.end = copy(b.buf, b.buf[b.start:b.end])
		b.start = 0
	}
	n, err := r.Read(b.buf[b.end:])
	b.end += n
	return n, err
}

// next returns the next complete line without its line ending, and how many
// bytes of input it took (line ending and discarded bytes included).
func (b *lineBuffer) next() (line []byte, raw int64, ok bool) {
	if b.cutting {
		head := b.start + b.maxLen
		i := bytes.IndexByte(b.buf[head:b.end], '\n')
		if i < 0 {
			b.dropped += int64(b.end - head)
			b.end = head
			return nil, 0, false
		}
		line = b.buf[b.start:head]
		raw = int64(b.maxLen) + b.dropped + int64(i) + 1
		b.start = head + i + 1
		b.cutting, b.dropped = false, 0
		b.cut++
		return line, raw, true
	}
	data := b.buf[b.start:b.end]
	i := bytes.IndexByte(data, '\n')
	if i < 0 {
		// One byte more than maxLen may be the CR of a CRLF whose LF is
		// still to come.
		if len(data) > b.maxLen+1 {
			// No end in sight: keep the head, drop the rest as it comes.
			b.cutting = true
			b.dropped = int64(len(data) - b.maxLen)
			b.end = b.start + b.maxLen
		}
		return nil, 0, false
	}
	line = data[:i]
	if i > 0 && line[i-1] == '\r' {
		line = line[:i-1]
	}
	if len(line) > b.maxLen {
		line = line[:b.maxLen]
		b.cut++
	}
	b.start += i + 1
	return line, int64(i) + 1, true
}

// rest returns what is left unconsumed (a last line without its newline) and
// how many bytes of input it stands for, and empties the buffer.
func (b *lineBuffer) rest() (line []byte, raw int64) {
	line = b.buf[b.start:b.end]
	raw = int64(len(line)) + b.dropped
	if b.cutting {
		b.cut++
	} else if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	b.reset()
	return line, raw
}

// reset forgets everything buffered, as when the file was truncated.
func (b *lineBuffer) reset() {
	b.start, b.end = 0, 0
	b.cutting, b.dropped = false, 0
}
