//! Negative sampling for word embeddings: [`NegativeSampler`] draws ids as word2vec does.
//!
//! An id with a count of 0 is never drawn, the same seed always gives the same draws, and
//! every draw takes a bounded amount of work, whatever the counts.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::Distribution;
use rand_distr::weighted::WeightedAliasIndex;

use crate::data::DataError;

/// Draws word ids for negative sampling as word2vec does: id `i` with
/// probability `counts[i]^0.75 / Σⱼ counts[j]^0.75`, from a seeded generator.
///
/// Sampling is O(1) per draw (Walker's alias method, via
/// `rand_distr::weighted::WeightedAliasIndex`), also when drawing all but
/// one id: see [`sample_excluding`](Self::sample_excluding). Ids with a
/// count of 0 are never drawn; to keep `<unk>` out of the negatives, set its
/// count to 0.
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
    /// The weights, `count^0.75`, for the exact fallback of `sample_excluding`.
    weights: Vec<f64>,
    /// The id that holds more than half of the total weight, if one does, with a table of
    /// the others (`None` if it is the only id with a positive count).
    heavy: Option<(usize, Option<WeightedAliasIndex<f64>>)>,
}

/// How many draws [`NegativeSampler::sample_excluding`] makes for one negative before it
/// draws from the other ids' weights directly. The target holds at most half the weight
/// there, so this many draws all equal to it happen with probability at most 2^-64.
const REDRAWS: usize = 64;

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
        if counts.iter().all(|&count| count == 0) {
            return Err(DataError::InvalidArgument(format!(
                "negative sampler: all {} counts are zero: expected at least one positive count",
                counts.len()
            )));
        }
        let table = |weights: Vec<f64>| {
            WeightedAliasIndex::new(weights).map_err(|e| {
                DataError::InvalidArgument(format!(
                    "negative sampler over {} counts: {e}: expected at most {} ids",
                    counts.len(),
                    u32::MAX
                ))
            })
        };
        let weights: Vec<f64> = counts.iter().map(|&count| (count as f64).powf(Self::POWER)).collect();
        let total: f64 = weights.iter().sum();
        let alias = table(weights.clone())?;
        // At most one id can hold more than half the weight. Drawing all but it by redrawing
        // could take any number of draws (a count of 10^10 beside one of 1 takes some 3 · 10^7
        // per negative), so it gets a table of the other ids.
        let heavy = match weights.iter().enumerate().find(|&(_, &w)| w > total / 2.0) {
            Some((id, _)) if counts.iter().enumerate().all(|(i, &c)| i == id || c == 0) => Some((id, None)),
            Some((id, _)) => {
                let mut others = weights.clone();
                others[id] = 0.0;
                Some((id, Some(table(others)?)))
            }
            None => None,
        };
        Ok(NegativeSampler { alias, rng: StdRng::seed_from_u64(seed), weights, heavy })
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

    /// Draws `n` ids other than `target`, each with its probability among
    /// the ids other than `target`: a draw equal to `target` is redrawn, so
    /// the others keep their relative probabilities. A `target` that is never
    /// drawn (count 0 or out of range) changes nothing.
    ///
    /// The work per draw is bounded whatever the counts: an id that holds
    /// more than half of the weight is excluded through a table of the other
    /// ids instead of redrawing, and after 64 redraws in a row (a chance of at
    /// most 2^-64 otherwise) one id is picked from the weights directly.
    ///
    /// Fails if `target` is the only id with a positive count.
    ///
    /// ```
    /// use tapegrad::data::text::NegativeSampler;
    /// let mut sampler = NegativeSampler::new(&[1, 1000, 1], 3)?;
    /// let draws = sampler.sample_excluding(1, 50)?;
    /// assert!(draws.iter().all(|&id| id == 0 || id == 2));
    /// assert!(NegativeSampler::new(&[0, 4], 3)?.sample_excluding(1, 1).is_err());
    /// // A count of 10^10 beside one of 1: all five negatives at once.
    /// assert_eq!(NegativeSampler::new(&[10_000_000_000, 1], 3)?.sample_excluding(0, 5)?, [1; 5]);
    /// # Ok::<(), tapegrad::data::DataError>(())
    /// ```
    pub fn sample_excluding(&mut self, target: usize, n: usize) -> Result<Vec<usize>, DataError> {
        match &self.heavy {
            Some((heavy, None)) if *heavy == target => Err(DataError::InvalidArgument(format!(
                "cannot draw negatives other than id {target}: it is the only id with a positive count"
            ))),
            Some((heavy, Some(others))) if *heavy == target => {
                Ok(others.sample_iter(&mut self.rng).take(n).collect())
            }
            _ => Ok((0..n).map(|_| self.draw_other_than(target)).collect()),
        }
    }

    /// One draw other than `target`, which holds at most half of the weight (so `REDRAWS`
    /// draws find another id but with a chance of at most 2^-64); if they do not, one id
    /// straight from the weights of the others.
    fn draw_other_than(&mut self, target: usize) -> usize {
        for _ in 0..REDRAWS {
            let id = self.alias.sample(&mut self.rng);
            if id != target {
                return id;
            }
        }
        self.draw_from_weights(target)
    }

    /// One id other than `target`, picked from the weights in O(ids).
    fn draw_from_weights(&mut self, target: usize) -> usize {
        let rest: f64 = self.weights.iter().enumerate().filter(|&(i, _)| i != target).map(|(_, w)| w).sum();
        let mut at = rand::RngExt::random::<f64>(&mut self.rng) * rest;
        let mut last = None;
        for (id, &w) in self.weights.iter().enumerate() {
            if id == target || w == 0.0 {
                continue;
            }
            if at < w {
                return id;
            }
            at -= w;
            last = Some(id);
        }
        // Rounding can leave `at` just past the last weight: that id is the one.
        last.expect("an id other than the target has a positive count")
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

    /// Runs `f` on its own thread and fails if it takes more than a minute: a sampler that
    /// loops without a bound must fail the test, not hang it.
    fn within_a_minute<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (send, receive) = std::sync::mpsc::channel();
        std::thread::spawn(move || send.send(f()));
        receive
            .recv_timeout(std::time::Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("{what} did not finish"))
    }

    #[test]
    fn excluding_a_word_that_holds_almost_all_the_weight_draws_the_others_at_once() {
        // 10^10 beside 1: the old redrawing took some 3 · 10^7 draws per negative.
        let draws = within_a_minute("[1e10, 1]", || {
            NegativeSampler::new(&[10_000_000_000, 1], 5).unwrap().sample_excluding(0, 5).unwrap()
        });
        assert_eq!(draws, [1; 5]);
        // A count of 2^64 − 1 (which a vocabulary file could once claim) hung it.
        let draws = within_a_minute("[u64::MAX, 1, 0, 3]", || {
            NegativeSampler::new(&[usize::MAX, 1, 0, 3], 5).unwrap().sample_excluding(0, 10_000).unwrap()
        });
        // The other two in the ratio 1 : 3^0.75 (≈ 0.30 : 0.70 of the draws).
        let ones = draws.iter().filter(|&&id| id == 1).count() as f64 / 1e4;
        assert!(draws.iter().all(|&id| id == 1 || id == 3));
        let want = 1.0 / (1.0 + 3f64.powf(0.75));
        assert!((ones - want).abs() < 0.02, "{ones} vs {want}");
        // Excluding a light id still works and never yields it.
        let mut sampler = NegativeSampler::new(&[usize::MAX, 1, 0, 3], 5).unwrap();
        assert!(sampler.sample_excluding(3, 100).unwrap().iter().all(|&id| id == 0 || id == 1));
    }

    #[test]
    fn ordinary_counts_draw_as_plain_redrawing_does() {
        // No id holds half the weight: the draws are those of redrawing on the target, the
        // rule the sampler always had, so seeded runs keep their figures.
        let counts: Vec<usize> = (1..200).map(|i| 10_000 / i).collect();
        let mut sampler = NegativeSampler::new(&counts, 11).unwrap();
        let weights: Vec<f64> = counts.iter().map(|&c| (c as f64).powf(NegativeSampler::POWER)).collect();
        let alias = WeightedAliasIndex::new(weights).unwrap();
        let mut rng = StdRng::seed_from_u64(11);
        for target in [0, 1, 5, 198, 500] {
            let want: Vec<usize> =
                (&alias).sample_iter(&mut rng).filter(|&id| id != target).take(1000).collect();
            assert_eq!(sampler.sample_excluding(target, 1000).unwrap(), want, "target {target}");
        }
    }

    #[test]
    fn the_fallback_after_many_redraws_draws_from_the_other_weights() {
        // The fallback, called directly: ids 2 and 3 in equal shares, never 0 or 1.
        let mut sampler = NegativeSampler::new(&[16, 0, 8, 8], 2).unwrap();
        let mut seen = [0usize; 4];
        for _ in 0..20_000 {
            seen[sampler.draw_from_weights(0)] += 1;
        }
        assert_eq!((seen[0], seen[1]), (0, 0));
        let share = seen[2] as f64 / 20_000.0;
        assert!((share - 0.5).abs() < 0.02, "{share}");
    }
}
