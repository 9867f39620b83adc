//! A pipe's or terminal's read buffer: room for the head of the chunk's
//! frame (`EventSink::head_length`), then the space a read appends to.
//!
//! - The buffer is made only when the stream is readable ([`ReadBuffer::prepared`]
//!   right before the read), and no read keeps it: a process that is not
//!   writing, whether it never wrote (a `sleep`) or wrote a little and
//!   waits (a prompt), holds no read buffer (two 4 KiB buffers per pipe
//!   process before).
//! - The space starts at 4 KiB and doubles, up to the read size, each time
//!   a read fills it, so a busy stream soon reads in large chunks.
//! - A read that fills at least half the space hands the buffer itself on
//!   (frame and log share it, no copy); a smaller read is copied out into
//!   a chunk of its own size and the buffer freed, so that a retained chunk
//!   never holds much more memory than its bytes.

/// Bytes of space a stream's first read gets.
const INITIAL_READ_BYTES: usize = 4 * 1024;

/// One stream's read buffer; see the module doc.
pub(super) struct ReadBuffer {
    /// Empty with no capacity until [`ReadBuffer::prepared`]; then the
    /// head's room (zeros), then the bytes read, with `space` bytes of
    /// capacity after the room.
    bytes: Vec<u8>,
    /// The head's room, in bytes.
    head_length: usize,
    /// The most one read appends, in bytes.
    space: usize,
    /// The most `space` grows to, in bytes.
    limit: usize,
}

impl ReadBuffer {
    /// A buffer whose space grows to `limit` bytes, after `head_length`
    /// bytes of room; nothing is allocated yet.
    pub(super) fn new(limit: usize, head_length: usize) -> Self {
        Self {
            bytes: Vec::new(),
            head_length,
            space: INITIAL_READ_BYTES.min(limit),
            limit,
        }
    }

    /// The most the next read may append, in bytes.
    pub(super) fn space(&self) -> usize {
        self.space
    }

    /// The buffer to read into, made now when there is none: the head's
    /// room, then `space()` bytes of spare capacity.
    pub(super) fn prepared(&mut self) -> &mut Vec<u8> {
        if self.bytes.capacity() == 0 {
            self.bytes = Vec::with_capacity(self.head_length + self.space);
            self.bytes.resize(self.head_length, 0);
        }
        &mut self.bytes
    }

    /// The head's room and the `length` bytes just read, in a buffer of
    /// their size (the read buffer itself when they fill at least half its
    /// space, else a copy); leaves no buffer behind; grows the space when
    /// they filled it.
    pub(super) fn take(&mut self, length: usize) -> Vec<u8> {
        debug_assert_eq!(self.bytes.len(), self.head_length + length);
        let half_full = length * 2 >= self.space;
        if length == self.space && self.space < self.limit {
            self.space = (self.space * 2).min(self.limit);
        }
        let mut taken = std::mem::take(&mut self.bytes);
        if half_full {
            taken.shrink_to_fit();
            taken
        } else {
            taken.as_slice().to_vec()
        }
    }
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;

    use super::*;

    /// What a read of `length` bytes leaves in `buffer`.
    fn read(buffer: &mut ReadBuffer, length: usize) {
        let bytes = buffer.prepared();
        assert!(bytes.capacity() - bytes.len() >= length);
        let start = bytes.as_ptr();
        bytes.extend((0..length).map(|index| index as u8));
        assert_eq!(bytes.as_ptr(), start, "the read fits the space");
    }

    #[test]
    fn nothing_is_allocated_before_the_first_read() {
        let mut buffer = ReadBuffer::new(64 * 1024, 13);
        assert_eq!(buffer.bytes.capacity(), 0);
        assert_eq!(buffer.space(), INITIAL_READ_BYTES);
        assert_eq!(buffer.prepared(), &vec![0; 13]);
        assert_eq!(buffer.bytes.capacity(), 13 + INITIAL_READ_BYTES);
    }

    #[test]
    fn a_read_that_fills_half_the_space_hands_the_buffer_on_and_a_full_one_grows_it() {
        let mut buffer = ReadBuffer::new(16 * 1024, 20);
        read(&mut buffer, INITIAL_READ_BYTES);
        let start = buffer.bytes.as_ptr();
        let taken = buffer.take(INITIAL_READ_BYTES);
        assert_eq!(taken.as_ptr(), start, "not copied");
        assert_eq!(taken.len(), 20 + INITIAL_READ_BYTES);
        assert_eq!(taken.capacity(), taken.len());
        assert_eq!(buffer.space(), 2 * INITIAL_READ_BYTES);
        assert_eq!(buffer.bytes.capacity(), 0, "the next read makes a new one");
        assert_eq!(buffer.prepared(), &vec![0; 20]);
        assert_eq!(buffer.bytes.capacity(), 20 + 2 * INITIAL_READ_BYTES);

        // Half the space: handed on, trimmed to the chunk, no growth.
        read(&mut buffer, INITIAL_READ_BYTES);
        let taken = buffer.take(INITIAL_READ_BYTES);
        assert_eq!(taken.len(), 20 + INITIAL_READ_BYTES);
        assert!(taken.capacity() < 20 + 2 * INITIAL_READ_BYTES);
        assert_eq!(buffer.space(), 2 * INITIAL_READ_BYTES);

        // Full reads grow the space up to the limit, never past it.
        for _ in 0..4 {
            let space = buffer.space();
            read(&mut buffer, space);
            assert_eq!(buffer.take(space).len(), 20 + space);
        }
        assert_eq!(buffer.space(), 16 * 1024);
        buffer.prepared();
        assert_eq!(buffer.bytes.capacity(), 20 + 16 * 1024);
    }

    #[test]
    fn a_small_read_is_copied_out_and_the_buffer_freed() {
        let mut buffer = ReadBuffer::new(64 * 1024, 13);
        read(&mut buffer, 5);
        let start = buffer.bytes.as_ptr();
        let taken = buffer.take(5);
        assert_eq!(taken, [&[0; 13][..], &[0, 1, 2, 3, 4]].concat());
        assert_ne!(taken.as_ptr(), start);
        assert_eq!(taken.capacity(), 13 + 5);
        assert_eq!(
            buffer.bytes.capacity(),
            0,
            "nothing held until the next read"
        );
        assert_eq!(buffer.space(), INITIAL_READ_BYTES);
    }

    #[test]
    fn a_limit_below_the_initial_space_caps_it() {
        let mut buffer = ReadBuffer::new(100, 0);
        assert_eq!(buffer.space(), 100);
        buffer.prepared();
        assert_eq!(buffer.bytes.capacity(), 100);
    }
}
