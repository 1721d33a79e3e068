//! Train/test splits of sample indices: [`train_test_split`].
//!
//! The two lists always partition `0..n`, and the same seed gives the same split.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::data::DataError;

/// Randomly partitions `0..n` into `(train, test)` index lists, with
/// `round(n * test_fraction)` test indices. Both lists are in random order;
/// the same seed always gives the same split.
///
/// Fails if `test_fraction` is not in `[0, 1]`.
///
/// ```
/// use tapegrad::data::train_test_split;
/// let (train, test) = train_test_split(150, 0.2, 42)?;
/// assert_eq!((train.len(), test.len()), (120, 30));
/// assert!(test.iter().all(|i| !train.contains(i)));
/// assert_eq!(train_test_split(150, 0.2, 42)?.1, test);
/// # Ok::<(), tapegrad::data::DataError>(())
/// ```
pub fn train_test_split(
    n: usize,
    test_fraction: f64,
    seed: u64,
) -> Result<(Vec<usize>, Vec<usize>), DataError> {
    if !(0.0..=1.0).contains(&test_fraction) {
        return Err(DataError::InvalidArgument(format!(
            "test fraction must be in [0, 1], got {test_fraction}"
        )));
    }
    let n_test = ((n as f64 * test_fraction).round() as usize).min(n);
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut StdRng::seed_from_u64(seed));
    let train = order.split_off(n_test);
    Ok((train, order))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn fraction_must_lie_in_zero_to_one_inclusive() {
        assert!(train_test_split(10, 1.5, 0).is_err());
        assert!(train_test_split(10, f64::NAN, 0).is_err());
        assert_eq!(train_test_split(10, 0.0, 0).unwrap().1, Vec::<usize>::new());
        assert_eq!(train_test_split(10, 1.0, 0).unwrap().0, Vec::<usize>::new());
    }

    proptest! {
        #[test]
        fn split_partitions(n in 0usize..300, frac in 0.0f64..=1.0, seed: u64) {
            let (train, test) = train_test_split(n, frac, seed).unwrap();
            prop_assert_eq!(test.len(), (n as f64 * frac).round() as usize);
            let mut all: Vec<usize> = train.into_iter().chain(test).collect();
            all.sort();
            prop_assert_eq!(all, (0..n).collect::<Vec<_>>());
        }
    }
}
