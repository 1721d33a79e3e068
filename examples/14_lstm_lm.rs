//! A word-level LSTM language model of the King James Bible (`data/text/kjv.tsv.gz`), beside
//! the n-gram baselines it has to beat.
//!
//! ```sh
//! cargo run --release --example lstm_lm                          # the course's Rnnlm, 4 epochs
//! cargo run --release --example lstm_lm -- --epochs 2 --lr 10 --prompt "and god said"
//! cargo run --release --example lstm_lm -- --data-dir ~/corpora --vocab 5000
//! ```
//!
//! The verses are split in order, 90% to train, 5% to validate and 5% to test, and tokenized
//! (lower-case words and punctuation marks); the 10,000 most frequent training tokens make the
//! vocabulary, the others become `<unk>`. The model is the course's Rnnlm: embedding (100) →
//! LSTM (100) → linear read-out over the vocabulary, trained on the next token's softmax
//! cross-entropy by truncated backpropagation through time: the training text runs as 20
//! parallel streams cut into chunks of 35 steps, each chunk starting from the previous one's
//! final state carried over as a constant (so backpropagation stops at the chunk's start and
//! `reset` frees its graph). SGD with learning rate 20 and the gradients' joint norm clipped to
//! 0.25; the rate is divided by 4 after an epoch that does not improve the validation
//! perplexity.
//!
//! Before training it computes, in plain Rust, the perplexity of a unigram model and of an
//! interpolated bigram model (`λ·P(w|v) + (1 − λ)·P(w)`, both by maximum likelihood on the
//! training text, `λ` chosen on the validation text) on the same split. Flags: `--epochs N`,
//! `--lr X`, `--clip X`, `--batch N`, `--steps N`, `--embed N`, `--hidden N`, `--vocab N`,
//! `--seed N`, `--chunks N` (at most N chunks per epoch), `--prompt TEXT`, `--words N`,
//! `--data-dir DIR` (holding `kjv.tsv.gz`), `--out-dir DIR`, `--no-progress`; `--help` says
//! what each does.
//!
//! Prints the baselines, the training and validation perplexity after each epoch (a progress
//! bar shows the running one), the test perplexity, and 30 words the model writes after the
//! prompt; draws the curves in `target/plots/lstm_lm.png`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use ndarray::Array2;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::Distribution;
use rand_distr::weighted::WeightedIndex;
use tapegrad::data::text::{Corpus, UNK_ID, Vocab, bptt_batches, tokenize, tokenize_verses};
use tapegrad::nn::{self, Embedding, Init, Linear, Lstm, Module, State};
use tapegrad::optim::{ClipOptions, Optimizer, Sgd, clip_grad_norm};
use tapegrad::{Param, Tape, Value, Var};

#[path = "common/command_line.rs"]
mod command_line;
#[allow(dead_code)]
#[path = "common/plots.rs"]
mod plots;

use command_line::{at_least_one, progress_bar};
use plots::{draw_line, register_font};

/// Trains a word-level LSTM language model of the King James Bible, beside n-gram baselines.
#[derive(Debug, Clone, Parser)]
#[command(name = "lstm_lm")]
pub struct Settings {
    /// The directory holding `kjv.tsv.gz`
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/data/text"))]
    pub data_dir: PathBuf,
    /// Vocabulary entries, `<unk>` included
    #[arg(long, value_parser = at_least_one, default_value_t = 10_000)]
    pub vocab: usize,
    /// Width of the word vectors
    #[arg(long, value_parser = at_least_one, default_value_t = 100)]
    pub embed: usize,
    /// LSTM units
    #[arg(long, value_parser = at_least_one, default_value_t = 100)]
    pub hidden: usize,
    /// Parallel streams per chunk
    #[arg(long, value_parser = at_least_one, default_value_t = 20)]
    pub batch: usize,
    /// Time steps per chunk (the truncation of backpropagation through time)
    #[arg(long, value_parser = at_least_one, default_value_t = 35)]
    pub steps: usize,
    /// SGD's first learning rate
    #[arg(long, default_value_t = 20.0)]
    pub lr: f64,
    /// The largest joint norm of the gradients
    #[arg(long, default_value_t = 0.25)]
    pub clip: f64,
    /// Passes over the training text
    #[arg(long, default_value_t = 4)]
    pub epochs: usize,
    /// Train on at most this many chunks per epoch [default: all of them]
    #[arg(long, value_name = "N")]
    pub chunks: Option<usize>,
    /// Seed of the weights and of the generated text
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The words the generated text starts from
    #[arg(long, value_name = "TEXT", default_value = "in the beginning")]
    pub prompt: String,
    /// How many tokens to generate after the prompt
    #[arg(long, default_value_t = 30)]
    pub words: usize,
    /// Hide the progress bar
    #[arg(long = "no-progress", action = clap::ArgAction::SetFalse)]
    pub progress: bool,
    /// Where the curves are drawn (`lstm_lm.png`)
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/target/plots"))]
    pub out_dir: PathBuf,
}

