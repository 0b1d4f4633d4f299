package trafficgen

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"
)

// Ethernet overhead that a frame occupies on the wire besides its bytes:
// 7 bytes of preamble, the start delimiter and 12 of inter-frame gap.
// LineGbps counts it, Gbps does not (both count the 4-byte FCS).
const wireOverhead = 20

// Latency summarises a latency histogram, in nanoseconds.
type Latency struct {
	Samples uint64 `json:"samples"`
	MinNs   uint64 `json:"min_ns"`
	MeanNs  uint64 `json:"mean_ns"`
	P50Ns   uint64 `json:"p50_ns"`
	P99Ns   uint64 `json:"p99_ns"`
	P999Ns  uint64 `json:"p999_ns"`
	MaxNs   uint64 `json:"max_ns"`
}

func summarise(h *Histogram) Latency {
	return Latency{Samples: h.N, MinNs: h.Min, MeanNs: uint64(h.Mean()), P50Ns: uint64(h.Quantile(0.5)),
		P99Ns: uint64(h.Quantile(0.99)), P999Ns: uint64(h.Quantile(0.999)), MaxNs: h.Max}
}

// ClassResult is the outcome of one class, or of all (Class "total").
type ClassResult struct {
	Class string `json:"class"`
	// FrameSizes are the sizes sent (with FCS), after clamping to the
	// class's minimum.
	FrameSizes []int  `json:"frame_sizes,omitempty"`
	Sent       uint64 `json:"sent"`
	Received   uint64 `json:"received"` // stamped frames at all sinks, duplicates included
	// Lost is Sent minus the distinct frames received (Received minus
	// Duplicates); negative if more arrived than were sent.
	Lost       int64   `json:"lost"`
	LossPct    float64 `json:"loss_pct"`
	Reordered  uint64  `json:"reordered"`
	Duplicates uint64  `json:"duplicates"`
	TxBytes    uint64  `json:"tx_bytes"` // L2 bytes with FCS
	RxBytes    uint64  `json:"rx_bytes"`
	TxMpps     float64 `json:"tx_mpps"`
	RxMpps     float64 `json:"rx_mpps"`
	TxGbps     float64 `json:"tx_gbps"`      // L2 with FCS
	RxGbps     float64 `json:"rx_gbps"`      // L2 with FCS
	TxLineGbps float64 `json:"tx_line_gbps"` // plus 20 bytes of preamble and gap per frame
	RxLineGbps float64 `json:"rx_line_gbps"`
	Latency    Latency `json:"latency"`

	hist *Histogram
}

// Sample is one point of the per-second time series.
type Sample struct {
	T        float64 `json:"t_s"` // seconds since the first packet
	TxMpps   float64 `json:"tx_mpps"`
	RxMpps   float64 `json:"rx_mpps"`
	Sent     uint64  `json:"sent"`
	Received uint64  `json:"received"`
	Lost     int64   `json:"lost"` // sent minus received so far (in flight counts as lost)
}

// SinkResult is what one sink saw.
type SinkResult struct {
	Name      string `json:"name"`
	Received  uint64 `json:"received"`
	Foreign   uint64 `json:"foreign"`    // frames without a stamp, ignored
	RxDropped uint64 `json:"rx_dropped"` // lost by the driver or its ring
}

// Result is the outcome of Run.
type Result struct {
	Options Options   `json:"options"`
	Start   time.Time `json:"start"`
	// Elapsed is the time the sender ran: rates are counted over it,
	// receive rates too (the drain period is not counted).
	Elapsed float64       `json:"elapsed_s"`
	Classes []ClassResult `json:"classes"`
	Total   ClassResult   `json:"total"`
	Foreign uint64        `json:"foreign"`
	Unsent  uint64        `json:"unsent"` // built, refused by a full driver ring until the end
	// TxRefused is the tx driver's TxDropped counter: frames a full ring
	// refused; the sender retries them, so they are lost only if
	// counted in Unsent too.
	TxRefused uint64       `json:"tx_refused"`
	Sinks     []SinkResult `json:"sinks"`
	Series    []Sample     `json:"series"`
	PinError  string       `json:"pin_error,omitempty"`
	// Interrupted is true when the run was cut short by its context.
	Interrupted bool `json:"interrupted,omitempty"`
}

func (c *ClassResult) finish(el float64) {
	c.Lost = int64(c.Sent) - int64(c.Received-c.Duplicates)
	if c.Sent > 0 {
		c.LossPct = 100 * float64(c.Lost) / float64(c.Sent)
	}
	if el > 0 {
		c.TxMpps = float64(c.Sent) / el / 1e6
		c.RxMpps = float64(c.Received) / el / 1e6
		c.TxGbps = float64(c.TxBytes) * 8 / el / 1e9
		c.RxGbps = float64(c.RxBytes) * 8 / el / 1e9
		c.TxLineGbps = float64(c.TxBytes+wireOverhead*c.Sent) * 8 / el / 1e9
		c.RxLineGbps = float64(c.RxBytes+wireOverhead*c.Received) * 8 / el / 1e9
	}
	if c.hist != nil {
		c.Latency = summarise(c.hist)
	}
}

// Histogram returns the class's latency histogram (nil for results read
// back from JSON).
func (c *ClassResult) Histogram() *Histogram { return c.hist }

// WriteTable writes the human-readable result table.
func (r *Result) WriteTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "class\tsent\treceived\tlost\tloss%\treorder\tdup\ttx Mpps\trx Mpps\trx Gb/s\trx line Gb/s\tp50 µs\tp99 µs\tp99.9 µs\tmax µs\t")
	row := func(c *ClassResult) {
		us := func(ns uint64) string { return fmt.Sprintf("%.1f", float64(ns)/1e3) }
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.3f\t%d\t%d\t%.3f\t%.3f\t%.3f\t%.3f\t%s\t%s\t%s\t%s\t\n",
			c.Class, c.Sent, c.Received, c.Lost, c.LossPct, c.Reordered, c.Duplicates, c.TxMpps, c.RxMpps,
			c.RxGbps, c.RxLineGbps, us(c.Latency.P50Ns), us(c.Latency.P99Ns), us(c.Latency.P999Ns), us(c.Latency.MaxNs))
	}
	for i := range r.Classes {
		row(&r.Classes[i])
	}
	row(&r.Total)
	tw.Flush()
	fmt.Fprintf(w, "elapsed %.3f s; foreign frames %d; unsent %d; tx ring refusals (retried) %d; Gb/s count L2 bytes with FCS, line Gb/s add 20 bytes of preamble and gap per frame\n",
		r.Elapsed, r.Foreign, r.Unsent, r.TxRefused)
	for _, s := range r.Sinks {
		fmt.Fprintf(w, "sink %s: received %d, foreign %d, driver rx drops %d\n", s.Name, s.Received, s.Foreign, s.RxDropped)
	}
	if r.PinError != "" {
		fmt.Fprintf(w, "warning: %s\n", r.PinError)
	}
	if r.Interrupted {
		fmt.Fprintln(w, "interrupted: the run was cut short")
	}
}

// WriteJSON writes the result as indented JSON to path.
func (r *Result) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode result: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write result: %w", err)
	}
	return nil
}
