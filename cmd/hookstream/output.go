package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/hookstream/hookstream/client"
)

// isTerminal reports whether w is a terminal: progress bars are drawn only
// there, and plain lines written everywhere else.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// answers keeps the API's answers as sent, for --json.
type answers struct {
	mu     sync.Mutex
	bodies [][]byte
}

// captureAnswers returns ctx under which every client call's answer is kept
// in the returned answers.
func captureAnswers(ctx context.Context) (context.Context, *answers) {
	a := &answers{}
	return client.WithAnswer(ctx, func(b []byte) {
		a.mu.Lock()
		a.bodies = append(a.bodies, append([]byte(nil), b...))
		a.mu.Unlock()
	}), a
}

func (a *answers) last() []byte {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.bodies) == 0 {
		return nil
	}
	return a.bodies[len(a.bodies)-1]
}

// items gathers the items of every page answered, as sent.
func (a *answers) items() ([]json.RawMessage, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := []json.RawMessage{}
	for _, b := range a.bodies {
		var p struct {
			Items []json.RawMessage `json:"items"`
		}
		if err := json.Unmarshal(b, &p); err != nil {
			return nil, fmt.Errorf("the API's answer is not a list page: %w", err)
		}
		out = append(out, p.Items...)
	}
	return out, nil
}

// printJSON writes an API answer as indented JSON; an empty answer (204)
// prints nothing.
func printJSON(w io.Writer, data []byte) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, data, "", "  "); err != nil {
		// Not JSON: print it as it came rather than lose it.
		buf.Reset()
		buf.Write(bytes.TrimSpace(data))
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}

// encodeJSON writes v as indented JSON without HTML escaping.
func encodeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// listJSON is a list as --json prints it: every item fetched, and the
// cursor to go on from when there is one.
type listJSON struct {
	Items      []json.RawMessage `json:"items"`
	NextCursor string            `json:"next_cursor,omitempty"`
}

// table is an aligned table for people: a header and rows.
type table struct {
	header []string
	rows   [][]string
}

func newTable(header ...string) *table { return &table{header: header} }

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

// print writes the table with its columns aligned; with no rows it writes
// "no <what>" instead.
func (t *table) print(w io.Writer, what string) error {
	if len(t.rows) == 0 {
		_, err := fmt.Fprintf(w, "no %s\n", what)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(t.header, "\t"))
	for _, r := range t.rows {
		cells := make([]string, len(r))
		for i, c := range r {
			cells[i] = cell(c)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

// cell keeps one value on one line, and "-" for nothing.
func cell(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if s == "" {
		return "-"
	}
	return s
}

// fields are the name: value lines of one object, for people.
type fields [][2]string

func (f *fields) add(name, value string) { *f = append(*f, [2]string{name, value}) }

// addIf adds the line only when value is not empty.
func (f *fields) addIf(name, value string) {
	if value != "" {
		f.add(name, value)
	}
}

func (f fields) print(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, kv := range f {
		fmt.Fprintf(tw, "%s:\t%s\n", kv[0], kv[1])
	}
	return tw.Flush()
}

// when is a time for people: RFC 3339 in UTC to the second, "" for none.
func when(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func whenPtr(t *time.Time) string {
	if t == nil {
		return ""
	}
	return when(*t)
}

// short cuts s to n characters, marking the cut.
func short(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func num(n int) string { return fmt.Sprint(n) }

// progress reports a bulk operation's progress: a bar redrawn in place on a
// terminal, a plain line whenever the text changes elsewhere.
type progress struct {
	w    io.Writer
	tty  bool
	last string
	drew bool
}

// barWidth is the bar's width in characters.
const barWidth = 30

// update shows done of total with text ("replayed 2/3, 1 skipped").
func (p *progress) update(done, total int, text string) {
	if !p.tty {
		if text != p.last {
			fmt.Fprintln(p.w, text)
			p.last = text
		}
		return
	}
	filled := barWidth
	if total > 0 {
		filled = min(barWidth, done*barWidth/total)
	}
	pct := 100
	if total > 0 {
		pct = min(100, done*100/total)
	}
	// \r and erase-line redraw the same line.
	fmt.Fprintf(p.w, "\r\x1b[K[%s%s] %3d%% %s", strings.Repeat("#", filled), strings.Repeat("-", barWidth-filled), pct, text)
	p.drew, p.last = true, text
}

// done ends the bar's line.
func (p *progress) done() {
	if p.tty && p.drew {
		fmt.Fprintln(p.w)
		p.drew = false
	}
}
