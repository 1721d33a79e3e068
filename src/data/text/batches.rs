//! Token-id streams cut for training: truncated-BPTT batches for a recurrent language model
//! ([`bptt_batches`]) and CBOW windows for word embeddings ([`cbow_windows`]).
//!
//! Both only read the ids they are given: every input id and target is an id of the stream.

use std::iter::FusedIterator;

use ndarray::Array2;

use crate::data::DataError;

/// Truncated-BPTT batches over a token-id stream, as made by
/// [`bptt_batches`]: `(inputs, targets)`, both `[batch, t]` with
/// `t <= steps`.
///
/// ```
/// use tapegrad::data::text::bptt_batches;
/// let ids: Vec<usize> = (0..100).collect();
/// let batches = bptt_batches(&ids, 4, 10)?; // 4 streams of 25
/// assert_eq!(batches.len(), 3); // steps 10, 10 and 4
/// let shapes: Vec<_> = batches.map(|(inputs, targets)| (inputs.dim(), targets.dim())).collect();
/// assert_eq!(shapes, [((4, 10), (4, 10)), ((4, 10), (4, 10)), ((4, 4), (4, 4))]);
/// # Ok::<(), tapegrad::data::DataError>(())
/// ```
#[derive(Debug, Clone)]
pub struct BpttBatches<'a> {
    ids: &'a [usize],
    batch: usize,
    steps: usize,
    stream_len: usize,
    start: usize,
}

/// Cuts a token-id stream into truncated-BPTT batches, as PyTorch's
/// `word_language_model` example does, but batch-major.
///
/// The stream is cut into `batch` contiguous streams of
/// `L = ids.len() / batch` tokens (the last `ids.len() % batch` tokens are
/// dropped): stream `j` is `ids[j·L .. (j+1)·L]`. The streams are then walked
/// side by side in chunks of `steps`. The chunk starting at offset `s` is
/// `t = min(steps, L - 1 - s)` steps long, with
/// `inputs[[j, k]] = ids[j·L + s + k]` and the next token as the target,
/// `targets[[j, k]] = ids[j·L + s + k + 1]`. So every batch is
/// `[batch, steps]` except perhaps the last, which is shorter, and there are
/// `ceil((L - 1) / steps)` batches. Hidden state carried from one batch to
/// the next continues the same streams.
///
/// Fails if `batch` or `steps` is 0, or if `ids` holds fewer than
/// `2 · batch` tokens (every stream needs an input and a target).
///
/// ```
/// use ndarray::array;
/// use tapegrad::data::text::bptt_batches;
/// let ids: Vec<usize> = (0..11).collect(); // 2 streams: 0..=4 and 5..=9; 10 is dropped
/// let batches: Vec<_> = bptt_batches(&ids, 2, 3)?.collect();
/// assert_eq!(batches.len(), 2);
/// assert_eq!(batches[0].0, array![[0, 1, 2], [5, 6, 7]]);
/// assert_eq!(batches[0].1, array![[1, 2, 3], [6, 7, 8]]);
/// assert_eq!(batches[1].0, array![[3], [8]]);
/// assert_eq!(batches[1].1, array![[4], [9]]);
/// assert!(bptt_batches(&ids, 6, 3).is_err()); // 11 < 2 · 6
/// # Ok::<(), tapegrad::data::DataError>(())
/// ```
pub fn bptt_batches(ids: &[usize], batch: usize, steps: usize) -> Result<BpttBatches<'_>, DataError> {
    if batch == 0 || steps == 0 {
        return Err(DataError::InvalidArgument(format!(
            "BPTT batch size and steps must be at least 1, got batch {batch} and steps {steps}"
        )));
    }
    let needed = batch.saturating_mul(2);
    if ids.len() < needed {
        return Err(DataError::TooShort {
            what: format!("token ids for {batch} BPTT streams of at least 2 tokens each"),
            needed,
            found: ids.len(),
        });
    }
    Ok(BpttBatches { ids, batch, steps, stream_len: ids.len() / batch, start: 0 })
}

impl Iterator for BpttBatches<'_> {
    type Item = (Array2<usize>, Array2<usize>);

    fn next(&mut self) -> Option<Self::Item> {
        let remaining = (self.stream_len - 1).checked_sub(self.start).filter(|&r| r > 0)?;
        let t = self.steps.min(remaining);
        let (ids, stream_len, start) = (self.ids, self.stream_len, self.start);
        let at = |shift: usize| {
            Array2::from_shape_fn((self.batch, t), |(j, k)| ids[j * stream_len + start + k + shift])
        };
        let batch = (at(0), at(1));
        self.start += t;
        Some(batch)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = (self.stream_len - 1).saturating_sub(self.start).div_ceil(self.steps);
        (n, Some(n))
    }
}

impl ExactSizeIterator for BpttBatches<'_> {}

impl FusedIterator for BpttBatches<'_> {}

