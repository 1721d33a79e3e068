//! Word embeddings of the King James Bible: word2vec's CBOW with negative sampling.
//!
//! ```sh
//! cargo run --release --example cbow                   # Adam, 5 epochs
//! cargo run --release --example cbow -- --epochs 2 --seed 3
//! cargo run --release --example cbow -- --corpus other.tsv.gz --pairs other_pairs.txt
//! cargo run --release --example cbow -- --help           # every flag
//! ```
//!
//! The corpus is `data/text/kjv.tsv.gz` (31,102 verses, 790,000 words); punctuation is dropped
//! and so are the words seen fewer than 5 times (word2vec's `min_count`), which leaves 5,323
//! kinds of words. Each epoch first thins out the frequent words as word2vec does (a word of
//! frequency `f` is kept with probability `(√(f/s) + 1)·s/f`, `s = 10⁻³`), then cuts the text
//! into windows of 5 words on each side of a middle word, taken in a shuffled order, 100 a step.
//!
//! The model, for a batch of windows: `h` is the mean of the 10 context words' rows of the input
//! table `W_in` `[V, 100]`; the middle word and 5 negatives, drawn from the word counts to the
//! power ¾, are scored by the dot product of `h` with their rows of the output table `W_out`;
//! the loss is the binary cross-entropy of those scores (with logits), the middle word labelled
//! 1 and the negatives 0. Both tables start as in word2vec (`W_in` small and random, `W_out`
//! zero) and are read through embedding lookups, so their gradients are row-sparse: a step
//! updates only the 1,600 or so rows its batch touched. The learning rate falls linearly to
//! nearly zero over the run, as in word2vec.
//!
//! The optimizer is Adam (lazy on the untouched rows, as PyTorch's `SparseAdam`), lr 0.003.
//! Plain SGD on this batched loss did not train within the time: at lr 1 the loss stays at
//! ln 2 for an epoch, and from lr 3 up every embedding turns towards one common direction
//! (random pairs end up with cosines of 0.8 to 1). With Adam at lr 0.003, 5 epochs put every
//! related pair above 95% of the random pairs with a margin of 0.65 (2 epochs: the same margin,
//! 47 of the 52 pairs); 10 epochs, or lr 0.01, spread all words apart and narrow the margin.
//!
//! The check, fixed before training: `data/text/related_pairs.txt` lists 52 pairs of plainly
//! related words (kinship, places, numbers, the body, animals, …). The mean cosine similarity of
//! their embeddings (rows of `W_in`) must be far above that of 2,000 random pairs of the 1,000
//! most frequent words. The example prints the loss of each epoch, the nearest words of a few
//! queries, and ends with that check. It saves to `target/cbow/` the embeddings
//! (`embeddings.safetensors`, tensors `input.weight` and `output.weight`), the vocabulary
//! (`vocab.tsv`, line `i + 1` is row `i`), and a scatter of the words ranked 51 to 150 by
//! frequency on the first two principal components of their embeddings (`pca.png`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Parser;
use ndarray::{Array1, Array2, Array3, ArrayD, ArrayView1, Axis};
use rand::seq::SliceRandom;
use rand::{Rng, RngExt, SeedableRng};
use tapegrad::data::text::{Corpus, NegativeSampler, UNK_ID, Vocab, cbow_windows, is_word};
use tapegrad::nn::{self, Embedding, Init, Module};
use tapegrad::{Param, Tape, Var};

#[path = "common/command_line.rs"]
mod command_line;
#[path = "common/optimizer.rs"]
mod optimizer;
#[allow(dead_code)]
#[path = "common/plots.rs"]
mod plots;

use command_line::{at_least_one, progress_bar};
pub use optimizer::OptimizerName;
use optimizer::optimizer;