impl Default for Settings {
    /// The settings of a command line without flags.
    fn default() -> Self {
        Settings::parse_from(["lstm_lm"])
    }
}

/// The token ids of the three parts of the corpus, and their vocabulary.
#[derive(Debug, Clone)]
pub struct Data {
    /// Built from the training tokens.
    pub vocab: Vocab,
    /// The training text's ids.
    pub train: Vec<usize>,
    /// The validation text's ids.
    pub valid: Vec<usize>,
    /// The test text's ids.
    pub test: Vec<usize>,
}

/// Loads `kjv.tsv.gz` from `dir`, splits it 90/5/5 in verse order and encodes each part with
/// the `vocab` most frequent training tokens.
pub fn load(dir: &std::path::Path, vocab: usize) -> Result<Data, tapegrad::data::DataError> {
    let corpus = Corpus::load(dir.join("kjv.tsv.gz"))?;
    let split = corpus.split(0.9, 0.05)?;
    let train = tokenize_verses(split.train);
    let vocab = Vocab::from_top_k(&train, vocab)?;
    let encode = |verses| vocab.encode(&tokenize_verses(verses));
    let (valid, test) = (encode(split.valid), encode(split.test));
    Ok(Data { train: vocab.encode(&train), valid, test, vocab })
}

/// The n-gram baselines' perplexities.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Baselines {
    /// The unigram model's perplexity on the validation text.
    pub unigram_valid: f64,
    /// The interpolated bigram model's perplexity on the validation text.
    pub bigram_valid: f64,
    /// The unigram model's perplexity on the test text.
    pub unigram_test: f64,
    /// The interpolated bigram model's perplexity on the test text.
    pub bigram_test: f64,
    /// The bigram's weight `λ` that minimises the validation perplexity.
    pub lambda: f64,
}

/// Unigram and bigram counts of a training text, for the baselines.
struct Counts {
    unigrams: Vec<f64>,
    total: f64,
    /// Keyed `previous · vocab + next`.
    bigrams: HashMap<usize, f64>,
    /// How often each word is followed by another (its count, less one if it ends the text).
    contexts: Vec<f64>,
    vocab: usize,
}

impl Counts {
    fn new(ids: &[usize], vocab: usize) -> Self {
        let mut unigrams = vec![0.0; vocab];
        ids.iter().for_each(|&w| unigrams[w] += 1.0);
        let (mut bigrams, mut contexts) = (HashMap::new(), vec![0.0; vocab]);
        for pair in ids.windows(2) {
            *bigrams.entry(pair[0] * vocab + pair[1]).or_insert(0.0) += 1.0;
            contexts[pair[0]] += 1.0;
        }
        Counts { unigrams, total: ids.len() as f64, bigrams, contexts, vocab }
    }

    /// For each token of `ids` after the first: its unigram probability and its bigram
    /// probability given the token before (0 after a word never seen followed).
    fn probabilities(&self, ids: &[usize]) -> Vec<(f64, f64)> {
        ids.windows(2)
            .map(|pair| {
                let unigram = self.unigrams[pair[1]] / self.total;
                let count = self.bigrams.get(&(pair[0] * self.vocab + pair[1])).copied().unwrap_or(0.0);
                let context = self.contexts[pair[0]];
                (unigram, if context > 0.0 { count / context } else { 0.0 })
            })
            .collect()
    }
}

/// `exp` of the mean negative log-probability of the interpolation `λ·bigram + (1 − λ)·unigram`.
fn interpolated_perplexity(probabilities: &[(f64, f64)], lambda: f64) -> f64 {
    let nll: f64 = probabilities.iter().map(|&(u, b)| -(lambda * b + (1.0 - lambda) * u).ln()).sum();
    (nll / probabilities.len() as f64).exp()
}

