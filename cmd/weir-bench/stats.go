package main

import (
	"fmt"
	"math"
	"sort"
	"time"
)

var inf = math.Inf(1)

// percentile returns the nearest-rank p-th percentile (0 < p <= 100) of ds,
// 0 if empty.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[max(0, min(rank, len(s))-1)]
}

func maxInt(xs []int) int {
	m := 0
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

func medianInt(xs []int) int {
	if len(xs) == 0 {
		return 0
	}
	s := append([]int(nil), xs...)
	sort.Ints(s)
	return s[(len(s)-1)/2]
}

func sumInt(xs []int) int {
	t := 0
	for _, x := range xs {
		t += x
	}
	return t
}

// histQuantile estimates quantile q (0..1) of the observations between two
// scrapes of a cumulative histogram, interpolating linearly in a bucket.
func histQuantile(before, after map[float64]float64, q float64) (float64, float64) {
	bounds := make([]float64, 0, len(after))
	for b := range after {
		bounds = append(bounds, b)
	}
	sort.Float64s(bounds)
	total := after[inf] - before[inf]
	if total <= 0 {
		return 0, 0
	}
	want := q * total
	prevBound, prevCount := 0.0, 0.0
	for _, b := range bounds {
		c := after[b] - before[b]
		if c >= want {
			if math.IsInf(b, 1) {
				return prevBound, total
			}
			frac := 0.0
			if c > prevCount {
				frac = (want - prevCount) / (c - prevCount)
			}
			return prevBound + frac*(b-prevBound), total
		}
		prevBound, prevCount = b, c
	}
	return prevBound, total
}

func ms(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	}
	return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000)
}

func mb(b int64) string { return fmt.Sprintf("%.0f MB", float64(b)/1e6) }

func bytesStr(b int) string {
	switch {
	case b >= 10e6:
		return fmt.Sprintf("%.0f MB", float64(b)/1e6)
	case b >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(b)/1e6)
	case b >= 10e3:
		return fmt.Sprintf("%.0f kB", float64(b)/1e3)
	case b >= 1e3:
		return fmt.Sprintf("%.1f kB", float64(b)/1e3)
	}
	return fmt.Sprintf("%d B", b)
}

func count(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
