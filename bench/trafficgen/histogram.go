package trafficgen

import (
	"math"
	"math/bits"
	"time"
)

// Histogram is a fixed-size log-linear latency histogram in the manner of
// HdrHistogram: values below 256 ns are exact, above that every power of
// two is split into 128 linear buckets, so a bucket is at most 1/128
// (0.8 %) of its values wide, up to 2^36 ns (68 s; larger values land in
// the last bucket). 3840 counters, 30 KiB, no allocation per value;
// histograms of several sinks merge by adding counters.
type Histogram struct {
	Counts   [histBuckets]uint64
	N        uint64
	Sum      uint64 // ns, for the mean
	Min, Max uint64 // ns
}

const (
	histSubBits = 7
	histSub     = 1 << histSubBits // linear buckets per power of two
	histMaxExp  = 35               // highest power of two: values < 2^36
	histBuckets = (histMaxExp - histSubBits + 1 + 1) * histSub
)

// histIndex is the bucket of v ns.
func histIndex(v uint64) int {
	if v < 2*histSub {
		return int(v)
	}
	e := bits.Len64(v) - 1
	if e > histMaxExp {
		return histBuckets - 1
	}
	sh := e - histSubBits
	return sh*histSub + int(v>>sh)
}

// histLow and histWidth are the first value and the width of bucket i.
func histLow(i int) uint64 {
	if i < 2*histSub {
		return uint64(i)
	}
	sh := i/histSub - 1
	return uint64(i%histSub+histSub) << sh
}

func histWidth(i int) uint64 {
	if i < 2*histSub {
		return 1
	}
	return 1 << (i/histSub - 1)
}

// Record adds one value of ns nanoseconds.
func (h *Histogram) Record(ns uint64) {
	h.Counts[histIndex(ns)]++
	if h.N == 0 || ns < h.Min {
		h.Min = ns
	}
	if ns > h.Max {
		h.Max = ns
	}
	h.N++
	h.Sum += ns
}

// Merge adds o's values to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.N == 0 {
		return
	}
	for i, c := range o.Counts {
		h.Counts[i] += c
	}
	if h.N == 0 || o.Min < h.Min {
		h.Min = o.Min
	}
	h.Max = max(h.Max, o.Max)
	h.N += o.N
	h.Sum += o.Sum
}

// Quantile returns the value at quantile q (0..1): the middle of the
// bucket holding the ceil(q·N)-th smallest value, clamped to [Min, Max].
// 0 if the histogram is empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.N == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.N)))
	rank = min(max(rank, 1), h.N)
	var cum uint64
	for i, c := range h.Counts {
		if cum += c; cum >= rank {
			v := histLow(i) + (histWidth(i)-1)/2
			return time.Duration(min(max(v, h.Min), h.Max))
		}
	}
	return time.Duration(h.Max)
}

// Mean is the mean value (0 if empty).
func (h *Histogram) Mean() time.Duration {
	if h.N == 0 {
		return 0
	}
	return time.Duration(h.Sum / h.N)
}

// CDFPoint is one step of a cumulative distribution.
type CDFPoint struct {
	Nanos    uint64  `json:"ns"`       // upper end of a bucket
	Fraction float64 `json:"fraction"` // values ≤ Nanos
}

// CDF returns the cumulative distribution at the upper end of every
// non-empty bucket.
func (h *Histogram) CDF() []CDFPoint {
	var out []CDFPoint
	var cum uint64
	for i, c := range h.Counts {
		if c == 0 {
			continue
		}
		cum += c
		out = append(out, CDFPoint{Nanos: min(histLow(i)+histWidth(i)-1, h.Max), Fraction: float64(cum) / float64(h.N)})
	}
	return out
}
