//! A constructor for the generated [`TerminalSize`]: the protocol requires
//! both dimensions to be at least 1, which `NonZeroU16` fields enforce.

use std::num::NonZeroU16;

use crate::TerminalSize;

impl TerminalSize {
    /// A terminal of `rows` by `cols` character cells; `None` when either is
    /// 0 (the protocol allows 1 to 65535 for each).
    pub fn new(rows: u16, cols: u16) -> Option<Self> {
        Some(Self {
            cols: NonZeroU16::new(cols)?,
            rows: NonZeroU16::new(rows)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_dimensions_must_be_at_least_one() {
        let size = TerminalSize::new(24, 80).expect("a valid size");
        assert_eq!((size.rows.get(), size.cols.get()), (24, 80));
        assert_eq!(TerminalSize::new(0, 80), None);
        assert_eq!(TerminalSize::new(24, 0), None);
        assert_eq!(TerminalSize::new(0, 0), None);
    }
}
