//! Amounts in fixed point: ten-thousandths as an `i64`.
//!
//! Written by hand (a dozen lines) rather than with a decimal crate because all we need
//! is exact, order-independent sums: floating-point sums of the same receipts added in a
//! different order can differ in the last bit, and derived values must come out the
//! same whatever order events arrive in. Four decimals hold every currency's minor unit
//! and fractional quantities such as kilograms.

use bincode::{Decode, Encode};

/// An amount or a quantity, exact to 1/10,000.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
pub struct Fixed(i64);

const SCALE: f64 = 10_000.0;

impl Fixed {
    /// Zero.
    pub const ZERO: Fixed = Fixed(0);
    /// The largest whole amount accepted (a trillion).
    pub const MAX_UNITS: f64 = 1e12;

    /// The nearest fixed value to `x`, if `x` is finite and within ±[`Self::MAX_UNITS`].
    pub fn from_f64(x: f64) -> Option<Fixed> {
        (x.is_finite() && x.abs() <= Self::MAX_UNITS).then(|| Fixed((x * SCALE).round() as i64))
    }

    /// As a float, for output.
    pub fn to_f64(self) -> f64 {
        self.0 as f64 / SCALE
    }

    /// A fixed value from raw ten-thousandths.
    pub fn from_units(units: i64) -> Fixed {
        Fixed(units)
    }

    /// The raw ten-thousandths.
    pub fn units(self) -> i64 {
        self.0
    }

    /// The sum, held at the largest value instead of wrapping.
    pub fn saturating_add(self, o: Fixed) -> Fixed {
        Fixed(self.0.saturating_add(o.0))
    }

    /// The difference, held at the smallest value instead of wrapping.
    pub fn saturating_sub(self, o: Fixed) -> Fixed {
        Fixed(self.0.saturating_sub(o.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_are_exact_in_any_order() {
        let xs = [0.1, 0.2, 0.3, 19.99, 1e9, 0.0001];
        let fwd = xs.iter().fold(Fixed::ZERO, |a, x| {
            a.saturating_add(Fixed::from_f64(*x).unwrap())
        });
        let back = xs.iter().rev().fold(Fixed::ZERO, |a, x| {
            a.saturating_add(Fixed::from_f64(*x).unwrap())
        });
        assert_eq!(fwd, back);
        assert_eq!(
            Fixed::from_f64(0.1)
                .unwrap()
                .saturating_add(Fixed::from_f64(0.2).unwrap())
                .to_f64(),
            0.3
        );
        assert!(Fixed::from_f64(f64::NAN).is_none());
        assert!(Fixed::from_f64(1e13).is_none());
    }
}
