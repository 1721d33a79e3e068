//! Decoding IDX data from a file or from memory, gzipped or raw.
//!
//! The reader takes the header first, then exactly the payload it declares and one byte more:
//! a short, long or corrupt input is an error, never a panic, and the buffers grow only with
//! the bytes that arrive.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;
use ndarray::{ArrayD, IxDyn};

use super::{IdxArray, IdxType};
use crate::data::DataError;

/// Reads an IDX file, gzipped or raw.
///
/// The file is read as a stream: the header first, then exactly the payload
/// it declares and one byte more to detect trailing data, so neither a gzip
/// bomb nor a huge file costs more memory than the header justifies.
///
/// Errors about the contents are wrapped in [`DataError::InFile`] naming the
/// path; use [`DataError::root`] to match on the cause.
///
/// ```
/// use tapegrad::data::read_idx;
/// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist/mnist-10k-labels-idx1-ubyte.gz");
/// let labels = read_idx(path)?.into_u8()?;
/// assert_eq!(labels.shape(), &[10_000]);
/// # Ok::<(), tapegrad::data::DataError>(())
/// ```
pub fn read_idx(path: impl AsRef<Path>) -> Result<IdxArray, DataError> {
    let path = path.as_ref();
    let io_error = |error| DataError::Io { path: path.to_path_buf(), error };
    let file = File::open(path).map_err(io_error)?;
    read_stream(file, io_error).map_err(|e| e.in_file(path))
}

/// Parses IDX data held in memory, gzipped (detected by the leading bytes
/// `1F 8B`) or raw.
///
/// Never panics: truncated or oversized input, a bad magic number, absurd
/// dimensions and corrupt gzip streams are all reported as errors. A gzip
/// stream is decompressed only as far as the header declares plus one byte,
/// and memory is only allocated for payload bytes that are actually present.
///
/// ```
/// use tapegrad::data::{DataError, parse_idx};
/// // A 2x3 u8 array.
/// let bytes = [0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6];
/// let a = parse_idx(&bytes)?.into_u8()?;
/// assert_eq!(a.shape(), &[2, 3]);
/// assert_eq!(a[[1, 0]], 4);
///
/// // One payload byte missing.
/// let err = parse_idx(&bytes[..17]).unwrap_err();
/// assert!(matches!(err, DataError::Truncated { expected: 6, found: 5, .. }));
///
/// // One byte too many.
/// let err = parse_idx(&[&bytes[..], &[0]].concat()).unwrap_err();
/// assert!(matches!(err, DataError::TrailingBytes { expected: 18, .. }));
/// # Ok::<(), DataError>(())
/// ```
pub fn parse_idx(bytes: &[u8]) -> Result<IdxArray, DataError> {
    // A slice never fails to read, so every I/O error comes from the gzip decoder.
    read_stream(bytes, DataError::Gzip)
}

/// The first two bytes of every gzip stream.
pub(in crate::data) const GZIP_MAGIC: [u8; 2] = [0x1F, 0x8B];

/// Reads IDX data from `input`, decompressing it if it starts with the gzip
/// magic bytes. `read_error` reports a failure of `input` itself, which must
/// not be mistaken for corrupt gzip data.
fn read_stream(
    input: impl Read,
    read_error: impl FnOnce(io::Error) -> DataError,
) -> Result<IdxArray, DataError> {
    let mut input = Source { inner: input, error: None };
    let result = read_up_to(&mut input, GZIP_MAGIC.len()).map_err(DataError::Gzip).and_then(|prefix| {
        let input = prefix.as_slice().chain(&mut input);
        if prefix == GZIP_MAGIC {
            read_contents(MultiGzDecoder::new(input), "decompressed ")
        } else {
            read_contents(input, "")
        }
    });
    match input.error.take() {
        Some(error) => Err(read_error(error)),
        None => result,
    }
}

/// A reader that keeps the first error of the reader it wraps, so that a
/// failing file can be told apart from corrupt data decoded from it.
pub(in crate::data) struct Source<R> {
    pub(in crate::data) inner: R,
    pub(in crate::data) error: Option<io::Error>,
}

impl<R: Read> Read for Source<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|error| {
            let kind = error.kind();
            if kind != io::ErrorKind::Interrupted {
                self.error.get_or_insert(error);
            }
            io::Error::from(kind)
        })
    }
}

