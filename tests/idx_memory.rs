//! Reading IDX data costs memory in proportion to what the header declares and the input really
//! holds: a gzip stream that expands far past its header, a raw file with a gigabyte of trailing
//! zeros and a header that claims more than the input has are all rejected after a few kilobytes.

use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

use flate2::Compression;
use flate2::write::GzEncoder;
use tapegrad::data::{DataError, parse_idx, read_idx};

mod common;

/// Header of a 2x2 `u8` array followed by its four bytes.
const SMALL: [u8; 16] = [0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 2, 10, 20, 30, 40];
const GIB: usize = 1 << 30;
/// How many heap bytes rejecting a bad input may hold at once: the gzip decoder's buffer and
/// state, with room to spare, but far below any payload a lying header declares.
const ALLOWED_PEAK: isize = 1 << 20;

#[global_allocator]
static ALLOCATOR: common::Counting = common::Counting;

/// Runs `read` on this thread, prints how long it took and the most heap it held on top of what
/// was held before, and checks that figure against [`ALLOWED_PEAK`].
fn assert_small<T>(what: &str, read: impl FnOnce() -> T) -> T {
    let before = common::mark_peak();
    let start = Instant::now();
    let result = read();
    let elapsed = start.elapsed();
    let extra = common::peak() - before;
    println!("{what}: {elapsed:?}, at most {extra} heap bytes held");
    assert!(extra < ALLOWED_PEAK, "{what}: held up to {extra} heap bytes");
    result
}

/// `SMALL` followed by 1 GiB of zeros, gzipped (about 1 MB): built once, in 1 MiB chunks.
fn gzip_bomb() -> &'static [u8] {
    static BOMB: OnceLock<Vec<u8>> = OnceLock::new();
    BOMB.get_or_init(|| {
        let mut gz = GzEncoder::new(Vec::new(), Compression::best());
        gz.write_all(&SMALL).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..GIB / zeros.len() {
            gz.write_all(&zeros).unwrap();
        }
        gz.finish().unwrap()
    })
}

/// A fresh path in the temporary directory.
fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("tapegrad-idx-memory-{name}-{}", std::process::id()))
}

/// Checks for the error that the 16 bytes of `SMALL` are followed by more; `stream` is
/// `"decompressed "` for gzipped input.
fn assert_trailing_after_small(err: &DataError, stream: &str) {
    assert!(matches!(err.root(), DataError::TrailingBytes { expected: 16, .. }), "{err}");
    assert_eq!(
        err.root().to_string(),
        format!(
            "trailing data after {stream}IDX payload of [2, 2] u8 elements: expected 16 bytes in total, found more"
        )
    );
}

#[test]
fn gzip_bomb_in_memory_is_rejected_as_trailing_data() {
    let bomb = gzip_bomb();
    assert!(bomb.len() < 2 << 20, "the bomb is {} bytes compressed", bomb.len());
    let err = assert_small("1 GiB gzip bomb from memory", || parse_idx(bomb)).unwrap_err();
    assert_trailing_after_small(&err, "decompressed ");
}

#[test]
fn gzip_bomb_file_is_rejected_as_trailing_data_naming_the_file() {
    let path = temp_path("bomb.gz");
    std::fs::write(&path, gzip_bomb()).unwrap();
    let err = assert_small("1 GiB gzip bomb from a file", || read_idx(&path)).unwrap_err();
    assert!(err.to_string().starts_with(&path.display().to_string()), "{err}");
    assert_trailing_after_small(&err, "decompressed ");
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn raw_file_with_a_gigabyte_of_trailing_zeros_is_not_read_whole() {
    let path = temp_path("long.idx");
    let file = std::fs::File::create(&path).unwrap();
    (&file).write_all(&SMALL).unwrap();
    // A sparse file: 1 GiB long, but no disk space or time spent writing the zeros.
    file.set_len(GIB as u64).unwrap();
    drop(file);
    let err = assert_small("raw file 1 GiB long", || read_idx(&path)).unwrap_err();
    assert_trailing_after_small(&err, "");
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn header_declaring_full_mnist_over_ten_bytes_is_truncated() {
    // 60000 x 28 x 28 u8 images declared; ten payload bytes present.
    let mut raw = vec![0, 0, 8, 3];
    for d in [60_000u32, 28, 28] {
        raw.extend(d.to_be_bytes());
    }
    raw.extend([7; 10]);
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(&raw).unwrap();
    let gz = gz.finish().unwrap();
    for (what, bytes) in [("raw", raw.as_slice()), ("gzipped", gz.as_slice())] {
        let err = assert_small(&format!("{what} header declaring 47 MB over 10 bytes"), || parse_idx(bytes))
            .unwrap_err();
        assert!(matches!(err, DataError::Truncated { expected: 47_040_000, found: 10, .. }), "{what}: {err}");
        assert!(err.to_string().contains("IDX payload of [60000, 28, 28] u8 elements"), "{what}: {err}");
    }
}
