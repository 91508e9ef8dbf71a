package main

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// histSub is the number of sub-buckets per power of two: quantiles are
// exact to 1/16 (6%) of their value.
const histSub = 16

// hist is a lock-free log-linear histogram of durations.
type hist struct {
	counts [64 * histSub]atomic.Uint64
}

func histIndex(v uint64) int {
	if v < histSub {
		return int(v)
	}
	e := bits.Len64(v) - 1 // ≥ 4
	m := (v >> (e - 4)) & (histSub - 1)
	return (e-3)*histSub + int(m)
}

// histLow is the smallest value of bucket i.
func histLow(i int) uint64 {
	if i < histSub {
		return uint64(i)
	}
	e := i/histSub + 3
	m := uint64(i % histSub)
	return (histSub + m) << (e - 4)
}

func (h *hist) add(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[histIndex(uint64(d))].Add(1)
}

// quantile returns the q-quantile (0 < q ≤ 1) as the middle of its bucket;
// 0 when the histogram is empty.
func (h *hist) quantile(q float64) time.Duration {
	var total uint64
	for i := range h.counts {
		total += h.counts[i].Load()
	}
	if total == 0 {
		return 0
	}
	rank := uint64(q*float64(total) + 0.5)
	rank = max(rank, 1)
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			lo := histLow(i)
			hi := histLow(i + 1)
			if i+1 >= len(h.counts) {
				hi = lo
			}
			return time.Duration(lo + (hi-lo)/2)
		}
	}
	return 0
}
