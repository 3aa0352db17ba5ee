package istio

import (
	"sort"
	"strconv"

	"github.com/weir-mesh/weir/translator/ir"
)

// stickyTotal is the sum of the weights of a sticky route. Envoy picks the
// backend whose interval of [0, total) holds hash % total; with a constant
// total and a constant order, moving weight from one backend to another
// moves only the users in the interval that changed hands.
const stickyTotal = 10000

// stickyBackends orders backends newest version first (see newer) and
// scales their weights to sum to stickyTotal. versions[i] is the version
// of backends[i]. Growing the newest version's weight then only moves users
// from older versions to it, and with versions ordered by age users only
// ever move to a newer version.
func stickyBackends(backends []ir.Backend, versions []string) []ir.Backend {
	idx := make([]int, len(backends))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		va, vb := versions[idx[a]], versions[idx[b]]
		if va != vb {
			return newer(va, vb)
		}
		return backends[idx[a]].Cluster < backends[idx[b]].Cluster
	})
	ordered := make([]ir.Backend, len(backends))
	for i, j := range idx {
		ordered[i] = backends[j]
	}
	return scaleWeights(ordered, stickyTotal)
}

// scaleWeights scales weights to sum to total by largest remainder (ties
// to the earlier backend), dropping backends whose share rounds to 0.
func scaleWeights(backends []ir.Backend, total uint64) []ir.Backend {
	var sum uint64
	for _, b := range backends {
		sum += uint64(b.Weight)
	}
	out := make([]ir.Backend, len(backends))
	rems := make([]uint64, len(backends))
	var given uint64
	for i, b := range backends {
		w := uint64(b.Weight) * total
		out[i] = ir.Backend{Cluster: b.Cluster, Weight: uint32(w / sum)}
		rems[i] = w % sum
		given += w / sum
	}
	order := make([]int, len(out))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return rems[order[a]] > rems[order[b]] })
	for _, i := range order[:total-given] {
		out[i].Weight++
	}
	kept := out[:0]
	for _, b := range out {
		if b.Weight > 0 {
			kept = append(kept, b)
		}
	}
	return kept
}

// newer reports whether version a sorts after b in natural order ("v10"
// after "v9" after "v1"), which sticky routes take as age order.
func newer(a, b string) bool {
	ca, cb := chunks(a), chunks(b)
	for i := 0; i < len(ca) && i < len(cb); i++ {
		x, y := ca[i], cb[i]
		nx, ex := strconv.ParseUint(x, 10, 64)
		ny, ey := strconv.ParseUint(y, 10, 64)
		if ex == nil && ey == nil {
			if nx != ny {
				return nx > ny
			}
			continue
		}
		if x != y {
			return x > y
		}
	}
	if len(ca) != len(cb) {
		return len(ca) > len(cb)
	}
	return a > b
}

// chunks splits s into runs of digits and of non-digits.
func chunks(s string) []string {
	var out []string
	start := 0
	for i := 1; i <= len(s); i++ {
		if i == len(s) || isDigit(s[i]) != isDigit(s[i-1]) {
			out = append(out, s[start:i])
			start = i
		}
	}
	return out
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
