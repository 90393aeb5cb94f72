package config

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// Error is one problem in a config file.
type Error struct {
	File string
	Line int    // 0 when the key is not in the file (a default conflicts)
	Key  string // dotted, e.g. "verdict.window"; empty for a syntax error
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in a config file, in the order of their
// lines; its message has one line per problem.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Load reads and parses the config file at path. A missing file is an error
// that matches fs.ErrNotExist; the caller decides whether defaults do.
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read config: %w", err)
	}
	return Parse(data, path)
}

// Parse reads a config file's content; name is what errors call the file.
// Keys the file leaves out keep their defaults. The error, when there is
// one, is an Errors listing every problem.
func Parse(data []byte, name string) (Config, error) {
	cfg := Default()
	var doc map[string]any
	if err := toml.Unmarshal(data, &doc); err != nil {
		// A syntax error stops everything: what follows cannot be read.
		e := &Error{File: name, Msg: err.Error()}
		var de *toml.DecodeError
		if errors.As(err, &de) {
			e.Line, _ = de.Position()
			e.Key = strings.Join(de.Key(), ".")
			e.Msg = strings.TrimPrefix(de.Error(), "toml: ")
		}
		return Config{}, Errors{e}
	}
	lines := keyLines(data)
	d := decoder{file: name, lines: lines}
	d.value(reflect.ValueOf(&cfg).Elem(), doc, "")
	for _, p := range cfg.problems() {
		d.errs = append(d.errs, &Error{File: name, Line: d.line(p.key), Key: p.key, Msg: p.msg})
	}
	if len(d.errs) > 0 {
		// By line; problems with no line (a default the file's values
		// conflict with) last.
		sort.SliceStable(d.errs, func(i, j int) bool {
			li, lj := d.errs[i].Line, d.errs[j].Line
			return li != 0 && (lj == 0 || li < lj)
		})
		return Config{}, d.errs
	}
	return cfg, nil
}

// keyLines maps every dotted key in the document (tables and values) to the
// line it is on. The document already parsed, so errors are not expected
// here; a key not found simply has no line.
func keyLines(data []byte) map[string]int {
	lines := map[string]int{}
	var p unstable.Parser
	p.Reset(data)
	var table []string
	arrays := map[string]int{} // how many [[x]] tables of each key so far
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table:
			table = nodeKey(&p, e, nil, lines)
		case unstable.ArrayTable:
			// The n-th [[logs.rule]] is logs.rule[n], as the decoder
			// names its keys.
			table = nodeKey(&p, e, nil, lines)
			whole := strings.Join(table, ".")
			n := arrays[whole]
			arrays[whole] = n + 1
			table[len(table)-1] = fmt.Sprintf("%s[%d]", table[len(table)-1], n)
			it := e.Key()
			for it.Next() {
				lines[strings.Join(table, ".")] = p.Shape(it.Node().Raw).Start.Line
			}
		case unstable.KeyValue:
			keyValueLines(&p, e, table, lines)
		}
	}
	return lines
}

// nodeKey records the lines of the key of e under prefix and returns the
// full key.
func nodeKey(p *unstable.Parser, e *unstable.Node, prefix []string, lines map[string]int) []string {
	key := slices.Clone(prefix)
	it := e.Key()
	for it.Next() {
		k := it.Node()
		key = append(key, string(k.Data))
		if _, seen := lines[strings.Join(key, ".")]; !seen {
			lines[strings.Join(key, ".")] = p.Shape(k.Raw).Start.Line
		}
	}
	return key
}

func keyValueLines(p *unstable.Parser, e *unstable.Node, table []string, lines map[string]int) {
	key := nodeKey(p, e, table, lines)
	// Keys of an inline table are on their own lines, or on the line of
	// the key that holds them.
	if v := e.Value(); v != nil && v.Kind == unstable.InlineTable {
		it := v.Children()
		for it.Next() {
			if c := it.Node(); c.Kind == unstable.KeyValue {
				keyValueLines(p, c, key, lines)
			}
		}
	}
}

// tomlDecoder is a type that reads its own value from what the TOML parser
// produced (string, bool, int64, float64, []any, map[string]any, dates).
type tomlDecoder interface {
	decodeTOML(v any) error
}

var prefixType = reflect.TypeFor[netip.Prefix]()

// decoder sets a Config from a parsed document, collecting an Error for
// every key it cannot use instead of stopping at the first.
type decoder struct {
	file  string
	lines map[string]int
	errs  Errors
}

func (d *decoder) fail(key, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: d.line(key), Key: key, Msg: fmt.Sprintf(format, args...)})
}

// line is the line of key, 0 when the file does not have it. An array
// element has the line of its array.
// line is where key is in the file, 0 when the file does not name it (a
// default that conflicts with what the file set). A list item is on its
// list's line; a key of the n-th [[table]] is under that table's header.
func (d *decoder) line(key string) int {
	if l, ok := d.lines[key]; ok {
		return l
	}
	if i := strings.LastIndexByte(key, '.'); i >= 0 && strings.HasSuffix(key[:i], "]") {
		if l, ok := d.lines[key[:i]]; ok {
			return l
		}
	}
	if i := strings.IndexByte(key, '['); i >= 0 {
		key = key[:i]
	}
	return d.lines[key]
}

