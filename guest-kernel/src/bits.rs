//! Sets kept as bit masks (CPUs to interrupt, tasks posted to an inbox): their members.

/// The positions of the set bits of `mask`, lowest first.
pub fn ones(mut mask: u64) -> impl Iterator<Item = usize> {
    core::iter::from_fn(move || {
        let bit = (mask != 0).then(|| mask.trailing_zeros() as usize)?;
        mask &= mask - 1;
        Some(bit)
    })
}

#[cfg(test)]
mod tests {
    use super::ones;
    use alloc::vec::Vec;

    #[test]
    fn lists_each_set_bit_once_lowest_first() {
        assert_eq!(ones(0).count(), 0);
        assert_eq!(ones(0b1011).collect::<Vec<_>>(), [0, 1, 3]);
        assert_eq!(ones(1 << 63 | 1).collect::<Vec<_>>(), [0, 63]);
        assert_eq!(ones(u64::MAX).count(), 64);
    }
}
