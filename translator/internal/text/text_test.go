package text

import (
	"strings"
	"testing"
)

// TestSlab checks that strings keep their bytes while later ones are cut
// from the same block, from a new block, or on their own.
func TestSlab(t *testing.T) {
	var s Slab
	var got, want []string
	buf := []byte{}
	for i, n := range []int{0, 1, 7, blockSize / 8, blockSize/8 + 1, 100, blockSize / 8, blockSize / 8, 3} {
		buf = append(buf[:0], strings.Repeat(string(rune('a'+i)), n)...)
		got = append(got, s.String(buf))
		want = append(want, string(buf))
		if len(buf) > 0 {
			buf[0] = 'Z' // the string is a copy
		}
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("string %d: %.10q... (%d bytes), want %.10q... (%d bytes)", i, got[i], len(got[i]), want[i], len(want[i]))
		}
	}
}