/// Learns word embeddings of the King James Bible with word2vec's CBOW and negative sampling.
#[derive(Debug, Clone, Parser)]
#[command(name = "cbow")]
pub struct Settings {
    /// The corpus, a gzipped or plain file of `reference<TAB>text` lines
    #[arg(
        long,
        value_name = "FILE",
        default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/data/text/kjv.tsv.gz")
    )]
    pub corpus: PathBuf,
    /// The related pairs of the check
    #[arg(
        long,
        value_name = "FILE",
        default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/data/text/related_pairs.txt")
    )]
    pub pairs: PathBuf,
    /// Words seen fewer times are dropped
    #[arg(long, default_value_t = 5)]
    pub min_count: usize,
    /// Frequent words are thinned out above this frequency (0: keep every word)
    #[arg(long, default_value_t = 1e-3)]
    pub subsample: f64,
    /// Context words on each side of the middle word
    #[arg(long, default_value_t = 5)]
    pub window: usize,
    /// The embeddings' dimension
    #[arg(long, value_parser = at_least_one, default_value_t = 100)]
    pub dim: usize,
    /// Negative words per window
    #[arg(long, value_parser = at_least_one, default_value_t = 5)]
    pub negatives: usize,
    /// Windows per step
    #[arg(long, value_parser = at_least_one, default_value_t = 100)]
    pub batch: usize,
    /// Passes over the corpus
    #[arg(long, default_value_t = 5)]
    pub epochs: usize,
    /// The optimizer
    #[arg(long, value_enum, default_value_t = OptimizerName::Adam)]
    pub optimizer: OptimizerName,
    /// The first step's learning rate; it falls linearly to 10⁻⁴ of it at the end
    #[arg(long, default_value_t = 0.003)]
    pub lr: f64,
    /// Seed of the initial weights, the thinning, the order and the negatives
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Where the embeddings, the vocabulary and the picture are written
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/target/cbow"))]
    pub out_dir: PathBuf,
    /// Show a progress bar
    #[arg(skip = true)]
    pub progress: bool,
}

impl Default for Settings {
    /// The settings of a command line without flags.
    fn default() -> Self {
        Settings::parse_from(["cbow"])
    }
}

/// CBOW's two tables: the input vectors (the embeddings) and the output vectors the middle word
/// and the negatives are scored with.
#[derive(Debug, Clone, Copy)]
pub struct Cbow {
    /// `W_in` `[V, D]`, the context words' vectors.
    pub input: Embedding<f32>,
    /// `W_out` `[V, D]`, the scored words' vectors.
    pub output: Embedding<f32>,
}

impl Cbow {
    /// Tables of `vocab` words of `dim`, started as word2vec does: `W_in` uniform in
    /// `±0.5/dim`, `W_out` zero.
    pub fn new(tape: &Tape<f32>, vocab: usize, dim: usize, rng: &mut impl Rng) -> Self {
        let (input, output) = (Embedding::new(tape, vocab, dim, rng), Embedding::new(tape, vocab, dim, rng));
        tape.get(input.weight).set_value(Init::Uniform(0.5 / dim as f64).sample::<f32>(&[vocab, dim], rng));
        tape.get(output.weight).set_value(Array2::<f32>::zeros((vocab, dim)));
        Cbow { input, output }
    }

    /// The mean binary cross-entropy of a batch: `contexts` `[B, C]` are the context words,
    /// `words` `[B, 1 + K]` the middle word (column 0, label 1) and `K` negatives (label 0).
    pub fn loss<'t>(
        &self,
        tape: &'t Tape<f32>,
        contexts: &ArrayD<usize>,
        words: &ArrayD<usize>,
    ) -> Var<'t, f32> {
        let (batch, scored) = (words.shape()[0], words.shape()[1]);
        let dim = tape.get(self.input.weight).shape()[1];
        // h: [B, C, D] → mean over the context → [B, D, 1], a column per window
        let h = self.input.lookup(tape, contexts).mean_axes(&[1], false).reshape(&[batch, dim, 1]);
        // scores: [B, 1 + K, D]·[B, D, 1] → [B, 1 + K, 1]
        let scores = self.output.lookup(tape, words).matmul(h);
        let labels = Array3::from_shape_fn((batch, scored, 1), |(_, j, _)| if j == 0 { 1.0 } else { 0.0 });
        nn::binary_cross_entropy_with_logits(scores, tape.constant(labels))
    }
}

impl Module<f32> for Cbow {
    /// The mean input vector of each row of context ids `[B, C]` given as numbers: `[B, D]`.
    fn forward<'t>(&self, x: Var<'t, f32>) -> Var<'t, f32> {
        self.input.forward(x).mean_axes(&[1], false)
    }
    fn parameters(&self) -> Vec<(String, Param)> {
        vec![("input.weight".into(), self.input.weight), ("output.weight".into(), self.output.weight)]
    }
}

/// The corpus's words in order (punctuation dropped), the vocabulary of those seen `min_count`
/// times, and the text as ids of that vocabulary, the other words left out.
pub fn prepare(settings: &Settings) -> Result<(Vocab, Vec<usize>), Box<dyn std::error::Error>> {
    let corpus = Corpus::load(&settings.corpus)?;
    let words: Vec<String> = corpus.tokens().into_iter().filter(|t| is_word(t)).collect();
    let vocab = Vocab::from_min_count(&words, settings.min_count)?;
    let ids = vocab.encode(&words).into_iter().filter(|&id| id != UNK_ID).collect();
    Ok((vocab, ids))
}

