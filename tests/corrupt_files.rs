//! Files from anywhere: every format the crate reads, written by the crate itself and then
//! damaged (cut short, bytes flipped, sizes and counts inflated, keys repeated, gzip bombs
//! appended), is either read back to the value the damaged file really holds or refused with
//! an error: never a panic, and never more heap than a small multiple of the file's size plus
//! the text loaders' limit, measured across all threads by a counting allocator. A load that
//! fails leaves the model or optimizer it was loading into unchanged.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};

use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use ndarray::{ArrayD, array};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use safetensors::tensor::{Dtype, SafeTensors};
use tapegrad::Tape;
use tapegrad::checkpoint::Checkpoint;
use tapegrad::data::text::{Corpus, TextLimits, Vocab};
use tapegrad::data::{DataError, IdxArray, LabelledDataset, read_csv, read_idx};
use tapegrad::nn::{self, Linear, Module};
use tapegrad::optim::{Adam, Optimizer};
use tapegrad::state::{Entry, StateDict, StateError};

mod common;

#[global_allocator]
static ALLOCATOR: common::Counting = common::Counting;

/// The tests of this file run one at a time, so that the process-wide peak is one load's.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The text loaders' limit in the property test: small, so that a gzip bomb passes it.
const LIMIT: u64 = 1 << 20;
/// Heap a load may hold beyond its file: buffers, the gzip decoder, parser state.
const SLACK: isize = 1 << 20;
/// How many times its file's size a load may hold: the file read whole, the header parsed,
/// the arrays built from it, the error listing what did not fit.
const PER_FILE_BYTE: isize = 16;
/// How many times the text loaders' limit they may hold (their documentation says about 3).
const PER_LIMIT_BYTE: isize = 4;

/// A fresh path in a directory of this process's own.
fn temp_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tapegrad-corrupt-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Runs `load`, returns its result and the most heap all threads held meanwhile beyond what
/// they held before.
fn measured<T>(load: impl FnOnce() -> T) -> (T, isize) {
    let before = common::mark_process_peak();
    let result = load();
    (result, common::process_peak() - before)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::best());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    MultiGzDecoder::new(bytes).read_to_end(&mut out).unwrap();
    out
}

/// A gzip member that expands 8 MiB of verses (`a<TAB>b`) from about 8 KB: appended to a
/// gzipped text file, it is read as more of the same file.
fn bomb() -> &'static [u8] {
    static BOMB: OnceLock<Vec<u8>> = OnceLock::new();
    BOMB.get_or_init(|| gzip(&b"a\tb\n".repeat(2 << 20)))
}

/// The formats the crate reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    IdxRaw,
    IdxGz,
    Weights,
    State,
    Checkpoint,
    OptimizerState,
    Csv,
    LabelledCsv,
    CorpusPlain,
    CorpusGz,
    Vocab,
}

const FORMATS: [Format; 11] = [
    Format::IdxRaw,
    Format::IdxGz,
    Format::Weights,
    Format::State,
    Format::Checkpoint,
    Format::OptimizerState,
    Format::Csv,
    Format::LabelledCsv,
    Format::CorpusPlain,
    Format::CorpusGz,
    Format::Vocab,
];

impl Format {
    fn is_safetensors(self) -> bool {
        matches!(self, Format::Weights | Format::State | Format::Checkpoint | Format::OptimizerState)
    }

    fn is_text(self) -> bool {
        matches!(self, Format::CorpusPlain | Format::CorpusGz | Format::Vocab)
    }

    fn is_gzipped(self) -> bool {
        matches!(self, Format::IdxGz | Format::CorpusGz)
    }
}

/// The model whose weights the safetensors files hold, on `tape`.
fn model(tape: &Tape<f32>, scale: f32) -> Linear<f32> {
    Linear::from_arrays(
        tape,
        array![[1.0, -2.0, 0.5], [0.25, 3.0, -1.0]] * scale,
        array![0.5, -0.5, 2.0] * scale,
    )
}

/// An Adam that has taken two steps on `model`, so it has moments and step counts.
fn trained_adam(tape: &Tape<f32>, model: &Linear<f32>) -> Adam<f32> {
    let mut adam = Adam::new(nn::params(model), 0.01);
    for _ in 0..2 {
        let x = tape.constant(array![[1.0f32, 2.0]]);
        adam.step(tape, &model.forward(x).square().sum().backward());
        tape.reset();
    }
    adam
}

