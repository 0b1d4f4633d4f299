package httpbench

import (
	"bufio"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// WrkOutput is what ParseWrk extracts from wrk's report (wrk 4.x with
// --latency).
type WrkOutput struct {
	RequestsPerSec float64 `json:"requests_per_sec"`
	Requests       int64   `json:"requests"`
	DurationSec    float64 `json:"duration_s"`
	// Latency distribution, in milliseconds (0 if absent).
	P50ms float64 `json:"p50_ms"`
	P75ms float64 `json:"p75_ms"`
	P90ms float64 `json:"p90_ms"`
	P99ms float64 `json:"p99_ms"`
	// Socket errors and responses with a status outside 2xx/3xx.
	ConnectErrors int64 `json:"connect_errors"`
	ReadErrors    int64 `json:"read_errors"`
	WriteErrors   int64 `json:"write_errors"`
	Timeouts      int64 `json:"timeouts"`
	Non2xx        int64 `json:"non_2xx"`
}

// Errors is the sum of the socket errors and the non-2xx/3xx responses.
func (w *WrkOutput) Errors() int64 {
	return w.ConnectErrors + w.ReadErrors + w.WriteErrors + w.Timeouts + w.Non2xx
}

// ErrorRatio is Errors over the completed requests (1 if there were none
// but errors, 0 if neither).
func (w *WrkOutput) ErrorRatio() float64 {
	switch {
	case w.Requests > 0:
		return float64(w.Errors()) / float64(w.Requests)
	case w.Errors() > 0:
		return 1
	}
	return 0
}

// ParseWrk parses wrk's text report. Requests/sec is required; the latency
// distribution is required too (wrk must run with --latency). Latencies are
// converted to milliseconds from wrk's units (us, ms, s, m, h).
func ParseWrk(out string) (*WrkOutput, error) {
	w := &WrkOutput{}
	var haveRPS, haveDist bool
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		f := strings.Fields(line)
		switch {
		case strings.HasPrefix(line, "Requests/sec:") && len(f) == 2:
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return nil, fmt.Errorf("wrk: Requests/sec %q: %w", f[1], err)
			}
			w.RequestsPerSec, haveRPS = v, true
		case len(f) == 2 && strings.HasSuffix(f[0], "%") && isPercentile(f[0]):
			ms, err := parseWrkTime(f[1])
			if err != nil {
				return nil, fmt.Errorf("wrk: latency %s: %w", f[0], err)
			}
			switch f[0] {
			case "50%":
				w.P50ms, haveDist = ms, true
			case "75%":
				w.P75ms = ms
			case "90%":
				w.P90ms = ms
			case "99%":
				w.P99ms = ms
			}
		case len(f) >= 4 && f[1] == "requests" && f[2] == "in":
			// "185563 requests in 5.00s, 27.43MB read"
			n, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("wrk: request count %q: %w", f[0], err)
			}
			w.Requests = n
			d, err := parseWrkTime(strings.TrimSuffix(f[3], ","))
			if err != nil {
				return nil, fmt.Errorf("wrk: run time: %w", err)
			}
			w.DurationSec = d / 1000
		case strings.HasPrefix(line, "Socket errors:"):
			// "Socket errors: connect 0, read 12, write 0, timeout 3"
			rest := strings.TrimPrefix(line, "Socket errors:")
			for _, part := range strings.Split(rest, ",") {
				kv := strings.Fields(part)
				if len(kv) != 2 {
					return nil, fmt.Errorf("wrk: socket errors %q", line)
				}
				n, err := strconv.ParseInt(kv[1], 10, 64)
				if err != nil {
					return nil, fmt.Errorf("wrk: socket errors %q: %w", line, err)
				}
				switch kv[0] {
				case "connect":
					w.ConnectErrors = n
				case "read":
					w.ReadErrors = n
				case "write":
					w.WriteErrors = n
				case "timeout":
					w.Timeouts = n
				}
			}
		case strings.HasPrefix(line, "Non-2xx or 3xx responses:") && len(f) == 5:
			n, err := strconv.ParseInt(f[4], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("wrk: non-2xx %q: %w", line, err)
			}
			w.Non2xx = n
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if !haveRPS {
		return nil, errors.New("wrk: no Requests/sec line in the output")
	}
	if !haveDist {
		return nil, errors.New("wrk: no latency distribution in the output (run wrk with --latency)")
	}
	return w, nil
}

func isPercentile(s string) bool {
	_, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
	return err == nil
}

// parseWrkTime converts wrk's formatted time ("455.12us", "1.65ms",
// "2.00s", "1.50m", "1.00h") to milliseconds.
func parseWrkTime(s string) (float64, error) {
	units := []struct {
		suffix string
		ms     float64
	}{{"us", 1e-3}, {"ms", 1}, {"s", 1e3}, {"m", 60e3}, {"h", 3600e3}}
	for _, u := range units { // "us" and "ms" before "s"
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseFloat(num, 64)
			if err != nil {
				return 0, fmt.Errorf("time %q: %w", s, err)
			}
			return v * u.ms, nil
		}
	}
	return 0, fmt.Errorf("time %q: unknown unit", s)
}

// wrkArgs is wrk's command line for one run against url.
func wrkArgs(threads, conns int, d time.Duration, newConn bool, url string) []string {
	args := []string{
		"-t" + strconv.Itoa(threads), "-c" + strconv.Itoa(conns),
		"-d" + strconv.Itoa(int(d/time.Second)) + "s", "--latency",
	}
	if newConn {
		args = append(args, "-H", "Connection: close")
	}
	return append(args, url)
}
