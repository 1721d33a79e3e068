//! What the training examples' command lines share beyond their own flags: counts that must be
//! at least 1, and the progress bar an epoch shows while it trains.

use indicatif::{ProgressBar, ProgressStyle};

/// A flag's value that counts something and must be at least 1 (`--workers 2`, `--batch 100`),
/// as clap's `value_parser`.
pub fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(count) if count >= 1 => Ok(count),
        _ => Err("expected a whole number of at least 1".into()),
    }
}

/// A progress bar over `steps` steps of epoch `epoch` (from 0), hidden unless `shown`.
pub fn progress_bar(shown: bool, steps: usize, epoch: usize) -> ProgressBar {
    let bar = if shown { ProgressBar::new(steps as u64) } else { ProgressBar::hidden() };
    let style = ProgressStyle::with_template("epoch {prefix:>2} [{bar:30}] {pos}/{len} {msg} {per_sec}");
    bar.set_style(style.expect("a valid template").progress_chars("=> "));
    bar.set_prefix(format!("{}", epoch + 1));
    bar
}