/// A valid file of `format`, written by the crate.
fn valid_file(format: Format) -> Vec<u8> {
    let path = temp_path(&format!("valid-{format:?}"));
    match format {
        Format::IdxRaw | Format::IdxGz => {
            let a = IdxArray::I16(ArrayD::from_shape_fn(vec![3, 2, 4], |i| {
                (i[0] * 100 + i[1] * 10 + i[2]) as i16 - 50
            }));
            let raw = a.to_bytes().unwrap();
            return if format == Format::IdxGz { gzip(&raw) } else { raw };
        }
        Format::Weights => {
            let tape = Tape::<f32>::new();
            nn::save(&path, &tape, &model(&tape, 1.0)).unwrap();
        }
        Format::State => {
            let mut state = StateDict::<f32>::new();
            state.insert("w", Entry::Tensor(array![[1.0f32, 2.0], [3.0, 4.0]].into_dyn()));
            state.insert("empty", Entry::Tensor(ArrayD::zeros(vec![0, 3])));
            state.insert("steps", Entry::Count(12));
            state.insert("lr", Entry::Number(0.125));
            state.save(&path, &[("epoch".to_string(), "3".to_string())].into()).unwrap();
        }
        Format::Checkpoint => {
            let tape = Tape::<f32>::new();
            let m = model(&tape, 1.0);
            let adam = trained_adam(&tape, &m);
            Checkpoint::capture(&tape, &m, &adam).unwrap().note("epoch", 2).save(&path).unwrap();
        }
        Format::OptimizerState => {
            let tape = Tape::<f32>::new();
            let m = model(&tape, 1.0);
            trained_adam(&tape, &m).state_dict().save(&path, &BTreeMap::new()).unwrap();
        }
        Format::Csv => return b"x,y,z\n1,2.5,-3\n4e2,5,6\n\n7,8,9\n".to_vec(),
        Format::LabelledCsv => return b"3,2,no,yes\n0.5,1,1\n-1,2,0\n3,3,1\n".to_vec(),
        Format::CorpusPlain | Format::CorpusGz => {
            let text: String =
                (1..=30).map(|v| format!("Ps 119:{v}\tBlessed are the undefiled, verse {v}.\n")).collect();
            return if format == Format::CorpusGz { gzip(text.as_bytes()) } else { text.into_bytes() };
        }
        Format::Vocab => {
            let tokens =
                tapegrad::data::text::tokenize("in the beginning was the word and the word was with god");
            Vocab::from_min_count(&tokens, 1).unwrap().save(&path).unwrap();
        }
    }
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    bytes
}

/// The tensors of a safetensors file as the `safetensors` crate reads them (it keeps the last
/// of a repeated key, so it serves only for files the crate's loaders accept):
/// name → (type, shape, bytes).
fn independent(bytes: &[u8]) -> BTreeMap<String, (Dtype, Vec<usize>, Vec<u8>)> {
    let file = SafeTensors::deserialize(bytes).expect("a file the crate accepts is valid safetensors");
    file.tensors()
        .into_iter()
        .map(|(name, view)| (name, (view.dtype(), view.shape().to_vec(), view.data().to_vec())))
        .collect()
}

/// Checks an entry against the file's bytes for it.
fn check_entry(name: &str, entry: &Entry<f32>, file: &BTreeMap<String, (Dtype, Vec<usize>, Vec<u8>)>) {
    let (dtype, shape, data) = file.get(name).unwrap_or_else(|| panic!("{name} is not in the file"));
    match entry {
        Entry::Tensor(a) => {
            assert_eq!((*dtype, a.shape()), (Dtype::F32, shape.as_slice()), "{name}");
            let want: Vec<f32> =
                data.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
            let got: Vec<f32> = a.iter().copied().collect();
            assert_eq!(
                got.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                want.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                "{name}"
            );
        }
        Entry::Count(n) => {
            assert_eq!((*dtype, shape.len()), (Dtype::U64, 0), "{name}");
            assert_eq!(n.to_le_bytes().as_slice(), data.as_slice(), "{name}");
        }
        Entry::Number(x) => {
            assert_eq!((*dtype, shape.len()), (Dtype::F64, 0), "{name}");
            assert_eq!(x.to_le_bytes().as_slice(), data.as_slice(), "{name}");
        }
    }
}