/// word2vec's thinning: each occurrence of a word of frequency `f` above `threshold` is kept
/// with probability `(√(f/threshold) + 1)·threshold/f`.
fn subsample(ids: &[usize], counts: &[usize], threshold: f64, rng: &mut impl Rng) -> Vec<usize> {
    if threshold <= 0.0 {
        return ids.to_vec();
    }
    let total = ids.len() as f64;
    let keep: Vec<f64> = counts
        .iter()
        .map(|&count| {
            let ratio = count as f64 / total / threshold;
            if ratio > 0.0 { ((ratio.sqrt() + 1.0) / ratio).min(1.0) } else { 1.0 }
        })
        .collect();
    ids.iter().copied().filter(|&id| rng.random::<f64>() < keep[id]).collect()
}

/// The mean cosine similarity of the related pairs and of random pairs.
#[derive(Debug, Clone, Copy)]
pub struct Check {
    /// Mean cosine similarity of the related pairs.
    pub related: f64,
    /// Mean cosine similarity of random pairs of frequent words.
    pub random: f64,
    /// How many related pairs.
    pub pairs: usize,
    /// How many random pairs.
    pub random_pairs: usize,
    /// How many related pairs are closer than 95% of the random pairs.
    pub above_95th: usize,
}

/// What training reports.
#[derive(Debug, Clone)]
pub struct Report {
    /// The vocabulary; word `i` is row `i` of the embeddings.
    pub vocab: Vocab,
    /// `W_in` after training, `[V, D]`.
    pub embeddings: Array2<f32>,
    /// The mean loss of each epoch.
    pub losses: Vec<f64>,
    /// Seconds spent in the training steps, all epochs.
    pub seconds: f64,
    /// The related pairs against random pairs.
    pub check: Check,
}

/// Reads the related pairs: two words a line, `#` comments and blank lines skipped.
pub fn read_pairs(path: &Path) -> Result<Vec<(String, String)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut pairs = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_whitespace().collect::<Vec<_>>()[..] {
            [a, b] => pairs.push((a.to_owned(), b.to_owned())),
            _ => {
                return Err(format!(
                    "{}: line {}: expected two words, found {line:?}",
                    path.display(),
                    number + 1
                ));
            }
        }
    }
    Ok(pairs)
}

/// The words of `pairs` that are not in `vocab`, in order.
pub fn missing_words<'p>(vocab: &Vocab, pairs: &'p [(String, String)]) -> Vec<&'p str> {
    let words = pairs.iter().flat_map(|(a, b)| [a.as_str(), b.as_str()]);
    words.filter(|w| vocab.id(w) == UNK_ID).collect()
}

/// Each row scaled to length 1 (a zero row stays zero), so dot products are cosines.
pub fn unit_rows(embeddings: &Array2<f32>) -> Array2<f32> {
    let mut unit = embeddings.clone();
    for mut row in unit.outer_iter_mut() {
        let norm = row.dot(&row).sqrt();
        if norm > 0.0 {
            row /= norm;
        }
    }
    unit
}

/// The related pairs' mean cosine against that of `random_pairs` pairs of distinct words drawn
/// (seeded) among the `frequent` most frequent words.
pub fn check(
    vocab: &Vocab,
    unit: &Array2<f32>,
    pairs: &[(String, String)],
    frequent: usize,
    random_pairs: usize,
    seed: u64,
) -> Check {
    let cosine = |a: usize, b: usize| unit.row(a).dot(&unit.row(b)) as f64;
    let related =
        pairs.iter().map(|(a, b)| cosine(vocab.id(a), vocab.id(b))).sum::<f64>() / pairs.len() as f64;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let top = frequent.min(vocab.len() - 1);
    let mut random: Vec<f64> = (0..random_pairs)
        .map(|_| {
            let a = rng.random_range(1..=top);
            let b = loop {
                let b = rng.random_range(1..=top);
                if b != a {
                    break b;
                }
            };
            cosine(a, b)
        })
        .collect();
    let mean = random.iter().sum::<f64>() / random_pairs as f64;
    random.sort_by(f64::total_cmp);
    let percentile_95 = random[random_pairs * 95 / 100];
    let above_95th = pairs.iter().filter(|(a, b)| cosine(vocab.id(a), vocab.id(b)) > percentile_95).count();
    Check { related, random: mean, pairs: pairs.len(), random_pairs, above_95th }
}