/// Parses uncompressed IDX data from a stream, reading the header, then the
/// payload it declares and then one more byte to detect trailing data.
/// `stream` describes the data in messages (`"decompressed "` or empty); I/O
/// errors are reported as corrupt gzip data, the only kind `read_stream` keeps.
fn read_contents(mut input: impl Read, stream: &str) -> Result<IdxArray, DataError> {
    let magic = read_up_to(&mut input, 4).map_err(DataError::Gzip)?;
    let Ok(magic) = <[u8; 4]>::try_from(magic.as_slice()) else {
        return Err(DataError::Truncated {
            what: format!("{stream}IDX header"),
            expected: 4,
            found: magic.len(),
        });
    };
    if magic[..2] != [0, 0] {
        return Err(DataError::BadMagic { found: magic });
    }
    let dtype = IdxType::from_code(magic[2]).ok_or(DataError::UnknownType { found: magic[2] })?;
    let ndim = usize::from(magic[3]);
    let header_len = 4 + 4 * ndim;
    let dim_bytes = read_up_to(&mut input, 4 * ndim).map_err(DataError::Gzip)?;
    if dim_bytes.len() < 4 * ndim {
        return Err(DataError::Truncated {
            what: format!("{stream}IDX header with {ndim} dimensions"),
            expected: header_len,
            found: 4 + dim_bytes.len(),
        });
    }
    let dims: Vec<usize> =
        dim_bytes.as_chunks::<4>().0.iter().map(|d| u32::from_be_bytes(*d) as usize).collect();
    let payload_len = dims
        .iter()
        .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= isize::MAX as usize)
        .ok_or_else(|| DataError::DimsOverflow { dims: dims.clone() })?;
    let what = || format!("{stream}IDX payload of {dims:?} {} elements", dtype.name());
    let payload = read_up_to(&mut input, payload_len).map_err(DataError::Gzip)?;
    if payload.len() < payload_len {
        return Err(DataError::Truncated { what: what(), expected: payload_len, found: payload.len() });
    }
    if !read_up_to(&mut input, 1).map_err(DataError::Gzip)?.is_empty() {
        return Err(DataError::TrailingBytes { what: what(), expected: header_len + payload_len });
    }
    let shape = IxDyn(&dims);
    let bytes = payload.as_slice();
    let array = match dtype {
        IdxType::U8 => ArrayD::from_shape_vec(shape, payload).map(IdxArray::U8),
        IdxType::I8 => ArrayD::from_shape_vec(shape, decode(bytes, i8::from_be_bytes)).map(IdxArray::I8),
        IdxType::I16 => ArrayD::from_shape_vec(shape, decode(bytes, i16::from_be_bytes)).map(IdxArray::I16),
        IdxType::I32 => ArrayD::from_shape_vec(shape, decode(bytes, i32::from_be_bytes)).map(IdxArray::I32),
        IdxType::F32 => ArrayD::from_shape_vec(shape, decode(bytes, f32::from_be_bytes)).map(IdxArray::F32),
        IdxType::F64 => ArrayD::from_shape_vec(shape, decode(bytes, f64::from_be_bytes)).map(IdxArray::F64),
    };
    array.map_err(|_| DataError::DimsOverflow { dims })
}

/// The smallest step by which [`read_up_to`] grows its buffer.
const MIN_READ_STEP: usize = 64 * 1024;

/// Reads `len` bytes, or fewer if the input ends first. The buffer grows with
/// the data that arrives (at most doubling), never to `len` up front, so a
/// header that declares more than the input holds costs only what is there;
/// a complete read ends with exactly `len` bytes of capacity.
fn read_up_to(input: &mut impl Read, len: usize) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    while bytes.len() < len {
        let step = (len - bytes.len()).min(bytes.len().max(MIN_READ_STEP));
        bytes.reserve_exact(step);
        if input.by_ref().take(step as u64).read_to_end(&mut bytes)? < step {
            break;
        }
    }
    Ok(bytes)
}