/// Loads `path` as `format` and checks an `Ok` value against an independent reading of
/// `bytes` (the file's contents); an `Err` becomes its message. For loads into a model or an
/// optimizer, checks that a failed load changed nothing. Panics (failing the test) on a
/// wrong value.
fn load(format: Format, path: &Path, bytes: &[u8]) -> Result<(), String> {
    let limits = TextLimits::default().with_max_bytes(LIMIT);
    match format {
        Format::IdxRaw | Format::IdxGz => {
            let a = read_idx(path).map_err(|e| e.to_string())?;
            let raw = if format == Format::IdxGz { gunzip(bytes) } else { bytes.to_vec() };
            assert_eq!(a.to_bytes().unwrap(), raw, "an IDX array re-encodes to the file's bytes");
        }
        Format::Weights => {
            let tape = Tape::<f32>::new();
            let m = model(&tape, 0.0);
            let before = nn::state_dict(&tape, &m).unwrap();
            let result = nn::load(path, &tape, &m);
            let after = nn::state_dict(&tape, &m).unwrap();
            if let Err(e) = result {
                assert_eq!(after, before, "a failed load leaves the model unchanged");
                return Err(e.to_string());
            }
            let file = independent(bytes);
            assert_eq!(after.len(), file.len());
            after.iter().for_each(|(name, entry)| check_entry(name, entry, &file));
        }
        Format::State => {
            let (state, notes) = StateDict::<f32>::load(path).map_err(|e| e.to_string())?;
            let file = independent(bytes);
            assert_eq!(state.len(), file.len());
            state.iter().for_each(|(name, entry)| check_entry(name, entry, &file));
            assert!(!notes.contains_key("tapegrad.numbers"));
        }
        Format::Checkpoint => {
            let checkpoint = Checkpoint::<f32>::load(path).map_err(|e| e.to_string())?;
            let file = independent(bytes);
            assert_eq!(checkpoint.model.len() + checkpoint.optimizer.len(), file.len());
            for (name, entry) in checkpoint.model.iter() {
                check_entry(&format!("model.{name}"), entry, &file);
            }
            for (name, entry) in checkpoint.optimizer.iter() {
                check_entry(&format!("optimizer.{name}"), entry, &file);
            }
            // Restoring it: all or nothing.
            let tape = Tape::<f32>::new();
            let m = model(&tape, 0.0);
            let mut adam = Adam::new(nn::params(&m), 0.5);
            let before = (nn::state_dict(&tape, &m).unwrap(), adam.state_dict());
            if checkpoint.restore(&tape, &m, &mut adam).is_err() {
                assert_eq!((nn::state_dict(&tape, &m).unwrap(), adam.state_dict()), before);
            } else {
                assert_eq!(adam.state_dict(), checkpoint.optimizer);
            }
        }
        Format::OptimizerState => {
            let (state, _) = StateDict::<f32>::load(path).map_err(|e| e.to_string())?;
            let tape = Tape::<f32>::new();
            let m = model(&tape, 1.0);
            let mut adam = Adam::new(nn::params(&m), 0.5);
            let before = adam.state_dict();
            if let Err(e) = adam.load_state_dict(&tape, &state) {
                assert_eq!(adam.state_dict(), before, "a failed load leaves the optimizer unchanged");
                return Err(e.to_string());
            }
            assert_eq!(adam.state_dict(), state, "every entry read is used, none dropped");
            // A step after loading moves the parameters, whatever count was read.
            let w = tape.get(m.weight).to_array();
            let x = tape.constant(array![[1.0f32, 2.0]]);
            adam.step(&tape, &m.forward(x).square().sum().backward());
            assert_ne!(tape.get(m.weight).to_array(), w, "the step moved the weights");
        }
        Format::Csv => {
            let a = read_csv(path, true).map_err(|e| e.to_string())?;
            assert!(a.iter().all(|x| x.is_finite()));
        }
        Format::LabelledCsv => {
            let d = LabelledDataset::load(path).map_err(|e| e.to_string())?;
            assert_eq!(d.features.nrows(), d.labels.len());
            assert!(d.labels.iter().all(|&l| l < d.class_names.len()));
        }
        Format::CorpusPlain | Format::CorpusGz => {
            let corpus = Corpus::load_with(path, limits).map_err(|e| e.to_string())?;
            let text = if format == Format::CorpusGz { gunzip(bytes) } else { bytes.to_vec() };
            assert_eq!(corpus, Corpus::parse(std::str::from_utf8(&text).unwrap()).unwrap());
        }
        Format::Vocab => {
            let vocab = Vocab::load_with(path, limits).map_err(|e| e.to_string())?;
            assert_eq!(vocab, Vocab::parse(std::str::from_utf8(bytes).unwrap()).unwrap());
            assert!(vocab.counts().iter().sum::<usize>() <= Vocab::MAX_TOTAL_COUNT);
        }
    }
    Ok(())
}