/// The `k` words closest to `word` (a word of the vocabulary) by cosine similarity, with their
/// similarities; `unit` holds the embeddings as [`unit_rows`] leaves them.
pub fn nearest<'v>(vocab: &'v Vocab, unit: &Array2<f32>, word: &str, k: usize) -> Vec<(&'v str, f32)> {
    let id = vocab.id(word);
    let similarities = unit.dot(&unit.row(id));
    let mut order: Vec<usize> = (1..vocab.len()).filter(|&i| i != id).collect();
    order.sort_by(|&a, &b| similarities[b].total_cmp(&similarities[a]));
    order
        .into_iter()
        .take(k)
        .map(|i| (vocab.word(i).expect("an id of the vocabulary"), similarities[i]))
        .collect()
}

/// The top `n` principal directions of the rows of `x` (unit vectors, by falling variance),
/// by power iteration on the covariance with deflation.
pub fn principal_components(x: &Array2<f32>, n: usize, iterations: usize) -> Vec<Array1<f32>> {
    let mean = x.mean_axis(Axis(0)).expect("at least one row");
    let centered = x - &mean;
    let mut covariance = centered.t().dot(&centered) / x.nrows() as f32;
    let mut components = Vec::with_capacity(n);
    for c in 0..n {
        // a fixed start that is not orthogonal to any direction in general
        let mut v = Array1::from_shape_fn(x.ncols(), |i| 1.0 + ((i * 7 + c * 3) % 11) as f32 / 11.0);
        for _ in 0..iterations {
            let next = covariance.dot(&v);
            let norm = next.dot(&next).sqrt();
            if norm == 0.0 {
                break;
            }
            v = next / norm;
        }
        let variance = v.dot(&covariance.dot(&v));
        // deflate: remove the direction found, so the next iteration finds the next one
        let outer = v.view().insert_axis(Axis(1)).dot(&v.view().insert_axis(Axis(0)));
        covariance = covariance - outer * variance;
        components.push(v);
    }
    components
}

/// Trains as `settings` say, printing a line per epoch, and evaluates.
pub fn train(settings: &Settings) -> Result<Report, Box<dyn std::error::Error>> {
    let (vocab, ids) = prepare(settings)?;
    let pairs = read_pairs(&settings.pairs)?;
    let missing = missing_words(&vocab, &pairs);
    if !missing.is_empty() {
        return Err(format!("words of the related pairs outside the vocabulary: {missing:?}").into());
    }
    println!(
        "{} words of {} kinds seen at least {} times, from {}",
        ids.len(),
        vocab.len() - 1,
        settings.min_count,
        settings.corpus.display()
    );
    let mut counts = vocab.counts().to_vec();
    counts[UNK_ID] = 0;
    let mut sampler = NegativeSampler::new(&counts, settings.seed)?;
    let tape = Tape::<f32>::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(settings.seed);
    let model = Cbow::new(&tape, vocab.len(), settings.dim, &mut rng);
    let mut opt = optimizer(settings.optimizer, nn::params(&model), settings.lr);

    // the number of steps is known only after each epoch's thinning; the schedule uses the
    // expected count, measured on the first epoch
    let (mut losses, mut seconds, mut step, mut planned) = (Vec::new(), 0.0, 0usize, None);
    let scored = 1 + settings.negatives;
    for epoch in 0..settings.epochs {
        let kept = subsample(&ids, vocab.counts(), settings.subsample, &mut rng);
        let (contexts, targets) = cbow_windows(&kept, settings.window)?;
        let mut order: Vec<usize> = (0..targets.len()).collect();
        order.shuffle(&mut rng);
        let steps = order.len() / settings.batch;
        let total = *planned.get_or_insert(steps * settings.epochs);
        let bar = progress_bar(settings.progress, steps, epoch);
        let (start, mut sum) = (Instant::now(), 0.0);
        for (done, batch) in (1..).zip(order.chunks_exact(settings.batch)) {
            let context = ArrayD::from_shape_fn(vec![batch.len(), contexts.ncols()], |at| {
                contexts[[batch[at[0]], at[1]]]
            });
            let mut words = Vec::with_capacity(batch.len() * scored);
            for &i in batch {
                words.push(targets[i]);
                words.extend(sampler.sample_excluding(targets[i], settings.negatives)?);
            }
            let words = ArrayD::from_shape_vec(vec![batch.len(), scored], words).expect("B·(1 + K) ids");
            let progress = (step as f64 / total as f64).min(1.0);
            opt.set_learning_rate(settings.lr * (1.0 - progress).max(1e-4));
            let loss = model.loss(&tape, &context, &words);
            let grads = loss.backward();
            opt.step(&tape, &grads);
            sum += loss.scalar() as f64;
            tape.reset();
            step += 1;
            if done % 100 == 0 {
                bar.set_message(format!("loss {:.4}", sum / done as f64));
            }
            bar.inc(1);
        }
        bar.finish_and_clear();
        let elapsed = start.elapsed().as_secs_f64();
        seconds += elapsed;
        losses.push(sum / steps.max(1) as f64);
        println!(
            "epoch {:>2}: loss {:.4}  ({steps} steps of {} windows, {elapsed:.1} s)",
            epoch + 1,
            losses[epoch],
            settings.batch
        );
    }
    let embeddings: Array2<f32> = tape.get(model.input.weight).to_array().into_dimensionality()?;
    let unit = unit_rows(&embeddings);
    let check = check(&vocab, &unit, &pairs, 1_000, 2_000, settings.seed ^ 0x9a1e);
    std::fs::create_dir_all(&settings.out_dir)?;
    nn::save(settings.out_dir.join("embeddings.safetensors"), &tape, &model)?;
    vocab.save(settings.out_dir.join("vocab.tsv"))?;
    Ok(Report { vocab, embeddings, losses, seconds, check })
}