/// CBOW training pairs: for every position with `window` tokens on each
/// side, the context `[left window…, right window…]` and the word in the
/// middle.
///
/// Returns `contexts` of shape `[n, 2·window]` and `targets` of length `n =
/// ids.len() - 2·window`: row `i` is about position `p = i + window`, with
/// `contexts[[i, k]] = ids[p - window + k]` for `k < window` and
/// `ids[p + 1 + k - window]` after, and `targets[i] = ids[p]`. Windows run
/// across verse boundaries, since `ids` is one stream.
///
/// Fails if `window` is 0 or `ids` has fewer than `2·window + 1` tokens.
///
/// ```
/// use ndarray::array;
/// use tapegrad::data::text::cbow_windows;
/// let (contexts, targets) = cbow_windows(&[10, 11, 12, 13, 14], 1)?;
/// assert_eq!(contexts, array![[10, 12], [11, 13], [12, 14]]);
/// assert_eq!(targets, [11, 12, 13]);
/// assert!(cbow_windows(&[10, 11, 12, 13, 14], 3).is_err());
/// # Ok::<(), tapegrad::data::DataError>(())
/// ```
pub fn cbow_windows(ids: &[usize], window: usize) -> Result<(Array2<usize>, Vec<usize>), DataError> {
    if window == 0 {
        return Err(DataError::InvalidArgument(
            "CBOW window must be at least 1 word on each side, got 0".into(),
        ));
    }
    if ids.len().saturating_sub(1) / 2 < window {
        return Err(DataError::TooShort {
            what: format!("token ids for CBOW windows of {window} words on each side"),
            needed: window.saturating_mul(2).saturating_add(1),
            found: ids.len(),
        });
    }
    let n = ids.len() - 2 * window;
    let contexts = Array2::from_shape_fn((n, 2 * window), |(i, k)| ids[i + k + usize::from(k >= window)]);
    Ok((contexts, ids[window..window + n].to_vec()))
}

#[cfg(test)]
mod tests {
    use ndarray::array;

    use super::*;

    #[test]
    fn bptt_batches_match_the_pytorch_layout() {
        // 14 ids, 3 streams of L = 4 (ids 12 and 13 dropped): 0..4, 4..8, 8..12.
        let ids: Vec<usize> = (100..114).collect();
        let batches = bptt_batches(&ids, 3, 2).unwrap();
        assert_eq!(batches.len(), 2); // ceil((4 - 1) / 2)
        let batches: Vec<_> = batches.collect();
        assert_eq!(batches[0].0, array![[100, 101], [104, 105], [108, 109]]);
        assert_eq!(batches[0].1, array![[101, 102], [105, 106], [109, 110]]);
        assert_eq!(batches[1].0, array![[102], [106], [110]]);
        assert_eq!(batches[1].1, array![[103], [107], [111]]);

        // steps longer than the streams: one batch of L - 1 steps.
        let (inputs, targets) = bptt_batches(&ids, 2, 50).unwrap().next().unwrap();
        assert_eq!(inputs, array![[100, 101, 102, 103, 104, 105], [107, 108, 109, 110, 111, 112]]);
        assert_eq!(targets, array![[101, 102, 103, 104, 105, 106], [108, 109, 110, 111, 112, 113]]);

        // Exactly 2 tokens per stream: one batch of one step.
        let mut batches = bptt_batches(&ids[..4], 2, 3).unwrap();
        assert_eq!(batches.size_hint(), (1, Some(1)));
        assert_eq!(batches.next().unwrap(), (array![[100], [102]], array![[101], [103]]));
        assert_eq!((batches.next(), batches.len()), (None, 0));
        assert!(batches.next().is_none());

        // Every input id of the kept streams is visited once, and targets are the next ids.
        let ids: Vec<usize> = (0..1000).collect();
        let mut seen = 0;
        for (inputs, targets) in bptt_batches(&ids, 7, 10).unwrap() {
            assert_eq!(targets, &inputs + 1);
            seen += inputs.len();
        }
        assert_eq!(seen, 7 * (1000 / 7 - 1));
    }

    #[test]
    fn bptt_errors() {
        let err = bptt_batches(&[1, 2, 3], 2, 5).unwrap_err();
        assert_eq!(
            err.to_string(),
            "token ids for 2 BPTT streams of at least 2 tokens each: expected at least 4, found 3"
        );
        for (batch, steps) in [(0, 5), (1, 0)] {
            let err = bptt_batches(&[1, 2, 3], batch, steps).unwrap_err();
            assert!(matches!(err, DataError::InvalidArgument(_)), "{err}");
        }
        assert!(matches!(bptt_batches(&[1, 2], usize::MAX, 1), Err(DataError::TooShort { .. })));
    }

    #[test]
    fn cbow_windows_are_exact() {
        let ids = [5, 6, 7, 8, 9, 10];
        let (contexts, targets) = cbow_windows(&ids, 2).unwrap();
        assert_eq!(contexts, array![[5, 6, 8, 9], [6, 7, 9, 10]]);
        assert_eq!(targets, [7, 8]);
        let (contexts, targets) = cbow_windows(&ids[..5], 2).unwrap();
        assert_eq!(contexts, array![[5, 6, 8, 9]]);
        assert_eq!(targets, [7]);

        let err = cbow_windows(&ids, 3).unwrap_err();
        assert_eq!(
            err.to_string(),
            "token ids for CBOW windows of 3 words on each side: expected at least 7, found 6"
        );
        assert!(matches!(cbow_windows(&ids, 0), Err(DataError::InvalidArgument(_))));
        assert!(matches!(cbow_windows(&[], 1), Err(DataError::TooShort { needed: 3, found: 0, .. })));
        assert!(matches!(cbow_windows(&ids, usize::MAX), Err(DataError::TooShort { .. })));
    }
}