/// How a file is damaged.
#[derive(Debug, Clone)]
enum Damage {
    /// Cut to this fraction of its length.
    Truncate(prop::sample::Index),
    /// One byte XORed with a non-zero mask.
    Flip(prop::sample::Index, u8),
    /// A size or count made huge; the number picks which and how.
    Inflate(u8),
    /// A key or line repeated.
    Repeat(prop::sample::Index),
    /// A gzip member that expands to 8 MiB appended (to gzipped files; others get 8 KiB of
    /// garbage).
    Bomb,
}

/// Replaces the header of a safetensors file by `edit(header)`, fixing the length.
fn edit_header(bytes: &[u8], edit: impl FnOnce(&str) -> String) -> Vec<u8> {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = edit(std::str::from_utf8(&bytes[8..8 + n]).unwrap());
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(header.as_bytes());
    out.extend(&bytes[8 + n..]);
    out
}

/// The byte range of the `i`-th tensor entry (`"name":{...}`) of a compact safetensors header.
fn tensor_entries(header: &str) -> Vec<std::ops::Range<usize>> {
    header
        .match_indices("\":{\"dtype\"")
        .map(|(at, _)| {
            let start = header[..at].rfind('"').unwrap();
            let end = at + header[at..].find("]}").unwrap() + 2;
            start..end
        })
        .collect()
}

/// The huge sizes and counts an inflation writes.
const HUGE: [u64; 5] = [u32::MAX as u64, 1 << 31, (1 << 31) - 1, 1 << 62, u64::MAX];