/// The unigram and interpolated bigram perplexities of `data`'s validation and test texts,
/// with `λ` chosen in steps of 0.01 on the validation text. Every vocabulary word occurs in the
/// training text, so the unigram probabilities are never zero.
pub fn baselines(data: &Data) -> Baselines {
    let counts = Counts::new(&data.train, data.vocab.len());
    let (valid, test) = (counts.probabilities(&data.valid), counts.probabilities(&data.test));
    let lambda = (0..100)
        .map(|k| k as f64 / 100.0)
        .min_by(|&a, &b| interpolated_perplexity(&valid, a).total_cmp(&interpolated_perplexity(&valid, b)))
        .expect("candidates");
    Baselines {
        unigram_valid: interpolated_perplexity(&valid, 0.0),
        bigram_valid: interpolated_perplexity(&valid, lambda),
        unigram_test: interpolated_perplexity(&test, 0.0),
        bigram_test: interpolated_perplexity(&test, lambda),
        lambda,
    }
}

/// The course's Rnnlm: embedding → LSTM → linear read-out over the vocabulary.
#[derive(Debug)]
pub struct Rnnlm {
    /// The word vectors, `[vocab, embed]`.
    pub embedding: Embedding<f32>,
    /// One layer, batch first.
    pub lstm: Lstm<f32>,
    /// From the LSTM's output to the vocabulary's scores.
    pub head: Linear<f32>,
}

/// The state's values, kept across `reset`: the next chunk starts from them as constants, which
/// cuts the history there.
pub type Carried = (Value<f32>, Value<f32>);

impl Rnnlm {
    /// A model of `vocab` words: word vectors and read-out uniform in ±0.1 (as PyTorch's
    /// word-language-model example), the LSTM as PyTorch draws it.
    pub fn new(tape: &Tape<f32>, vocab: usize, embed: usize, hidden: usize, rng: &mut StdRng) -> Self {
        let embedding = Embedding::new(tape, vocab, embed, rng);
        let vectors = Init::Uniform(0.1).sample::<f32>(&[vocab, embed], rng);
        tape.get(embedding.weight).update(|mut w| w.assign(&vectors));
        let lstm = Lstm::new(tape, embed, hidden, 1, false, rng);
        let head = Linear::new(tape, hidden, vocab, Init::Uniform(0.1), rng);
        Rnnlm { embedding, lstm, head }
    }

    /// Every parameter, once.
    pub fn params(&self) -> Vec<Param> {
        let mut params = vec![self.embedding.weight];
        params.extend(nn::params(&self.lstm));
        params.extend(nn::params(&self.head));
        params
    }

    /// The scores `[N·T, vocab]` of the next token after each of `inputs` `[N, T]` (rows in the
    /// inputs' row-major order), starting from `carried` (zeros when `None`), and the final
    /// state.
    pub fn forward<'t>(
        &self,
        tape: &'t Tape<f32>,
        inputs: &Array2<usize>,
        carried: &Option<Carried>,
    ) -> (Var<'t, f32>, State<'t, f32>) {
        let (n, t) = inputs.dim();
        let words = self.embedding.lookup(tape, &inputs.clone().into_dyn());
        let state = carried
            .as_ref()
            .map(|(h, c)| State { h: tape.constant(h.clone()), c: Some(tape.constant(c.clone())) });
        let (outputs, state) = self.lstm.run(words, state);
        let hidden = outputs.shape()[2];
        (self.head.forward(outputs.reshape(&[n * t, hidden])), state)
    }
}

/// The values of `state`, to carry to the next chunk.
fn carry(state: State<'_, f32>) -> Carried {
    (state.h.value(), state.c.expect("an LSTM state has c").value())
}

/// One chunk of truncated backpropagation through time: forward from `carried`, softmax
/// cross-entropy of the next tokens `targets`, backward, the gradients' norm clipped to `clip`,
/// an SGD step, and `reset`. Updates `carried` to the chunk's final state and returns the
/// chunk's mean loss.
pub fn train_chunk(
    tape: &Tape<f32>,
    model: &Rnnlm,
    opt: &mut Sgd,
    clip: f64,
    (inputs, targets): (&Array2<usize>, &Array2<usize>),
    carried: &mut Option<Carried>,
) -> f32 {
    let (logits, state) = model.forward(tape, inputs, carried);
    let loss = nn::softmax_cross_entropy(logits, targets.as_slice().expect("standard layout"));
    let mut grads = loss.backward();
    clip_grad_norm(&model.params(), &mut grads, clip, ClipOptions::default()).expect("a valid max_norm");
    opt.step(tape, &grads);
    let value = loss.scalar();
    *carried = Some(carry(state));
    tape.reset();
    value
}

