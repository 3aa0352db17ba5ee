// Package text hands out strings carved from shared blocks of bytes.
package text

import "unsafe"

// Slab hands out strings copied into larger blocks of bytes: one
// allocation for many short strings. A block stays alive while any string
// from it does; its bytes are never written once handed out. Not safe for
// concurrent use; the zero value is ready.
type Slab struct{ block []byte }

// blockSize is the size of a block; longer strings get their own.
const blockSize = 16 << 10

// String returns a string holding b.
func (s *Slab) String(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if len(b) > blockSize/8 {
		return string(b)
	}
	if cap(s.block)-len(s.block) < len(b) {
		s.block = make([]byte, 0, blockSize)
	}
	start := len(s.block)
	s.block = append(s.block, b...)
	return unsafe.String(&s.block[start], len(b))
}