/// The words shown in the picture: the 100 most frequent after the 50 most frequent, which are
/// mostly function words ("the", "and", "unto", …).
fn pictured(vocab: &Vocab) -> Vec<usize> {
    (51..151.min(vocab.len())).collect()
}

/// The pictured words on the first two principal components of their unit embeddings.
pub fn plot_pca(path: &Path, vocab: &Vocab, unit: &Array2<f32>) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    plots::register_font();
    let ids = pictured(vocab);
    let x = unit.select(Axis(0), &ids);
    let components = principal_components(&x, 2, 100);
    let mean = x.mean_axis(Axis(0)).expect("rows");
    let project = |row: ArrayView1<f32>| {
        let centered = &row - &mean;
        (centered.dot(&components[0]) as f64, centered.dot(&components[1]) as f64)
    };
    let points: Vec<(f64, f64)> = x.outer_iter().map(project).collect();
    let range = |pick: fn(&(f64, f64)) -> f64| {
        let (lo, hi) =
            points.iter().map(pick).fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let pad = (hi - lo) * 0.08;
        (lo - pad)..(hi + pad)
    };
    let root = BitMapBackend::new(path, (1000, 800)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "CBOW embeddings: words 51 to 150 by frequency, first two principal components",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(40)
        .build_cartesian_2d(range(|p| p.0), range(|p| p.1))?;
    chart.configure_mesh().x_desc("PC 1").y_desc("PC 2").draw()?;
    chart.draw_series(points.iter().zip(&ids).map(|(&(px, py), &id)| {
        let word = vocab.word(id).expect("an id of the vocabulary").to_owned();
        EmptyElement::at((px, py))
            + Circle::new((0, 0), 3, BLUE.filled())
            + Text::new(word, (4, -6), ("sans-serif", 13).into_font())
    }))?;
    root.present()?;
    Ok(())
}

/// The queries whose nearest words the example prints.
pub const QUERIES: [&str; 6] = ["god", "king", "water", "seven", "egypt", "gold"];

#[allow(dead_code)]
fn main() {
    let settings = Settings::parse();
    let start = Instant::now();
    let report = match train(&settings) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("cbow: {e}");
            std::process::exit(1);
        }
    };
    let unit = unit_rows(&report.embeddings);
    for query in QUERIES {
        let near: Vec<String> =
            nearest(&report.vocab, &unit, query, 6).iter().map(|(w, s)| format!("{w} {s:.2}")).collect();
        println!("{query:>6}: {}", near.join(", "));
    }
    println!("embeddings and vocabulary saved in {}", settings.out_dir.display());
    let picture = settings.out_dir.join("pca.png");
    match plot_pca(&picture, &report.vocab, &unit) {
        Ok(()) => println!("100 frequent words on two principal components drawn in {}", picture.display()),
        Err(e) => eprintln!("cbow: could not draw {}: {e}", picture.display()),
    }
    println!("{:.1} s of training, {:.1} s in all", report.seconds, start.elapsed().as_secs_f64());
    let c = report.check;
    println!("{} of the {} related pairs are closer than 95% of the random pairs", c.above_95th, c.pairs);
    println!(
        "mean cosine similarity: related pairs {:.3} ({}), random pairs {:.3} ({}), margin {:.3}",
        c.related,
        c.pairs,
        c.random,
        c.random_pairs,
        c.related - c.random
    );
}