/// The model's perplexity on `ids`, run as `batch` streams in chunks of `steps` with the state
/// carried from chunk to chunk (each stream's first token is context only).
pub fn perplexity(tape: &Tape<f32>, model: &Rnnlm, ids: &[usize], batch: usize, steps: usize) -> f64 {
    let (mut total, mut count, mut carried) = (0.0, 0usize, None);
    for (inputs, targets) in bptt_batches(ids, batch, steps).expect("enough text") {
        let loss = tape.scope(|| {
            let _frozen = tape.no_grad();
            let (logits, state) = model.forward(tape, &inputs, &carried);
            let loss = nn::softmax_cross_entropy(logits, targets.as_slice().expect("standard layout"));
            carried = Some(carry(state));
            loss.scalar() as f64
        });
        total += loss * targets.len() as f64;
        count += targets.len();
    }
    (total / count as f64).exp()
}

/// `words` tokens drawn one by one from the model's next-token distribution (never `<unk>`),
/// after the tokens of `prompt`; the prompt's words outside the vocabulary read as `<unk>`.
pub fn generate(
    tape: &Tape<f32>,
    model: &Rnnlm,
    vocab: &Vocab,
    prompt: &str,
    words: usize,
    seed: u64,
) -> String {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut tokens = tokenize(prompt);
    let mut inputs = Array2::from_shape_vec((1, tokens.len()), vocab.encode(&tokens)).expect("one row");
    let mut carried = None;
    for _ in 0..words {
        let scores = tape.scope(|| {
            let _frozen = tape.no_grad();
            let (logits, state) = model.forward(tape, &inputs, &carried);
            carried = Some(carry(state));
            let last = logits.shape()[0] - 1;
            logits.narrow(0, last, 1).softmax(1).to_array()
        });
        let mut weights: Vec<f64> = scores.iter().map(|&p| p as f64).collect();
        weights[UNK_ID] = 0.0;
        let next = WeightedIndex::new(&weights).expect("some word has weight").sample(&mut rng);
        tokens.push(vocab.word(next).expect("a vocabulary id").to_string());
        inputs = Array2::from_elem((1, 1), next);
    }
    detokenize(&tokens)
}

/// Tokens joined by spaces, without the space before a punctuation mark that ends a phrase.
fn detokenize(tokens: &[String]) -> String {
    let mut text = String::new();
    for token in tokens {
        if !text.is_empty() && ![",", ".", ";", ":", "?", "!", ")"].contains(&token.as_str()) {
            text.push(' ');
        }
        text.push_str(token);
    }
    text
}

/// One epoch's figures.
#[derive(Debug, Clone, Copy)]
pub struct Epoch {
    /// `exp` of the mean training loss over the epoch's chunks.
    pub train_perplexity: f64,
    /// The perplexity on the validation text after the epoch.
    pub valid_perplexity: f64,
    /// The learning rate the epoch trained with.
    pub lr: f64,
    /// Wall-clock seconds of the epoch's training chunks.
    pub seconds: f64,
}

/// What training reports.
#[derive(Debug, Clone)]
pub struct Report {
    /// The n-gram baselines.
    pub baselines: Baselines,
    /// Every epoch's figures.
    pub epochs: Vec<Epoch>,
    /// `(epochs done, training perplexity)` over each run of 100 chunks, for the curves.
    pub running: Vec<(f64, f64)>,
    /// The model's perplexity on the test text at the end.
    pub test_perplexity: f64,
    /// The prompt and the words the model wrote after it.
    pub generated: String,
}

/// Chunks per point of [`Report::running`].
const RUN: usize = 100;