fn damage(format: Format, bytes: &[u8], how: &Damage) -> Vec<u8> {
    let mut out = bytes.to_vec();
    match how {
        Damage::Truncate(at) => out.truncate(at.index(bytes.len())),
        Damage::Flip(at, mask) => {
            let i = at.index(out.len());
            out[i] ^= mask;
        }
        Damage::Bomb => {
            if format.is_gzipped() {
                out.extend(bomb());
            } else {
                out.extend(std::iter::repeat_n(b'x', 8 << 10));
            }
        }
        Damage::Inflate(pick) => {
            let huge = HUGE[*pick as usize % HUGE.len()];
            match format {
                Format::IdxRaw | Format::IdxGz => {
                    let mut raw = if format == Format::IdxGz { gunzip(bytes) } else { out.clone() };
                    let dim = 4 + 4 * (*pick as usize % 3);
                    raw[dim..dim + 4].copy_from_slice(&(huge as u32).to_be_bytes());
                    out = if format == Format::IdxGz { gzip(&raw) } else { raw };
                }
                _ if format.is_safetensors() && pick % 2 == 0 => {
                    // A shape with a huge axis: [0, huge, 4] declares no bytes; [huge] declares many.
                    let shape = if pick % 4 == 0 { format!("[0,{huge},4]") } else { format!("[{huge}]") };
                    out = edit_header(bytes, |h| {
                        let at = h.find("\"shape\":[").unwrap() + 8;
                        let end = at + h[at..].find(']').unwrap() + 1;
                        format!("{}{shape}{}", &h[..at], &h[end..])
                    });
                }
                _ if format.is_safetensors() => {
                    // A count (a U64 scalar) set to a huge value, if the file has one.
                    let (n, metadata) = SafeTensors::read_metadata(bytes).unwrap();
                    let count = metadata.tensors().into_iter().find(|(_, info)| info.dtype == Dtype::U64);
                    if let Some((_, info)) = count {
                        let at = 8 + n + info.data_offsets.0;
                        out[at..at + 8].copy_from_slice(&huge.to_le_bytes());
                    }
                }
                Format::Csv => out = format!("x\n{}\n", "9".repeat(400)).into_bytes(),
                Format::LabelledCsv => {
                    let text = std::str::from_utf8(bytes).unwrap();
                    out = format!("{huge}{}", &text[1..]).into_bytes();
                }
                Format::CorpusPlain => {
                    out.extend(format!("long\t{}\n", "w".repeat(LIMIT as usize)).as_bytes())
                }
                Format::CorpusGz => {
                    out.extend(gzip(format!("long\t{}\n", "w".repeat(2 * LIMIT as usize)).as_bytes()))
                }
                Format::Vocab => {
                    let text = std::str::from_utf8(bytes).unwrap();
                    let line = 1 + *pick as usize % (text.lines().count() - 1);
                    let lines: Vec<String> = text
                        .lines()
                        .enumerate()
                        .map(|(i, l)| {
                            if i == line {
                                format!("{}\t{huge}", l.split('\t').next().unwrap())
                            } else {
                                l.to_string()
                            }
                        })
                        .collect();
                    out = (lines.join("\n") + "\n").into_bytes();
                }
                _ => unreachable!(),
            }
        }
        Damage::Repeat(at) => {
            if format.is_safetensors() {
                out = edit_header(bytes, |h| {
                    let entries = tensor_entries(h);
                    let e = entries[at.index(entries.len())].clone();
                    format!("{},{}{}", &h[..e.end], &h[e.clone()], &h[e.end..])
                });
            } else if format.is_text() || matches!(format, Format::Csv | Format::LabelledCsv) {
                let text = if format == Format::CorpusGz { gunzip(bytes) } else { bytes.to_vec() };
                let text = String::from_utf8(text).unwrap();
                let mut lines: Vec<&str> = text.lines().collect();
                let i = at.index(lines.len());
                lines.insert(i, lines[i]);
                let repeated = (lines.join("\n") + "\n").into_bytes();
                out = if format == Format::CorpusGz { gzip(&repeated) } else { repeated };
            } else {
                // IDX: four bytes repeated, shifting the rest.
                let mut raw = if format == Format::IdxGz { gunzip(bytes) } else { out.clone() };
                let i = at.index(raw.len() - 4);
                let four: Vec<u8> = raw[i..i + 4].to_vec();
                raw.splice(i..i, four);
                out = if format == Format::IdxGz { gzip(&raw) } else { raw };
            }
        }
    }
    out
}

/// The most heap a load of `file` may hold.
fn allowed(format: Format, file: &[u8]) -> isize {
    let limit = if format.is_text() { PER_LIMIT_BYTE * LIMIT as isize } else { 0 };
    PER_FILE_BYTE * file.len() as isize + limit + SLACK
}

fn arb_damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        any::<prop::sample::Index>().prop_map(Damage::Truncate),
        (any::<prop::sample::Index>(), 1u8..=255).prop_map(|(i, m)| Damage::Flip(i, m)),
        any::<u8>().prop_map(Damage::Inflate),
        any::<prop::sample::Index>().prop_map(Damage::Repeat),
        Just(Damage::Bomb),
    ]
}

