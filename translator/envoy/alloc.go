package envoy

// slab hands out zero values of T carved from larger blocks: one allocation
// for many small messages, which the garbage collector then sees as one
// object. A block stays alive while any value from it does. Not safe for
// concurrent use; the zero value is ready.
type slab[T any] struct{ block []T }

// slabBlock is how many values a block holds.
const slabBlock = 256

func (s *slab[T]) new() *T {
	if len(s.block) == 0 {
		s.block = make([]T, slabBlock)
	}
	v := &s.block[0]
	s.block = s.block[1:]
	return v
}