// value sets rv from v; key names it in errors.
func (d *decoder) value(rv reflect.Value, v any, key string) {
	if td, ok := rv.Addr().Interface().(tomlDecoder); ok {
		if err := td.decodeTOML(v); err != nil {
			d.fail(key, "%v", err)
		}
		return
	}
	if rv.Type() == prefixType {
		d.prefix(rv, v, key)
		return
	}
	switch rv.Kind() {
	case reflect.Struct:
		d.table(rv, v, key)
	case reflect.Slice:
		items, ok := v.([]any)
		if !ok {
			d.fail(key, "want a list such as [...], got %s", describe(v))
			return
		}
		out := reflect.MakeSlice(rv.Type(), len(items), len(items))
		before := len(d.errs)
		for i, item := range items {
			d.value(out.Index(i), item, fmt.Sprintf("%s[%d]", key, i))
		}
		if len(d.errs) == before {
			rv.Set(out)
		}
	case reflect.String:
		s, ok := v.(string)
		if !ok {
			d.fail(key, "want a string in quotes, got %s", describe(v))
			return
		}
		rv.SetString(s)
	case reflect.Bool:
		b, ok := v.(bool)
		if !ok {
			d.fail(key, "want true or false, got %s", describe(v))
			return
		}
		rv.SetBool(b)
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, ok := v.(int64)
		if !ok {
			d.fail(key, "want a whole number, got %s", describe(v))
			return
		}
		if rv.CanInt() && !rv.OverflowInt(n) {
			rv.SetInt(n)
			return
		}
		if rv.CanUint() && n >= 0 && !rv.OverflowUint(uint64(n)) {
			rv.SetUint(uint64(n))
			return
		}
		lo, hi := intRange(rv)
		d.fail(key, "%d is out of range (%d to %d)", n, lo, hi)
	case reflect.Float64:
		switch n := v.(type) {
		case float64:
			rv.SetFloat(n)
		case int64:
			rv.SetFloat(float64(n))
		default:
			d.fail(key, "want a number, got %s", describe(v))
		}
	default:
		// A field type this decoder does not know is a bug in Config,
		// found by the test that parses the default file.
		panic(fmt.Sprintf("config: cannot decode into %s at %s", rv.Type(), key))
	}
}

// table sets the fields of a struct from a TOML table; a key the struct does
// not have is an error, with the nearest known key as a hint.
func (d *decoder) table(rv reflect.Value, v any, key string) {
	m, ok := v.(map[string]any)
	if !ok {
		d.fail(key, "want a table, got %s", describe(v))
		return
	}
	fields := map[string]int{}
	var names []string
	for i := range rv.NumField() {
		name := rv.Type().Field(i).Tag.Get("toml")
		fields[name] = i
		names = append(names, name)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		full := k
		if key != "" {
			full = key + "." + k
		}
		i, ok := fields[k]
		if !ok {
			msg := "unknown key"
			if near := nearest(k, names); near != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", near)
			}
			d.fail(full, "%s", msg)
			continue
		}
		d.value(rv.Field(i), m[k], full)
	}
}

// prefix reads a netip.Prefix: "198.51.100.0/24", or an address alone for
// its /32 or /128.
func (d *decoder) prefix(rv reflect.Value, v any, key string) {
	s, ok := v.(string)
	if !ok {
		d.fail(key, "want a prefix in quotes such as \"192.0.2.0/24\", got %s", describe(v))
		return
	}
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			d.fail(key, "invalid prefix %q", s)
			return
		}
		if p != p.Masked() {
			d.fail(key, "prefix %q has bits set after /%d (did you mean %q?)", s, p.Bits(), p.Masked().String())
			return
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			d.fail(key, "invalid address %q", s)
			return
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if p.Addr().Is4In6() {
		p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
	}
	rv.Set(reflect.ValueOf(p))
}

func intRange(rv reflect.Value) (lo, hi int64) {
	if rv.CanUint() {
		bits := rv.Type().Bits()
		if bits >= 64 {
			return 0, math.MaxInt64
		}
		return 0, int64(1)<<bits - 1
	}
	bits := rv.Type().Bits()
	return -(int64(1) << (bits - 1)), int64(1)<<(bits-1) - 1
}

// describe names a parsed TOML value for an error message.
func describe(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("string %q", v)
	case bool:
		return fmt.Sprintf("%v", v)
	case int64:
		return fmt.Sprintf("number %d", v)
	case float64:
		return fmt.Sprintf("number %v", v)
	case []any:
		return "a list"
	case map[string]any:
		return "a table"
	}
	return fmt.Sprintf("%v", v)
}

// nearest is the name closest to k by edit distance when it is close enough
// to be a likely typo, else "".
func nearest(k string, names []string) string {
	best, bestD := "", 3
	for _, n := range names {
		if dist := editDistance(k, n); dist < bestD {
			best, bestD = n, dist
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