#[test]
fn damaged_files_of_every_format_load_correctly_or_fail_within_bounded_memory() {
    let _serial = serial();
    let valid: Vec<(Format, Vec<u8>)> = FORMATS.iter().map(|&f| (f, valid_file(f))).collect();
    bomb();
    // The undamaged files load.
    for (format, bytes) in &valid {
        let path = temp_path(&format!("ok-{format:?}"));
        std::fs::write(&path, bytes).unwrap();
        load(*format, &path, bytes).unwrap_or_else(|e| panic!("{format:?}: {e}"));
    }
    let mut runner = TestRunner::new(Config { cases: 1100, failure_persistence: None, ..Config::default() });
    let strategy = (0..FORMATS.len(), arb_damage());
    // Per format: loads that ended Ok, ended Err, and the most heap one held.
    let tally = Mutex::new(vec![(0usize, 0usize, 0isize); FORMATS.len()]);
    runner
        .run(&strategy, |(f, how)| {
            let (format, bytes) = &valid[f];
            let damaged = damage(*format, bytes, &how);
            let path = temp_path(&format!("damaged-{format:?}"));
            std::fs::write(&path, &damaged).unwrap();
            let (result, held) = measured(|| {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| load(*format, &path, &damaged)))
            });
            let result = result.map_err(|_| TestCaseError::fail(format!("{format:?} {how:?}: panicked")))?;
            let bound = allowed(*format, &damaged);
            prop_assert!(
                held <= bound,
                "{:?} {:?}: held {} heap bytes for a file of {} (allowed {}): {:?}",
                format,
                how,
                held,
                damaged.len(),
                bound,
                result
            );
            if let Err(message) = &result {
                prop_assert!(message.len() < 4096, "{:?}: a message of {} bytes", format, message.len());
            }
            let mut tally = tally.lock().unwrap();
            let (ok, err, most) = &mut tally[f];
            *if result.is_ok() { ok } else { err } += 1;
            *most = (*most).max(held);
            Ok(())
        })
        .unwrap();
    for (format, (ok, err, most)) in FORMATS.iter().zip(tally.into_inner().unwrap()) {
        println!("{format:?}: {ok} read, {err} refused, at most {most} heap bytes held");
        assert!(err > 0, "{format:?}: some damage is refused");
    }
    let _ = std::fs::remove_dir_all(temp_path("x").parent().unwrap());
}

// The examples the property test generalises, each once, with the figures they were found with.

/// A safetensors file of one empty `f32` tensor `name` of `shape`, by hand.
fn one_empty_tensor(name: &str, shape: &str) -> Vec<u8> {
    let header = format!("{{\"{name}\":{{\"dtype\":\"F32\",\"shape\":{shape},\"data_offsets\":[0,0]}}}}");
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(header.as_bytes());
    out
}

