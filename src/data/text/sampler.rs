//! Negative sampling for word embeddings: [`NegativeSampler`] draws ids as word2vec does.
//!
//! An id with a count of 0 is never drawn, and the same seed always gives the same draws.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::Distribution;
use rand_distr::weighted::WeightedAliasIndex;

use crate::data::DataError;

/// Draws word ids for negative sampling as word2vec does: id `i` with
/// probability `counts[i]^0.75 / Σⱼ counts[j]^0.75`, from a seeded generator.
///
/// Sampling is O(1) per draw (Walker's alias method, via
/// `rand_distr::weighted::WeightedAliasIndex`). Ids with a count of 0 are
/// never drawn; to keep `<unk>` out of the negatives, set its count to 0.
///
/// ```
/// use tapegrad::data::text::NegativeSampler;
/// let mut sampler = NegativeSampler::new(&[0, 16, 1], 5)?;
/// let draws = sampler.sample(10_000);
/// let ones = draws.iter().filter(|&&id| id == 1).count();
/// assert!((8_700..9_100).contains(&ones)); // 16^0.75 / (16^0.75 + 1) = 8 / 9 of the draws
/// # Ok::<(), tapegrad::data::DataError>(())
/// ```
#[derive(Debug)]
pub struct NegativeSampler {
    alias: WeightedAliasIndex<f64>,
    rng: StdRng,
    only: Option<usize>,
}

impl NegativeSampler {
    /// The exponent word2vec applies to the counts.
    ///
    /// ```
    /// use tapegrad::data::text::NegativeSampler;
    /// assert!((16f64.powf(NegativeSampler::POWER) - 8.0).abs() < 1e-12);
    /// ```
    pub const POWER: f64 = 0.75;

    /// A sampler over ids `0..counts.len()`, seeded with `seed`.
    ///
    /// Fails if `counts` is empty, every count is 0, or there are more than
    /// `u32::MAX` ids.
    ///
    /// ```
    /// use tapegrad::data::text::{NegativeSampler, Vocab, tokenize};
    /// let vocab = Vocab::from_min_count(&tokenize("a a a a b c"), 1)?;
    /// let mut counts = vocab.counts().to_vec();
    /// counts[0] = 0; // no <unk> among the negatives
    /// let mut sampler = NegativeSampler::new(&counts, 7)?;
    /// let draws = sampler.sample(1000);
    /// assert!(draws.iter().all(|&id| (1..4).contains(&id)));
    /// assert!(draws.iter().filter(|&&id| id == 1).count() > 400); // 4^0.75 / (4^0.75 + 2) ≈ 0.59
    /// assert!(NegativeSampler::new(&[0, 0], 7).is_err());
    /// # Ok::<(), tapegrad::data::DataError>(())
    /// ```
    pub fn new(counts: &[usize], seed: u64) -> Result<NegativeSampler, DataError> {
        let mut positive = counts.iter().enumerate().filter(|(_, count)| **count > 0).map(|(id, _)| id);
        let Some(first) = positive.next() else {
            return Err(DataError::InvalidArgument(format!(
                "negative sampler: all {} counts are zero: expected at least one positive count",
                counts.len()
            )));
        };
        let only = if positive.next().is_none() { Some(first) } else { None };
        let weights = counts.iter().map(|&count| (count as f64).powf(Self::POWER)).collect();
        let alias = WeightedAliasIndex::new(weights).map_err(|e| {
            DataError::InvalidArgument(format!(
                "negative sampler over {} counts: {e}: expected at most {} ids",
                counts.len(),
                u32::MAX
            ))
        })?;
        Ok(NegativeSampler { alias, rng: StdRng::seed_from_u64(seed), only })
    }

    /// Draws `n` ids, independently and with replacement.
    ///
    /// ```
    /// use tapegrad::data::text::NegativeSampler;
    /// let mut sampler = NegativeSampler::new(&[0, 5, 5], 1)?;
    /// let draws = sampler.sample(100);
    /// assert_eq!(draws.len(), 100);
    /// assert!(draws.contains(&1) && draws.contains(&2) && !draws.contains(&0));
    /// // The same seed gives the same draws.
    /// assert_eq!(NegativeSampler::new(&[0, 5, 5], 1)?.sample(100), draws);
    /// # Ok::<(), tapegrad::data::DataError>(())
    /// ```
    pub fn sample(&mut self, n: usize) -> Vec<usize> {
        (&self.alias).sample_iter(&mut self.rng).take(n).collect()
    }