/// Trains as `settings` say, printing the baselines and a line per epoch.
pub fn train(settings: &Settings) -> Result<Report, Box<dyn std::error::Error>> {
    let data = load(&settings.data_dir, settings.vocab)?;
    println!(
        "KJV: {} training, {} validation and {} test tokens, vocabulary {}",
        data.train.len(),
        data.valid.len(),
        data.test.len(),
        data.vocab.len()
    );
    let baselines = baselines(&data);
    println!(
        "unigram perplexity: valid {:.1}, test {:.1}; interpolated bigram (λ = {:.2}): valid {:.1}, test {:.1}",
        baselines.unigram_valid,
        baselines.unigram_test,
        baselines.lambda,
        baselines.bigram_valid,
        baselines.bigram_test
    );

    let tape = Tape::<f32>::new();
    let mut rng = StdRng::seed_from_u64(settings.seed);
    let model = Rnnlm::new(&tape, data.vocab.len(), settings.embed, settings.hidden, &mut rng);
    let mut opt = Sgd::new(model.params(), settings.lr);
    let (mut epochs, mut running) = (Vec::<Epoch>::new(), Vec::new());
    let mut best = f64::INFINITY;
    for epoch in 0..settings.epochs {
        let batches = bptt_batches(&data.train, settings.batch, settings.steps)?;
        let chunks = settings.chunks.map_or(batches.len(), |c| c.min(batches.len()));
        let bar = progress_bar(settings.progress, chunks, epoch);
        let (start, mut carried) = (Instant::now(), None);
        let (mut total, mut run) = (0.0, 0.0);
        for (k, (inputs, targets)) in batches.take(chunks).enumerate() {
            let loss = train_chunk(&tape, &model, &mut opt, settings.clip, (&inputs, &targets), &mut carried);
            total += loss as f64;
            run += loss as f64;
            if (k + 1) % RUN == 0 {
                running.push((epoch as f64 + (k + 1) as f64 / chunks as f64, (run / RUN as f64).exp()));
                run = 0.0;
            }
            bar.set_message(format!("perplexity {:.1}", (total / (k + 1) as f64).exp()));
            bar.inc(1);
        }
        bar.finish_and_clear();
        let seconds = start.elapsed().as_secs_f64();
        let valid_perplexity = perplexity(&tape, &model, &data.valid, settings.batch, settings.steps);
        let stats = Epoch {
            train_perplexity: (total / chunks as f64).exp(),
            valid_perplexity,
            lr: Optimizer::<f32>::learning_rate(&opt),
            seconds,
        };
        println!(
            "epoch {:>2}: train perplexity {:.1}  valid perplexity {:.1}  (lr {}, {:.1} s)",
            epoch + 1,
            stats.train_perplexity,
            stats.valid_perplexity,
            stats.lr,
            seconds
        );
        epochs.push(stats);
        if valid_perplexity < best {
            best = valid_perplexity;
        } else {
            Optimizer::<f32>::set_learning_rate(&mut opt, stats.lr / 4.0);
        }
    }
    let test_perplexity = perplexity(&tape, &model, &data.test, settings.batch, settings.steps);
    let generated = generate(&tape, &model, &data.vocab, &settings.prompt, settings.words, settings.seed);
    let report = Report { baselines, epochs, running, test_perplexity, generated };
    std::fs::create_dir_all(&settings.out_dir)?;
    let path = settings.out_dir.join("lstm_lm.png");
    plot(&path, &report)?;
    println!("perplexity curves drawn in {}", path.display());
    Ok(report)
}

/// Training perplexity by runs of chunks and validation perplexity by epoch, against the
/// baselines' validation perplexities, on a log scale.
fn plot(path: &std::path::Path, report: &Report) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    register_font();
    let root = BitMapBackend::new(path, (900, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let n = report.epochs.len().max(1) as f64;
    let b = report.baselines;
    let values = report.running.iter().map(|p| p.1).chain(report.epochs.iter().map(|e| e.valid_perplexity));
    let low = values.fold(b.bigram_valid, f64::min) * 0.8;
    let high = (b.unigram_valid * 4.0).max(low * 2.0);
    let mut chart = ChartBuilder::on(&root)
        .caption("LSTM language model, King James Bible", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..n, (low..high).log_scale())?;
    chart.configure_mesh().x_desc("epoch").y_desc("perplexity").draw()?;
    let clamp = |v: f64| v.clamp(low, high);
    let train = report.running.iter().map(|&(x, p)| (x, clamp(p)));
    let valid: Vec<(f64, f64)> =
        report.epochs.iter().enumerate().map(|(e, s)| ((e + 1) as f64, clamp(s.valid_perplexity))).collect();
    draw_line(&mut chart, train, RED, "training (100-chunk means)")?;
    draw_line(&mut chart, valid.clone(), BLUE, "validation")?;
    draw_line(&mut chart, [(0.0, b.bigram_valid), (n, b.bigram_valid)], GREEN, "bigram, validation")?;
    draw_line(&mut chart, [(0.0, b.unigram_valid), (n, b.unigram_valid)], BLACK, "unigram, validation")?;
    chart.draw_series(valid.iter().map(|&p| Circle::new(p, 4, BLUE.filled())))?;
    chart.configure_series_labels().border_style(BLACK).background_style(WHITE).draw()?;
    root.present()?;
    Ok(())
}

#[allow(dead_code)]
fn main() {
    let settings = Settings::parse();
    let start = Instant::now();
    match train(&settings) {
        Ok(report) => {
            println!("generated: {}", report.generated);
            println!(
                "test perplexity: {:.1} (bigram {:.1}, unigram {:.1}); {:.0} s in all",
                report.test_perplexity,
                report.baselines.bigram_test,
                report.baselines.unigram_test,
                start.elapsed().as_secs_f64()
            );
        }
        Err(e) => {
            eprintln!("lstm_lm: {e}");
            std::process::exit(1);
        }
    }
}