#[test]
fn a_zero_byte_tensor_of_a_huge_shape_is_an_error_in_every_loader() {
    let _serial = serial();
    let path = temp_path("huge-shape.safetensors");
    std::fs::write(&path, one_empty_tensor("weight", "[0,4611686018427387904,4]")).unwrap();
    let expected = "tensor \"weight\" has shape [0, 4611686018427387904, 4]: too large for an array of F32";
    let tape = Tape::<f32>::new();
    let m = model(&tape, 1.0);
    let before = nn::state_dict(&tape, &m).unwrap();
    let errors = [
        nn::load(&path, &tape, &m).unwrap_err(),
        StateDict::<f32>::load(&path).unwrap_err(),
        Checkpoint::<f32>::load(&path).unwrap_err(),
    ];
    for err in errors {
        assert!(matches!(err, StateError::Format { .. }), "{err}");
        assert!(err.to_string().ends_with(expected), "{err}");
    }
    assert_eq!(nn::state_dict(&tape, &m).unwrap(), before);
    // A shape of no elements whose other axes fit is fine.
    std::fs::write(&path, one_empty_tensor("empty", "[0,3]")).unwrap();
    let (state, _) = StateDict::<f32>::load(&path).unwrap();
    assert_eq!(state.tensor("empty").unwrap().shape(), [0, 3]);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn a_tensor_name_twice_in_a_header_is_refused() {
    let _serial = serial();
    let tape = Tape::<f32>::new();
    let m = model(&tape, 1.0);
    let path = temp_path("repeated.safetensors");
    nn::save(&path, &tape, &m).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    // The bias listed a second time, with other offsets: the last would win.
    let repeated = edit_header(&bytes, |h| {
        let bias = tensor_entries(h).into_iter().find(|e| h[e.clone()].starts_with("\"bias\"")).unwrap();
        let second = h[bias.clone()]
            .replace("\"shape\":[3]", "\"shape\":[0]")
            .replace(&format!("{:?}", [0, 12]).replace(' ', ""), "[0,0]");
        format!("{{{second},{}", &h[1..])
    });
    std::fs::write(&path, &repeated).unwrap();
    let loaded = model(&tape, 0.0);
    let err = nn::load(&path, &tape, &loaded).unwrap_err();
    assert!(
        err.to_string().ends_with("tensor names \"bias\" each appear more than once: expected each once"),
        "{err}"
    );
    assert_eq!(tape.get(loaded.bias).to_array(), ArrayD::<f32>::zeros(vec![3]), "unchanged");
    // A note twice in the metadata, too.
    let notes = edit_header(&bytes, |h| {
        let h = h.replacen("\"__metadata__\":{},", "", 1);
        h.replacen("{", "{\"__metadata__\":{\"epoch\":\"1\",\"epoch\":\"2\"},", 1)
    });
    std::fs::write(&path, &notes).unwrap();
    let err = StateDict::<f32>::load(&path).unwrap_err();
    assert!(
        err.to_string().ends_with("metadata keys \"epoch\" each appear more than once: expected each once"),
        "{err}"
    );
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn a_header_of_many_empty_tensors_gives_a_short_error_in_bounded_memory() {
    let _serial = serial();
    // 200,000 empty tensors in an 11 MB header (the probe had a million in 57 MB).
    let n = 200_000;
    let mut header = String::from("{");
    for i in 0..n {
        header.push_str(&format!("\"t{i:07}\":{{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}},"));
    }
    header.pop();
    header.push('}');
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header.as_bytes());
    drop(header);
    let path = temp_path("many.safetensors");
    std::fs::write(&path, &bytes).unwrap();
    let tape = Tape::<f32>::new();
    let m = model(&tape, 1.0);
    let (err, held) = measured(|| nn::load(&path, &tape, &m).unwrap_err().to_string());
    println!(
        "{n} empty tensors in {} bytes: {held} heap bytes held, a message of {} bytes",
        bytes.len(),
        err.len()
    );
    assert!(
        err.ends_with(&format!("; and {} more", n + 2 - 10)),
        "{}",
        &err[err.len().saturating_sub(200)..]
    );
    assert!(err.len() < 2_000, "a message of {} bytes", err.len());
    assert!(held <= PER_FILE_BYTE * bytes.len() as isize, "held {held} for a file of {}", bytes.len());
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn a_gzip_bomb_corpus_stops_at_the_limit() {
    let _serial = serial();
    // 1 GiB of verses from about 1 MB, as the probe had.
    let mut gz = GzEncoder::new(Vec::new(), Compression::best());
    let chunk = b"Gen 1:1\tIn the beginning.\n".repeat(1 << 15);
    for _ in 0..(1usize << 30) / chunk.len() {
        gz.write_all(&chunk).unwrap();
    }
    let gz = gz.finish().unwrap();
    let path = temp_path("bomb.tsv.gz");
    std::fs::write(&path, &gz).unwrap();
    let limit = 16 << 20;
    let (result, held) = measured(|| Corpus::load_with(&path, TextLimits::default().with_max_bytes(limit)));
    let err = result.unwrap_err();
    println!("a {}-byte gzip bomb: {held} heap bytes held", gz.len());
    assert!(matches!(err.root(), DataError::LimitExceeded { limit: 16_777_216, .. }), "{err}");
    assert!(err.to_string().starts_with(&format!("{}: corpus text", path.display())), "{err}");
    assert!(held <= PER_LIMIT_BYTE * limit as isize + SLACK, "held {held}");
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn optimizer_state_keys_must_be_canonical_and_counts_in_range() {
    let _serial = serial();
    let tape = Tape::<f32>::new();
    let m = model(&tape, 1.0);
    let state = trained_adam(&tape, &m).state_dict();
    let mut adam = Adam::new(nn::params(&m), 0.5);
    let before = adam.state_dict();
    // `state.00.*` for `state.0.*`: accepted, then dropped, before.
    let mut renamed = StateDict::new();
    for (name, entry) in state.iter() {
        renamed.insert(name.replace("state.0.", "state.00.").replace("state.1.", "state.+1."), entry.clone());
    }
    let err = adam.load_state_dict(&tape, &renamed).unwrap_err().to_string();
    assert!(err.contains("\"state.00.exp_avg\" (f32 [2, 3]; the optimizer has 2 parameters"), "{err}");
    assert!(err.contains("\"state.+1.step\""), "{err}");
    assert_eq!(adam.state_dict(), before, "unchanged");
    // Counts past what a step counter holds are refused; the largest it holds still steps.
    for (count, ok) in [(0, false), (1 << 31, false), (u64::MAX, false), ((1 << 31) - 1, true)] {
        let mut counted = state.clone();
        counted.insert("state.0.step", Entry::Count(count));
        let result = adam.load_state_dict(&tape, &counted);
        assert_eq!(result.is_ok(), ok, "{count}: {result:?}");
        if let Err(e) = result {
            assert!(
                e.to_string().contains(&format!(
                    "\"state.0.step\" is a count of {count}, expected a count from 1 to 2147483647"
                )),
                "{e}"
            );
            assert_eq!(adam.state_dict(), before, "unchanged");
        }
    }
    // At 2^31 − 1 steps the next one still moves the weights (it wrapped to −2^31 before).
    let w = tape.get(m.weight).to_array();
    adam.step(&tape, &m.forward(tape.constant(array![[1.0f32, 2.0]])).square().sum().backward());
    let moved = (tape.get(m.weight).to_array() - &w).mapv(f32::abs).sum();
    assert!(moved > 1e-3, "moved {moved}");
    assert_eq!(adam.state_dict().count("state.0.step"), Some((1 << 31) - 1), "saturated");
}

#[test]
fn a_note_under_the_reserved_key_is_refused() {
    let _serial = serial();
    let tape = Tape::<f32>::new();
    let m = model(&tape, 1.0);
    let adam = trained_adam(&tape, &m);
    let path = temp_path("reserved.safetensors");
    let err = Checkpoint::capture(&tape, &m, &adam)
        .unwrap()
        .note("tapegrad.numbers", "mine")
        .save(&path)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: the note key \"tapegrad.numbers\" is reserved (the file lists its numbers under it): expected another key",
            path.display()
        )
    );
    assert!(!path.exists(), "nothing written");
}

#[test]
fn a_checkpoint_with_entries_outside_model_and_optimizer_is_refused() {
    let _serial = serial();
    let path = temp_path("stray.safetensors");
    let mut state = StateDict::<f32>::new();
    state.insert("model.weight", Entry::Tensor(array![1.0f32].into_dyn()));
    state.insert("modelweight", Entry::Tensor(array![2.0f32].into_dyn()));
    state.save(&path, &BTreeMap::new()).unwrap();
    let err = Checkpoint::<f32>::load(&path).unwrap_err();
    assert!(
        err.to_string().ends_with(
            "entries \"modelweight\" are under neither `model.` nor `optimizer.`: expected a checkpoint \
             written by Checkpoint::save"
        ),
        "{err}"
    );
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn errors_about_long_names_and_shapes_stay_short() {
    let _serial = serial();
    let path = temp_path("long.safetensors");
    let long_name = "n".repeat(1 << 20);
    let many_axes = format!("[{}]", vec!["1"; 100_000].join(","));
    for (name, shape) in [(long_name.as_str(), "[2]"), ("w", many_axes.as_str())] {
        std::fs::write(&path, one_empty_tensor(name, shape)).unwrap();
        let tape = Tape::<f32>::new();
        let err = nn::load(&path, &tape, &model(&tape, 1.0)).unwrap_err().to_string();
        assert!(err.len() < 1_000, "a message of {} bytes", err.len());
        assert!(err.contains("has data_offsets [0, 0]: expected [0, "), "{err}");
    }
    // Read, but not what the model expects: the mismatch list is short too.
    let mut state = StateDict::<f32>::new();
    state.insert(long_name.clone(), Entry::Count(1));
    state.save(&path, &BTreeMap::new()).unwrap();
    let tape = Tape::<f32>::new();
    let err = nn::load(&path, &tape, &model(&tape, 1.0)).unwrap_err().to_string();
    assert!(err.len() < 1_000, "a message of {} bytes", err.len());
    assert!(err.contains("\"nnnn"), "{err}");
    std::fs::remove_file(&path).unwrap();
}
