//! Reading and writing the IDX binary format used by MNIST.
//!
//! An IDX file is a 4-byte magic number — two zero bytes, an element type code
//! and the number of dimensions — followed by one big-endian `u32` per
//! dimension and then the elements, big-endian, in row-major order. Files may
//! be gzipped; compression is detected from the gzip magic bytes `1F 8B`, not
//! from the file name.
//!
//! This module holds the element types and arrays ([`IdxType`], [`IdxArray`], which also
//! encodes itself with [`IdxArray::to_bytes`]); [`read_idx`] and [`parse_idx`] decode them,
//! allocating only for the bytes the input actually holds.

mod read;

use std::fmt;

use ndarray::ArrayD;

pub(super) use self::read::{GZIP_MAGIC, Source};
pub use self::read::{parse_idx, read_idx};
use crate::data::DataError;

/// The element types an IDX file can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdxType {
    /// Unsigned byte, type code `0x08`.
    U8,
    /// Signed byte, type code `0x09`.
    I8,
    /// Big-endian `i16`, type code `0x0B`.
    I16,
    /// Big-endian `i32`, type code `0x0C`.
    I32,
    /// Big-endian `f32`, type code `0x0D`.
    F32,
    /// Big-endian `f64`, type code `0x0E`.
    F64,
}

impl IdxType {
    /// The type code stored in the third byte of the magic number.
    ///
    /// ```
    /// use tapegrad::data::IdxType;
    /// assert_eq!(IdxType::U8.code(), 0x08);
    /// assert_eq!(IdxType::F64.code(), 0x0E);
    /// ```
    pub fn code(self) -> u8 {
        match self {
            IdxType::U8 => 0x08,
            IdxType::I8 => 0x09,
            IdxType::I16 => 0x0B,
            IdxType::I32 => 0x0C,
            IdxType::F32 => 0x0D,
            IdxType::F64 => 0x0E,
        }
    }

    /// The type for a type code, or `None` if the code is unknown.
    ///
    /// ```
    /// use tapegrad::data::IdxType;
    /// assert_eq!(IdxType::from_code(0x0C), Some(IdxType::I32));
    /// assert_eq!(IdxType::from_code(0x0A), None);
    /// ```
    pub fn from_code(code: u8) -> Option<IdxType> {
        [IdxType::U8, IdxType::I8, IdxType::I16, IdxType::I32, IdxType::F32, IdxType::F64]
            .into_iter()
            .find(|t| t.code() == code)
    }

    /// The Rust name of the element type, e.g. `"u8"`.
    ///
    /// ```
    /// use tapegrad::data::IdxType;
    /// assert_eq!(IdxType::F32.name(), "f32");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            IdxType::U8 => "u8",
            IdxType::I8 => "i8",
            IdxType::I16 => "i16",
            IdxType::I32 => "i32",
            IdxType::F32 => "f32",
            IdxType::F64 => "f64",
        }
    }

    /// Size of one element in bytes.
    ///
    /// ```
    /// use tapegrad::data::IdxType;
    /// assert_eq!(IdxType::I16.size(), 2);
    /// ```
    pub fn size(self) -> usize {
        match self {
            IdxType::U8 | IdxType::I8 => 1,
            IdxType::I16 => 2,
            IdxType::I32 | IdxType::F32 => 4,
            IdxType::F64 => 8,
        }
    }
}

impl fmt::Display for IdxType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (code 0x{:02X})", self.name(), self.code())
    }
}

/// The contents of an IDX file: an n-dimensional array of one element type.
#[derive(Debug, Clone, PartialEq)]
pub enum IdxArray {
    /// Unsigned bytes (MNIST images and labels).
    U8(ArrayD<u8>),
    /// Signed bytes.
    I8(ArrayD<i8>),
    /// 16-bit integers.
    I16(ArrayD<i16>),
    /// 32-bit integers.
    I32(ArrayD<i32>),
    /// 32-bit floats.
    F32(ArrayD<f32>),
    /// 64-bit floats.
    F64(ArrayD<f64>),
}

impl IdxArray {
    /// The element type.
    ///
    /// ```
    /// use ndarray::ArrayD;
    /// use tapegrad::data::{IdxArray, IdxType};
    /// let a = IdxArray::I16(ArrayD::zeros(vec![2, 3]));
    /// assert_eq!(a.dtype(), IdxType::I16);
    /// ```
    pub fn dtype(&self) -> IdxType {
        match self {
            IdxArray::U8(_) => IdxType::U8,
            IdxArray::I8(_) => IdxType::I8,
            IdxArray::I16(_) => IdxType::I16,
            IdxArray::I32(_) => IdxType::I32,
            IdxArray::F32(_) => IdxType::F32,
            IdxArray::F64(_) => IdxType::F64,
        }
    }