    /// Draws `n` ids other than `target`: each draw equal to `target` is
    /// redrawn, so the others keep their relative probabilities. A `target`
    /// that is never drawn (count 0 or out of range) changes nothing.
    ///
    /// Fails if `target` is the only id with a positive count.
    ///
    /// ```
    /// use tapegrad::data::text::NegativeSampler;
    /// let mut sampler = NegativeSampler::new(&[1, 1000, 1], 3)?;
    /// let draws = sampler.sample_excluding(1, 50)?;
    /// assert!(draws.iter().all(|&id| id == 0 || id == 2));
    /// assert!(NegativeSampler::new(&[0, 4], 3)?.sample_excluding(1, 1).is_err());
    /// # Ok::<(), tapegrad::data::DataError>(())
    /// ```
    pub fn sample_excluding(&mut self, target: usize, n: usize) -> Result<Vec<usize>, DataError> {
        if self.only == Some(target) {
            return Err(DataError::InvalidArgument(format!(
                "cannot draw negatives other than id {target}: it is the only id with a positive count"
            )));
        }
        let draws = (&self.alias).sample_iter(&mut self.rng).filter(|&id| id != target);
        Ok(draws.take(n).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampler_frequencies_follow_counts_to_the_three_quarters() {
        let counts = [0, 100, 50, 10, 1];
        let weights = counts.map(|c| (c as f64).powf(0.75));
        let total: f64 = weights.iter().sum();
        let draws = 100_000;
        let mut sampler = NegativeSampler::new(&counts, 42).unwrap();
        let mut seen = [0usize; 5];
        sampler.sample(draws).into_iter().for_each(|id| seen[id] += 1);
        assert_eq!(seen[0], 0);
        for id in 1..5 {
            let (want, got) = (weights[id] / total, seen[id] as f64 / draws as f64);
            // 100^0.75 / Σ ≈ 0.554, 50^0.75 / Σ ≈ 0.330, 10^0.75 / Σ ≈ 0.099, 1 / Σ ≈ 0.0175.
            assert!((got - want).abs() < 0.03 * want + 0.001, "id {id}: {got} vs {want}");
        }

        // Without id 1, the others keep their relative odds.
        let mut seen = [0usize; 5];
        sampler.sample_excluding(1, draws).unwrap().into_iter().for_each(|id| seen[id] += 1);
        let rest = total - weights[1];
        assert_eq!((seen[0], seen[1]), (0, 0));
        for id in 2..5 {
            let (want, got) = (weights[id] / rest, seen[id] as f64 / draws as f64);
            assert!((got - want).abs() < 0.03 * want + 0.001, "id {id}: {got} vs {want}");
        }
    }

    #[test]
    fn sampler_is_seeded_and_checks_its_counts() {
        let draws = NegativeSampler::new(&[3, 1, 4, 1, 5], 9).unwrap().sample(50);
        assert_eq!(NegativeSampler::new(&[3, 1, 4, 1, 5], 9).unwrap().sample(50), draws);
        assert_ne!(NegativeSampler::new(&[3, 1, 4, 1, 5], 10).unwrap().sample(50), draws);
        let err = NegativeSampler::new(&[0, 0, 0], 1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid argument: negative sampler: all 3 counts are zero: expected at least one positive count"
        );
        assert!(matches!(NegativeSampler::new(&[], 1), Err(DataError::InvalidArgument(_))));
        let mut single = NegativeSampler::new(&[0, 0, 8], 1).unwrap();
        assert_eq!(single.sample(3), [2, 2, 2]);
        assert!(single.sample_excluding(2, 1).is_err());
        assert_eq!(single.sample_excluding(0, 2).unwrap(), [2, 2]);
        assert_eq!(single.sample_excluding(99, 2).unwrap(), [2, 2]);
    }
}
