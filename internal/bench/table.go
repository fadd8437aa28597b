package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Row is one line of the table: a floor, an end-to-end run or a latency
// run. Figures that do not apply are zero and printed as "-".
type Row struct {
	// Case is the row's stable name (floor-http, producer-1, latency-ingest-8000, …).
	Case string `json:"case"`
	// Name says what was measured, for people.
	Name string `json:"name"`
	// Count is what was done: deliveries (messages for the JetStream
	// floor, requests for the HTTP floor).
	Count   int64   `json:"count"`
	Seconds float64 `json:"seconds"`
	// PerSecond is Count per second over the run.
	PerSecond float64 `json:"per_second"`
	// Ratio is PerSecond over the HTTP floor's.
	Ratio float64 `json:"ratio_to_http_floor,omitempty"`
	// Rate is the events per second published in a latency run.
	Rate  float64 `json:"rate,omitempty"`
	P50MS float64 `json:"p50_ms,omitempty"`
	P99MS float64 `json:"p99_ms,omitempty"`
	MaxMS float64 `json:"max_ms,omitempty"`
	// PeakRSS is the process's peak resident set during the row (the
	// whole run so far where it cannot be reset), in bytes.
	PeakRSS uint64 `json:"peak_rss_bytes,omitempty"`
	// AllocsPerDelivery is the heap allocations of the process during the
	// row over Count.
	AllocsPerDelivery float64 `json:"allocs_per_delivery,omitempty"`
	// CPU is the cores the measured process used during the row, and
	// OtherCPU those the rest of the machine used meanwhile (on a shared
	// machine, what the figures competed with).
	CPU      float64 `json:"cpu_cores,omitempty"`
	OtherCPU float64 `json:"other_cpu_cores,omitempty"`
	// Error is why the row has no figures.
	Error string `json:"error,omitempty"`
	// Skipped says why the row was not run.
	Skipped string `json:"skipped,omitempty"`
}

// PerCore is PerSecond over the cores the process used: on a machine
// that others share, what the run did with the CPU it got.
func (row *Row) PerCore() float64 {
	if row.CPU <= 0 {
		return 0
	}
	return row.PerSecond / row.CPU
}

// SetLatency fills the latency columns from r.
func (row *Row) SetLatency(r LatencyResult) {
	row.Count, row.Seconds = r.Deliveries, r.Elapsed.Seconds()
	row.PerSecond = Measured{Count: r.Deliveries, Elapsed: r.Elapsed}.PerSecond()
	row.Rate, row.P50MS, row.P99MS, row.MaxMS = r.Rate, ms(r.P50), ms(r.P99), ms(r.Max)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Report is a whole `hookstream bench` run.
type Report struct {
	Machine  Machine           `json:"machine"`
	Settings map[string]string `json:"settings"`
	Rows     []Row             `json:"rows"`
	Notes    []string          `json:"notes,omitempty"`
}

// WriteJSON writes r as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes r as a Markdown table under a line naming the machine
// and the settings, so that it can be pasted into the README as is.
func (r *Report) WriteTable(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "machine: %s\n", r.Machine)
	if len(r.Settings) > 0 {
		fmt.Fprintf(&b, "settings: %s\n", joinSettings(r.Settings))
	}
	b.WriteString("\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 1, ' ', tabwriter.Debug)
	fmt.Fprintln(tw, "| case\t what\t count\t s\t per s\t × HTTP floor\t p50 ms\t p99 ms\t max ms\t peak RSS MiB\t allocs/delivery\t cores\t per core-s\t others' cores\t")
	fmt.Fprintln(tw, "|---\t---\t---:\t---:\t---:\t---:\t---:\t---:\t---:\t---:\t---:\t---:\t---:\t---:\t")
	for _, row := range r.Rows {
		name := row.Name
		switch {
		case row.Skipped != "":
			name += " — skipped: " + row.Skipped
		case row.Error != "":
			name += " — error: " + row.Error
		}
		fmt.Fprintf(tw, "| %s\t %s\t %s\t %s\t %s\t %s\t %s\t %s\t %s\t %s\t %s\t %s\t %s\t %s\t\n",
			row.Case, name, num(float64(row.Count), 0), num(row.Seconds, 2), num(row.PerSecond, 0), num(row.Ratio, 2),
			num(row.P50MS, 1), num(row.P99MS, 1), num(row.MaxMS, 1), num(MiB(row.PeakRSS), 0), num(row.AllocsPerDelivery, 0), num(row.CPU, 2), num(row.PerCore(), 0), num(row.OtherCPU, 2))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "\n%s", n)
	}
	if len(r.Notes) > 0 {
		b.WriteString("\n")
	}
	// tabwriter's Debug mode separates cells with '|'; the leading "| "
	// of each line and the trailing '|' make it Markdown.
	_, err := io.WriteString(w, strings.ReplaceAll(b.String(), "\t", ""))
	return err
}

func num(v float64, prec int) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.*f", prec, v)
}

func joinSettings(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slicesSort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, " ")
}