    /// The dimensions.
    ///
    /// ```
    /// use ndarray::ArrayD;
    /// use tapegrad::data::IdxArray;
    /// let a = IdxArray::U8(ArrayD::zeros(vec![4, 28, 28]));
    /// assert_eq!(a.shape(), &[4, 28, 28]);
    /// ```
    pub fn shape(&self) -> &[usize] {
        match self {
            IdxArray::U8(a) => a.shape(),
            IdxArray::I8(a) => a.shape(),
            IdxArray::I16(a) => a.shape(),
            IdxArray::I32(a) => a.shape(),
            IdxArray::F32(a) => a.shape(),
            IdxArray::F64(a) => a.shape(),
        }
    }

    /// The array as `u8`, or [`DataError::WrongType`] if it holds another type.
    ///
    /// ```
    /// use tapegrad::data::parse_idx;
    /// let bytes = [0, 0, 0x08, 1, 0, 0, 0, 2, 7, 9];
    /// let a = parse_idx(&bytes)?.into_u8()?;
    /// assert_eq!(a.as_slice(), Some(&[7u8, 9][..]));
    /// # Ok::<(), tapegrad::data::DataError>(())
    /// ```
    pub fn into_u8(self) -> Result<ArrayD<u8>, DataError> {
        self.into_array()
    }

    /// The array with element type `T`, or [`DataError::WrongType`] if it
    /// holds another type.
    ///
    /// ```
    /// use tapegrad::data::{DataError, parse_idx};
    /// let bytes = [0, 0, 0x0B, 1, 0, 0, 0, 1, 0xFF, 0xFE];
    /// let a = parse_idx(&bytes)?;
    /// assert!(matches!(a.clone().into_u8(), Err(DataError::WrongType { .. })));
    /// assert_eq!(a.into_array::<i16>()?[[0]], -2);
    /// # Ok::<(), DataError>(())
    /// ```
    pub fn into_array<T: IdxElement>(self) -> Result<ArrayD<T>, DataError> {
        let found = self.dtype();
        T::extract(self).ok_or(DataError::WrongType { expected: T::TYPE, found })
    }

    /// Encodes the array as raw (uncompressed) IDX bytes.
    ///
    /// Fails only if the array has more than 255 dimensions or a dimension
    /// larger than `u32::MAX`, which IDX cannot represent.
    ///
    /// ```
    /// use ndarray::array;
    /// use tapegrad::data::{IdxArray, parse_idx};
    /// let a = IdxArray::F32(array![[1.5f32, -2.0]].into_dyn());
    /// let bytes = a.to_bytes()?;
    /// assert_eq!(&bytes[..4], &[0, 0, 0x0D, 2]);
    /// assert_eq!(parse_idx(&bytes)?, a);
    /// # Ok::<(), tapegrad::data::DataError>(())
    /// ```
    pub fn to_bytes(&self) -> Result<Vec<u8>, DataError> {
        let shape = self.shape();
        let ndim = u8::try_from(shape.len()).map_err(|_| {
            DataError::InvalidArgument(format!(
                "IDX supports at most 255 dimensions, array has {}",
                shape.len()
            ))
        })?;
        let mut out = vec![0, 0, self.dtype().code(), ndim];
        for &d in shape {
            let d = u32::try_from(d)
                .map_err(|_| DataError::InvalidArgument(format!("IDX dimension {d} exceeds u32::MAX")))?;
            out.extend_from_slice(&d.to_be_bytes());
        }
        match self {
            IdxArray::U8(a) => out.extend(a.iter()),
            IdxArray::I8(a) => out.extend(a.iter().map(|v| v.to_be_bytes()[0])),
            IdxArray::I16(a) => a.iter().for_each(|v| out.extend_from_slice(&v.to_be_bytes())),
            IdxArray::I32(a) => a.iter().for_each(|v| out.extend_from_slice(&v.to_be_bytes())),
            IdxArray::F32(a) => a.iter().for_each(|v| out.extend_from_slice(&v.to_be_bytes())),
            IdxArray::F64(a) => a.iter().for_each(|v| out.extend_from_slice(&v.to_be_bytes())),
        }
        Ok(out)
    }
}

mod sealed {
    pub trait Sealed {}
}

/// Element types that can be stored in an IDX file: `u8`, `i8`, `i16`, `i32`,
/// `f32` and `f64`. Used by [`IdxArray::into_array`].
pub trait IdxElement: sealed::Sealed + Sized {
    /// The IDX type of this element.
    const TYPE: IdxType;
    /// The typed array if `array` holds this element type.
    fn extract(array: IdxArray) -> Option<ArrayD<Self>>;
}

macro_rules! idx_element {
    ($($t:ty => $variant:ident),*) => {$(
        impl sealed::Sealed for $t {}
        impl IdxElement for $t {
            const TYPE: IdxType = IdxType::$variant;
            fn extract(array: IdxArray) -> Option<ArrayD<Self>> {
                match array {
                    IdxArray::$variant(a) => Some(a),
                    _ => None,
                }
            }
        }
    )*};
}
idx_element!(u8 => U8, i8 => I8, i16 => I16, i32 => I32, f32 => F32, f64 => F64);