/// Decodes big-endian elements of `N` bytes each.
fn decode<const N: usize, T>(payload: &[u8], from_be: fn([u8; N]) -> T) -> Vec<T> {
    payload.as_chunks::<N>().0.iter().map(|c| from_be(*c)).collect()
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;
    use ndarray::{Array, array};
    use proptest::prelude::*;

    use super::*;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    /// A 2x2 u8 array: header (12 bytes) + payload (4 bytes).
    const SMALL: [u8; 16] = [0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 2, 10, 20, 30, 40];

    #[test]
    fn parses_raw_and_gzipped_identically() {
        let raw = parse_idx(&SMALL).unwrap();
        assert_eq!(raw, IdxArray::U8(array![[10u8, 20], [30, 40]].into_dyn()));
        assert_eq!(parse_idx(&gzip(&SMALL)).unwrap(), raw);
    }

    #[test]
    fn decodes_every_element_type_big_endian() {
        let cases = [
            IdxArray::I8(array![-128i8, -1, 0, 127].into_dyn()),
            IdxArray::I16(array![[i16::MIN, -2], [258, i16::MAX]].into_dyn()),
            IdxArray::I32(array![-70_000i32, 1 << 24].into_dyn()),
            IdxArray::F32(array![[0.25f32], [-1e30]].into_dyn()),
            IdxArray::F64(array![std::f64::consts::PI, -0.0].into_dyn()),
        ];
        for a in cases {
            assert_eq!(parse_idx(&a.to_bytes().unwrap()).unwrap(), a);
        }
        // Byte order really is big-endian.
        let a = parse_idx(&[0, 0, 0x0C, 1, 0, 0, 0, 1, 0x01, 0x02, 0x03, 0x04]).unwrap();
        assert_eq!(a.into_array::<i32>().unwrap()[[0]], 0x0102_0304);
    }

    #[test]
    fn zero_dimensional_and_empty_arrays() {
        let scalar = parse_idx(&[0, 0, 8, 0, 42]).unwrap().into_u8().unwrap();
        assert_eq!(scalar.ndim(), 0);
        assert_eq!(scalar.sum(), 42);
        let empty = parse_idx(&[0, 0, 8, 2, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]).unwrap();
        assert_eq!(empty.shape(), &[0, u32::MAX as usize]);
    }

    #[test]
    fn bad_magic_reports_found_bytes() {
        let err = parse_idx(&[0, 1, 8, 1, 0, 0, 0, 0]).unwrap_err();
        assert!(matches!(err, DataError::BadMagic { found: [0, 1, 8, 1] }));
        assert!(err.to_string().contains("00 01 08 01"), "{err}");
        let err = parse_idx(&[0, 0, 0x0A, 1, 0, 0, 0, 0]).unwrap_err();
        assert!(matches!(err, DataError::UnknownType { found: 0x0A }));
        assert!(err.to_string().contains("0x0A"), "{err}");
    }

    #[test]
    fn truncated_header_and_payload() {
        for n in 0..4 {
            let err = parse_idx(&SMALL[..n]).unwrap_err();
            assert!(matches!(err, DataError::Truncated { expected: 4, found, .. } if found == n), "{err}");
        }
        for n in 4..12 {
            let err = parse_idx(&SMALL[..n]).unwrap_err();
            assert!(matches!(err, DataError::Truncated { expected: 12, found, .. } if found == n), "{err}");
        }
        let err = parse_idx(&SMALL[..14]).unwrap_err();
        assert_eq!(err.to_string(), "truncated IDX payload of [2, 2] u8 elements: expected 4 bytes, found 2");
    }

    #[test]
    fn trailing_bytes_are_a_size_mismatch() {
        let mut bytes = SMALL.to_vec();
        bytes.extend([1, 2, 3]);
        let err = parse_idx(&bytes).unwrap_err();
        assert_eq!(
            err.to_string(),
            "trailing data after IDX payload of [2, 2] u8 elements: expected 16 bytes in total, found more"
        );
        let err = parse_idx(&gzip(&bytes)).unwrap_err();
        assert!(matches!(err, DataError::TrailingBytes { expected: 16, .. }), "{err}");
        assert!(err.to_string().starts_with("trailing data after decompressed IDX payload"), "{err}");
    }

    #[test]
    fn header_declaring_more_than_the_input_holds_is_truncated() {
        // 60000 x 28 x 28 u8 images declared, ten payload bytes present.
        let mut bytes = vec![0, 0, 8, 3, 0, 0, 0xEA, 0x60, 0, 0, 0, 28, 0, 0, 0, 28];
        bytes.extend([7; 10]);
        let err = parse_idx(&bytes).unwrap_err();
        assert_eq!(
            err.to_string(),
            "truncated IDX payload of [60000, 28, 28] u8 elements: expected 47040000 bytes, found 10"
        );
        let err = parse_idx(&gzip(&bytes)).unwrap_err();
        assert!(matches!(err, DataError::Truncated { expected: 47_040_000, found: 10, .. }), "{err}");
        assert!(err.to_string().starts_with("truncated decompressed IDX payload"), "{err}");
    }

    #[test]
    fn reading_grows_with_the_data_not_the_declared_length() {
        let data: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        // A short input: only what is there is allocated.
        let short = read_up_to(&mut &data[..10], 47_040_000).unwrap();
        assert_eq!(short, &data[..10]);
        assert!(short.capacity() <= MIN_READ_STEP, "capacity {}", short.capacity());
        // A complete read stops at the length asked for, with no spare capacity.
        let mut input = &data[..];
        let head = read_up_to(&mut input, 150_000).unwrap();
        assert_eq!((head.len(), head.capacity()), (150_000, 150_000));
        assert_eq!(head[149_999], (149_999u32 as u8));
        assert_eq!(input.len(), 50_000);
    }

    /// Yields `data`, then fails the way a disk might.
    struct FailingAfter<'a>(&'a [u8]);

    impl Read for FailingAfter<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.0.read(buf)? {
                0 => Err(io::Error::other("device unplugged")),
                n => Ok(n),
            }
        }
    }

    #[test]
    fn a_failing_input_is_not_reported_as_corrupt_data() {
        let io_error = |e: io::Error| DataError::InvalidArgument(format!("read failed: {e}"));
        let gz = gzip(&SMALL);
        for (what, bytes) in [("raw", &SMALL[..10]), ("gzipped", &gz[..gz.len() / 2])] {
            let err = read_stream(FailingAfter(bytes), io_error).unwrap_err();
            assert_eq!(err.to_string(), "invalid argument: read failed: device unplugged", "{what}");
        }
        // Opening succeeds on a directory on Unix, reading does not.
        let dir = std::env::temp_dir();
        let err = read_idx(&dir).unwrap_err();
        assert!(matches!(&err, DataError::Io { path, .. } if *path == dir), "{err}");
    }

    #[test]
    fn absurd_dims_do_not_allocate_or_panic() {
        // 4 dims of u32::MAX f64s: the byte count overflows usize.
        let mut bytes = vec![0, 0, 0x0E, 4];
        bytes.extend([0xFF; 16]);
        assert!(matches!(parse_idx(&bytes).unwrap_err(), DataError::DimsOverflow { .. }));
        // (2^32 - 1)^2 u8 elements exceed isize::MAX bytes.
        let err = parse_idx(&[0, 0, 8, 2, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1]).unwrap_err();
        assert!(matches!(err, DataError::DimsOverflow { ref dims } if dims.len() == 2), "{err}");
        // No elements at all, but ndarray still refuses the other axes'
        // (2^32 - 1)^2 elements per index of the first.
        let mut bytes = vec![0, 0, 8, 3, 0, 0, 0, 0];
        bytes.extend([0xFF; 8]);
        let err = parse_idx(&bytes).unwrap_err();
        assert!(
            matches!(err, DataError::DimsOverflow { ref dims } if dims[..2] == [0, u32::MAX as usize]),
            "{err}"
        );
        // 2^32 - 1 i32 elements fit in usize but the payload is absent.
        let err = parse_idx(&[0, 0, 0x0C, 1, 0xFF, 0xFF, 0xFF, 0xFF, 1]).unwrap_err();
        assert!(
            matches!(err, DataError::Truncated { expected, found: 1, .. } if expected == 4 * u32::MAX as usize)
        );
    }

    #[test]
    fn corrupt_gzip_is_reported() {
        let gz = gzip(&SMALL);
        let n = gz.len();
        // The CRC is checked once the payload has been read.
        let mut bad_crc = gz.clone();
        bad_crc[n - 6] ^= 0xFF;
        let err = parse_idx(&bad_crc).unwrap_err();
        assert!(matches!(err, DataError::Gzip(ref e) if e.kind() == io::ErrorKind::InvalidInput), "{err}");
        assert!(err.to_string().starts_with("corrupt gzip stream"), "{err}");
        let err = parse_idx(&gz[..n - 3]).unwrap_err();
        assert!(err.to_string().starts_with("corrupt gzip stream"), "{err}");
        // Damaged compressed data may decode to a wrong header before the CRC
        // is reached; the first problem found is the one reported.
        let mut bad_data = bad_crc;
        bad_data[n / 2] ^= 0xFF;
        let err = parse_idx(&bad_data).unwrap_err();
        assert!(matches!(err, DataError::Gzip(_)) || err.to_string().contains("decompressed IDX"), "{err}");
    }

    #[test]
    fn file_errors_name_the_path() {
        let dir = std::env::temp_dir().join(format!("tapegrad-idx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("short.idx");
        std::fs::write(&path, &SMALL[..13]).unwrap();
        let err = read_idx(&path).unwrap_err();
        assert!(err.to_string().starts_with(&path.display().to_string()), "{err}");
        assert!(matches!(err.root(), DataError::Truncated { expected: 4, found: 1, .. }));
        let missing = dir.join("missing.idx");
        let err = read_idx(&missing).unwrap_err();
        assert!(matches!(&err, DataError::Io { path, .. } if *path == missing));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn mnist_sample_headers() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist/");
        let images = read_idx(format!("{dir}mnist-10k-images-idx3-ubyte.gz")).unwrap();
        assert_eq!(images.dtype(), IdxType::U8);
        assert_eq!(images.shape(), &[10_000, 28, 28]);
        let labels = read_idx(format!("{dir}mnist-10k-labels-idx1-ubyte.gz")).unwrap().into_u8().unwrap();
        assert_eq!(labels.len(), 10_000);
        assert_eq!(labels.iter().map(|&l| l as usize).sum::<usize>(), {
            let counts = [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978];
            counts.iter().enumerate().map(|(d, c)| d * c).sum::<usize>()
        });
    }

    fn arb_idx() -> impl Strategy<Value = IdxArray> {
        let shape = prop::collection::vec(0usize..4, 0..4);
        shape.prop_flat_map(|shape| {
            let n: usize = shape.iter().product();
            let s = shape.clone();
            prop_oneof![
                prop::collection::vec(any::<u8>(), n)
                    .prop_map(move |v| IdxArray::U8(Array::from_shape_vec(s.clone(), v).unwrap())),
                prop::collection::vec(any::<i16>(), n)
                    .prop_map(move |v| IdxArray::I16(Array::from_shape_vec(shape.clone(), v).unwrap())),
            ]
        })
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(a) = parse_idx(&bytes) {
                // A successful parse re-encodes to exactly the input.
                prop_assert_eq!(a.to_bytes().unwrap(), bytes);
            }
        }

        #[test]
        fn plausible_headers_never_panic(code in prop::sample::select(vec![8u8, 9, 0x0B, 0x0C, 0x0D, 0x0E]),
                                         dims in prop::collection::vec(0u32..6, 0..4),
                                         payload in prop::collection::vec(any::<u8>(), 0..200)) {
            let mut bytes = vec![0, 0, code, dims.len() as u8];
            dims.iter().for_each(|d| bytes.extend(d.to_be_bytes()));
            bytes.extend(&payload);
            let want = dims.iter().map(|&d| d as usize).product::<usize>() * IdxType::from_code(code).unwrap().size();
            match parse_idx(&bytes) {
                Ok(a) => {
                    prop_assert_eq!(payload.len(), want);
                    let shape: Vec<usize> = dims.iter().map(|&d| d as usize).collect();
                    prop_assert_eq!(a.shape(), shape.as_slice());
                }
                Err(DataError::Truncated { expected, found, .. }) => {
                    prop_assert!(payload.len() < want);
                    prop_assert_eq!((expected, found), (want, payload.len()));
                }
                Err(DataError::TrailingBytes { expected, .. }) => {
                    prop_assert!(payload.len() > want);
                    prop_assert_eq!(expected, 4 + 4 * dims.len() + want);
                }
                Err(e) => prop_assert!(false, "unexpected error {}", e),
            }
        }

        #[test]
        fn valid_arrays_round_trip_and_detect_damage(a in arb_idx(), cut in 1usize..8, extra in 1usize..8) {
            let bytes = a.to_bytes().unwrap();
            prop_assert_eq!(&parse_idx(&bytes).unwrap(), &a);
            prop_assert_eq!(&parse_idx(&gzip(&bytes)).unwrap(), &a);
            let short = &bytes[..bytes.len().saturating_sub(cut)];
            let truncated = matches!(parse_idx(short), Err(DataError::Truncated { .. }));
            prop_assert!(truncated);
            let mut long = bytes.clone();
            long.extend(std::iter::repeat_n(0, extra));
            let trailing = matches!(parse_idx(&long), Err(DataError::TrailingBytes { .. }));
            prop_assert!(trailing);
        }

        #[test]
        fn gzipped_garbage_never_panics(tail in prop::collection::vec(any::<u8>(), 0..64),
                                        a in arb_idx(), flip in any::<prop::sample::Index>()) {
            let mut garbage = vec![0x1F, 0x8B];
            garbage.extend(&tail);
            let _ = parse_idx(&garbage);
            // A corrupted real gzip stream: either an error or a consistent array.
            let mut gz = gzip(&a.to_bytes().unwrap());
            let i = flip.index(gz.len());
            gz[i] ^= 0x5A;
            if let Ok(b) = parse_idx(&gz) {
                let n: usize = b.shape().iter().product();
                prop_assert_eq!(b.to_bytes().unwrap().len(), 4 + 4 * b.shape().len() + n * b.dtype().size());
            }
        }
    }
}
