//! Numeric CSV files and labelled classification data such as iris.
//!
//! Records are split by the `csv` crate: fields are separated by commas and may be quoted, so
//! `"5,1"` is one field holding a comma and `"say ""amen"""` one holding quotes; a quoted field
//! may even run over several lines. A quote opens a quoted field only as its first character:
//! in `1, "2"` the second field is ` "2"`, quotes and all. Fields are trimmed of surrounding
//! whitespace, blank lines
//! are skipped, lines may end in `\n`, `\r\n` or `\r`, and a leading byte-order mark is ignored.
//!
//! Errors name the line a record starts on and the field's 1-based column; a file's errors are
//! wrapped with its path. Memory grows with the input and the numbers read from it, never
//! with a count a header claims.

use std::path::Path;

use csv::{ByteRecord, ReaderBuilder};
use ndarray::{Array1, Array2, Axis};

use super::loader::train_test_split;
use super::{DataError, shorten};

/// Reads a numeric CSV file into a `rows x columns` array.
///
/// With `has_header`, the first non-blank record is skipped but fixes the
/// number of columns. Every value must be a finite number and every row must
/// have the same number of fields; errors give the file, line and column.
///
/// ```
/// use tapegrad::data::read_csv;
/// let path = concat!(env!("CARGO_MANIFEST_DIR"), "/data/iris.csv");
/// let table = read_csv(path, true)?;
/// assert_eq!(table.dim(), (150, 5));
/// assert_eq!(table[[0, 0]], 5.1);
/// # Ok::<(), tapegrad::data::DataError>(())
/// ```
pub fn read_csv(path: impl AsRef<Path>, has_header: bool) -> Result<Array2<f64>, DataError> {
    let path = path.as_ref();
    parse_table(&read_bytes(path)?, has_header).map_err(|e| e.in_file(path))
}

/// Parses numeric CSV text; see [`read_csv`].
///
/// ```
/// use tapegrad::data::{DataError, parse_csv};
/// let a = parse_csv("x,\"y, in cm\"\n1,2\n3.5, -4\n", true)?;
/// assert_eq!(a, ndarray::array![[1.0, 2.0], [3.5, -4.0]]);
///
/// let err = parse_csv("1,2\n3,oops\n", false).unwrap_err();
/// assert_eq!(err.to_string(), "line 2, column 2: expected a finite number, found \"oops\"");
/// # Ok::<(), DataError>(())
/// ```
pub fn parse_csv(text: &str, has_header: bool) -> Result<Array2<f64>, DataError> {
    parse_table(text.as_bytes(), has_header)
}

/// Parses a numeric table; see [`read_csv`].
fn parse_table(text: &[u8], has_header: bool) -> Result<Array2<f64>, DataError> {
    let mut records = Records::new(text);
    let mut columns = None;
    if has_header && let Some(header) = records.next()? {
        columns = Some(header.len());
    }
    let mut data = Vec::new();
    let mut rows = 0;
    while let Some(record) = records.next()? {
        let expected = *columns.get_or_insert(record.len());
        if record.len() != expected {
            return Err(DataError::ColumnCount { line: record.line, expected, found: record.len() });
        }
        for column in 0..expected {
            data.push(record.number(column)?);
        }
        rows += 1;
    }
    to_array(rows, columns.unwrap_or(0), data)
}

/// Features, integer class labels and class names of a classification data
/// set, such as iris.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledDataset {
    /// One row per sample.
    pub features: Array2<f64>,
    /// The class index of each sample, in `0..class_names.len()`.
    pub labels: Array1<usize>,
    /// The name of each class, indexed by label.
    pub class_names: Vec<String>,
}

impl LabelledDataset {
    /// Reads a labelled CSV file such as `data/iris.csv`.
    ///
    /// The first non-blank record is a header `rows,features,name_0,name_1,...`
    /// (a name holding a comma is quoted); every following record holds
    /// `features` numbers and then a class index into the names. The number of
    /// data records must equal `rows`.
    ///
    /// ```
    /// use tapegrad::data::LabelledDataset;
    /// let iris = LabelledDataset::load(concat!(env!("CARGO_MANIFEST_DIR"), "/data/iris.csv"))?;
    /// assert_eq!(iris.features.dim(), (150, 4));
    /// assert_eq!(iris.class_names, ["setosa", "versicolor", "virginica"]);
    /// # Ok::<(), tapegrad::data::DataError>(())
    /// ```
    pub fn load(path: impl AsRef<Path>) -> Result<LabelledDataset, DataError> {
        let path = path.as_ref();
        parse_labelled(&read_bytes(path)?).map_err(|e| e.in_file(path))
    }

    /// Parses labelled CSV text; see [`LabelledDataset::load`].
    ///
    /// ```
    /// use tapegrad::data::{DataError, LabelledDataset};
    /// let d = LabelledDataset::parse("2,1,no,yes\n0.5,1\n-1,0\n")?;
    /// assert_eq!(d.labels.to_vec(), [1, 0]);
    /// assert_eq!(d.features.column(0).to_vec(), [0.5, -1.0]);
    ///
    /// let err = LabelledDataset::parse("2,1,no,yes\n0.5,2\n").unwrap_err();
    /// assert_eq!(err.to_string(), "line 2, column 2: expected a class index in 0..2, found \"2\"");
    /// # Ok::<(), DataError>(())
    /// ```
    pub fn parse(text: &str) -> Result<LabelledDataset, DataError> {
        parse_labelled(text.as_bytes())
    }

    /// Number of samples.
    ///
    /// ```
    /// use tapegrad::data::LabelledDataset;
    /// assert_eq!(LabelledDataset::parse("1,2,a\n1,2,0\n")?.len(), 1);
    /// # Ok::<(), tapegrad::data::DataError>(())
    /// ```
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no samples.
    ///
    /// ```
    /// use tapegrad::data::LabelledDataset;
    /// assert!(LabelledDataset::parse("0,2,a\n")?.is_empty());
    /// # Ok::<(), tapegrad::data::DataError>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Number of classes.
    ///
    /// ```
    /// use tapegrad::data::LabelledDataset;
    /// assert_eq!(LabelledDataset::parse("0,2,a,b,c\n")?.num_classes(), 3);
    /// # Ok::<(), tapegrad::data::DataError>(())
    /// ```
    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }

    /// The samples at `indices`, in that order.
    ///
    /// ```
    /// use tapegrad::data::LabelledDataset;
    /// let d = LabelledDataset::parse("3,1,a,b\n10,0\n20,1\n30,0\n")?;
    /// let s = d.select(&[2, 0]);
    /// assert_eq!(s.features.column(0).to_vec(), [30.0, 10.0]);
    /// # Ok::<(), tapegrad::data::DataError>(())
    /// ```
    ///
    /// # Panics
    ///
    /// At the caller's line, if an index is not in `0..len()`, naming the index and the length;
    /// [`try_select`](Self::try_select) returns the error instead.
    #[track_caller]
    pub fn select(&self, indices: &[usize]) -> LabelledDataset {
        match self.try_select(indices) {
            Ok(selected) => selected,
            Err(e) => panic!("{e}"),
        }
    }

    /// Like [`select`](Self::select), returning [`DataError::InvalidArgument`] instead of
    /// panicking when an index is not in `0..len()` (or when the public fields disagree: not
    /// one label per row of features).
    ///
    /// ```
    /// use tapegrad::data::LabelledDataset;
    /// let d = LabelledDataset::parse("3,1,a,b\n10,0\n20,1\n30,0\n")?;
    /// assert_eq!(d.try_select(&[1])?.labels.to_vec(), [1]);
    /// let err = d.try_select(&[0, 3]).unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "invalid argument: LabelledDataset::select: index 3 (at position 1) is out of range for \
    ///      3 samples; expected an index in 0..3"
    /// );
    /// # Ok::<(), tapegrad::data::DataError>(())
    /// ```
    pub fn try_select(&self, indices: &[usize]) -> Result<LabelledDataset, DataError> {
        let (rows, len) = (self.features.nrows(), self.len());
        if rows != len {
            return Err(DataError::InvalidArgument(format!(
                "LabelledDataset::select: the features have {rows} rows but there are {len} labels; \
                 expected one label per row"
            )));
        }
        if let Some((position, index)) = indices.iter().enumerate().find(|&(_, &i)| i >= len) {
            return Err(DataError::InvalidArgument(format!(
                "LabelledDataset::select: index {index} (at position {position}) is out of range for {len} \
                 samples; expected an index in 0..{len}"
            )));
        }
        Ok(LabelledDataset {
            features: self.features.select(Axis(0), indices),
            labels: self.labels.select(Axis(0), indices),
            class_names: self.class_names.clone(),
        })
    }

    /// Randomly splits into `(train, test)` with [`train_test_split`].
    ///
    /// ```
    /// use tapegrad::data::LabelledDataset;
    /// let iris = LabelledDataset::load(concat!(env!("CARGO_MANIFEST_DIR"), "/data/iris.csv"))?;
    /// let (train, test) = iris.split(0.2, 42)?;
    /// assert_eq!((train.len(), test.len()), (120, 30));
    /// # Ok::<(), tapegrad::data::DataError>(())
    /// ```
    pub fn split(
        &self,
        test_fraction: f64,
        seed: u64,
    ) -> Result<(LabelledDataset, LabelledDataset), DataError> {
        let (train, test) = train_test_split(self.len(), test_fraction, seed)?;
        Ok((self.try_select(&train)?, self.try_select(&test)?))
    }
}

/// Parses a labelled data set; see [`LabelledDataset::load`].
fn parse_labelled(text: &[u8]) -> Result<LabelledDataset, DataError> {
    let mut records = Records::new(text);
    let Some(header) = records.next()? else {
        return Err(DataError::Parse {
            line: 1,
            column: 1,
            expected: "a header `rows,features,class names...`".into(),
            found: String::new(),
        });
    };
    // NOTE: no array or Vec holds more than isize::MAX elements, and this
    // bound keeps `n_features + 1` (the columns of a data line) from wrapping.
    let count = |column: usize, what: &str| {
        let max = isize::MAX as usize;
        let field = header.text(column)?;
        field.parse::<usize>().ok().filter(|&n| n <= max).ok_or_else(|| DataError::Parse {
            line: header.line,
            column: column + 1,
            expected: format!("{what} (an integer from 0 to {max})"),
            found: shorten(field),
        })
    };
    let rows = count(0, "the number of rows")?;
    let n_features = count(1, "the number of features")?;
    let columns = n_features + 1;
    let class_names = (2..header.len().max(3))
        .map(|column| {
            let name = header.text(column)?;
            if name.is_empty() {
                return Err(DataError::Parse {
                    line: header.line,
                    column: column + 1,
                    expected: "a class name".into(),
                    found: String::new(),
                });
            }
            Ok(name.to_owned())
        })
        .collect::<Result<Vec<String>, DataError>>()?;
    let num_classes = class_names.len();
    let mut features = Vec::new();
    let mut labels = Vec::new();
    while let Some(record) = records.next()? {
        if record.len() != columns {
            return Err(DataError::ColumnCount { line: record.line, expected: columns, found: record.len() });
        }
        for column in 0..n_features {
            features.push(record.number(column)?);
        }
        let field = record.text(n_features)?;
        let label =
            field.parse::<usize>().ok().filter(|&l| l < num_classes).ok_or_else(|| DataError::Parse {
                line: record.line,
                column: columns,
                expected: format!("a class index in 0..{num_classes}"),
                found: shorten(field),
            })?;
        labels.push(label);
    }
    if labels.len() != rows {
        return Err(DataError::CountMismatch {
            what: "number of data rows (declared in the header)".into(),
            expected: rows,
            found: labels.len(),
        });
    }
    Ok(LabelledDataset {
        features: to_array(rows, n_features, features)?,
        labels: labels.into(),
        class_names,
    })
}

/// Reads a whole file.
fn read_bytes(path: &Path) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(|error| DataError::Io { path: path.to_path_buf(), error })
}

/// The UTF-8 encoding of U+FEFF, which some programs write at the start of a text file.
const BYTE_ORDER_MARK: &[u8] = "\u{FEFF}".as_bytes();

/// The non-blank records of CSV text, read one at a time into one reused buffer.
struct Records<'a> {
    text: &'a [u8],
    reader: csv::Reader<&'a [u8]>,
    fields: ByteRecord,
    /// The line of `text[counted]`: 1 plus the line ends before it.
    line: usize,
    counted: usize,
}

/// One record of [`Records`]: the line it starts on and its fields.
struct Record<'r> {
    line: usize,
    fields: &'r ByteRecord,
}

impl<'a> Records<'a> {
    fn new(text: &'a [u8]) -> Records<'a> {
        let text = text.strip_prefix(BYTE_ORDER_MARK).unwrap_or(text);
        let reader = ReaderBuilder::new().has_headers(false).flexible(true).from_reader(text);
        Records { text, reader, fields: ByteRecord::new(), line: 1, counted: 0 }
    }

    /// The next record that is not blank (nothing but whitespace), or `None` at the end.
    fn next(&mut self) -> Result<Option<Record<'_>>, DataError> {
        loop {
            let resumed = self.reader.position().byte() as usize;
            // NOTE: reading from memory with `flexible` set, the reader has no error to
            // report; one is passed on all the same rather than unwrapped.
            let found = self.reader.read_byte_record(&mut self.fields).map_err(|error| {
                DataError::InvalidArgument(format!("CSV reader failed after line {}: {error}", self.line))
            })?;
            if !found {
                return Ok(None);
            }
            // NOTE: the reader resumes before the line ends it then skips (empty lines, or the
            // `\n` of a `\r\n`), so the record starts after them.
            let skipped = self.text.get(resumed..).unwrap_or_default();
            let start = resumed + skipped.iter().take_while(|&&byte| byte == b'\n' || byte == b'\r').count();
            let line = self.line_at(start);
            let blank = self.fields.len() == 1
                && std::str::from_utf8(&self.fields[0]).is_ok_and(|field| field.trim().is_empty());
            if !blank {
                return Ok(Some(Record { line, fields: &self.fields }));
            }
        }
    }

    /// The line of `text[at]`, where `at` never goes back from one call to the next. `\n`,
    /// `\r\n` and a lone `\r` each end a line, as they end a record.
    fn line_at(&mut self, at: usize) -> usize {
        let end = at.min(self.text.len());
        for index in self.counted..end {
            let byte = self.text[index];
            if byte == b'\n' || (byte == b'\r' && self.text.get(index + 1) != Some(&b'\n')) {
                self.line += 1;
            }
        }
        self.counted = self.counted.max(end);
        self.line
    }
}

impl Record<'_> {
    /// The number of fields.
    fn len(&self) -> usize {
        self.fields.len()
    }

    /// Field `index` (from 0), trimmed; empty if the record is shorter. Fails unless it is UTF-8.
    fn text(&self, index: usize) -> Result<&str, DataError> {
        let bytes = self.fields.get(index).unwrap_or_default();
        std::str::from_utf8(bytes).map(str::trim).map_err(|_| DataError::Parse {
            line: self.line,
            column: index + 1,
            expected: "UTF-8 text".into(),
            found: shorten(&String::from_utf8_lossy(bytes)),
        })
    }

    /// Field `index` (from 0) as a finite number.
    fn number(&self, index: usize) -> Result<f64, DataError> {
        let field = self.text(index)?;
        field.parse::<f64>().ok().filter(|v| v.is_finite()).ok_or_else(|| DataError::Parse {
            line: self.line,
            column: index + 1,
            expected: "a finite number".into(),
            found: shorten(field),
        })
    }
}

/// Builds the array; the counts are consistent by construction.
fn to_array(rows: usize, columns: usize, data: Vec<f64>) -> Result<Array2<f64>, DataError> {
    let found = data.len();
    Array2::from_shape_vec((rows, columns), data).map_err(|_| DataError::CountMismatch {
        what: format!("number of values in a {rows} x {columns} table"),
        expected: rows.saturating_mul(columns),
        found,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const IRIS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/iris.csv");

    #[test]
    fn iris_has_the_known_contents() {
        let iris = LabelledDataset::load(IRIS).unwrap();
        assert_eq!(iris.features.dim(), (150, 4));
        assert_eq!(iris.num_classes(), 3);
        for class in 0..3 {
            assert_eq!(iris.labels.iter().filter(|&&l| l == class).count(), 50);
        }
        assert_eq!(iris.features.row(0).to_vec(), [5.1, 3.5, 1.4, 0.2]);
        assert_eq!(iris.labels[149], 2);
        // Well-known column means of iris.
        let means = iris.features.mean_axis(Axis(0)).unwrap();
        for (m, want) in means.iter().zip([5.8433, 3.0573, 3.758, 1.1993]) {
            assert!((m - want).abs() < 1e-3, "{m} vs {want}");
        }
        // Setosa petals are short.
        let setosa_max =
            (0..150).filter(|&i| iris.labels[i] == 0).map(|i| iris.features[[i, 2]]).fold(0.0, f64::max);
        assert_eq!(setosa_max, 1.9);
    }

    #[test]
    fn generic_reader_matches_labelled_reader() {
        let table = read_csv(IRIS, true).unwrap();
        let iris = LabelledDataset::load(IRIS).unwrap();
        assert_eq!(table.dim(), (150, 5));
        assert_eq!(table.slice_axis(ndarray::Axis(1), ndarray::Slice::from(..4)), iris.features);
        assert!(table.column(4).iter().zip(&iris.labels).all(|(&a, &b)| a == b as f64));
    }

    #[test]
    fn csv_errors_give_line_and_column() {
        let err = parse_csv("a,b\n\n1,2\n3\n", true).unwrap_err();
        assert_eq!(err.to_string(), "line 4: expected 2 columns, found 1");
        let err = parse_csv("1,2\n3,NaN\n", false).unwrap_err();
        assert!(matches!(err, DataError::Parse { line: 2, column: 2, .. }), "{err}");
        let err = parse_csv(&format!("1,{}\n", "9".repeat(100) + "x"), false).unwrap_err();
        assert!(err.to_string().len() < 120, "long fields are shortened: {err}");
        assert_eq!(parse_csv("", true).unwrap().dim(), (0, 0));
        assert_eq!(parse_csv("a,b,c\n", true).unwrap().dim(), (0, 3));
        assert_eq!(parse_csv("\u{FEFF}1\r\n2\r\n", false).unwrap().column(0).to_vec(), [1.0, 2.0]);
    }

    #[test]
    fn labelled_header_is_validated() {
        let cases: [(&str, &str); 7] = [
            ("", "line 1, column 1: expected a header"),
            ("x,4,a\n", "line 1, column 1: expected the number of rows"),
            ("1,-4,a\n", "line 1, column 2: expected the number of features"),
            ("0,2\n", "line 1, column 3: expected a class name"),
            ("0,2,a, ,b\n", "line 1, column 4: expected a class name"),
            ("2,1,a,b\n1,0\n", "number of data rows (declared in the header): expected 2, found 1"),
            ("1,2,a,b\n1,2,3,0\n", "line 2: expected 3 columns, found 4"),
        ];
        for (text, want) in cases {
            let err = LabelledDataset::parse(text).unwrap_err();
            assert!(err.to_string().starts_with(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn header_counts_beyond_any_table_are_rejected() {
        let max = usize::MAX;
        let limit = isize::MAX;
        // `features + 1` columns would wrap to 0, with and without data lines.
        for text in [format!("1,{max},a\n1,0\n"), format!("0,{max},a\n")] {
            let err = LabelledDataset::parse(&text).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "line 1, column 2: expected the number of features (an integer from 0 to {limit}), \
                     found \"{max}\""
                ),
                "{text:?}"
            );
        }
        let err = LabelledDataset::parse(&format!("{max},1,a\n1,0\n")).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "line 1, column 1: expected the number of rows (an integer from 0 to {limit}), found \"{max}\""
            )
        );
        // The largest accepted count still gives an empty table.
        let d = LabelledDataset::parse(&format!("0,{limit},a\n")).unwrap();
        assert_eq!(d.features.dim(), (0, limit as usize));
        assert!(d.is_empty());
    }

    #[test]
    fn file_errors_name_the_path() {
        let path = std::env::temp_dir().join(format!("tapegrad-csv-{}.csv", std::process::id()));
        std::fs::write(&path, "3,1,a\n1,0\n").unwrap();
        let err = LabelledDataset::load(&path).unwrap_err();
        assert!(err.to_string().starts_with(&path.display().to_string()), "{err}");
        assert!(matches!(err.root(), DataError::CountMismatch { expected: 3, found: 1, .. }));
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(read_csv(&path, false), Err(DataError::Io { .. })));
    }

    #[test]
    fn split_is_a_partition() {
        let iris = LabelledDataset::load(IRIS).unwrap();
        let (train, test) = iris.split(0.2, 7).unwrap();
        assert_eq!((train.len(), test.len()), (120, 30));
        let total: f64 = train.features.sum() + test.features.sum();
        assert!((total - iris.features.sum()).abs() < 1e-9);
        assert_eq!(iris.split(0.2, 7).unwrap().1, test);
        assert_ne!(iris.split(0.2, 8).unwrap().1, test);
    }

    #[test]
    fn a_quoted_field_may_hold_the_delimiter() {
        let err = parse_csv("\"length, cm\",\"width, cm\"\n\"1,5\" , 2\n", true).unwrap_err();
        assert_eq!(err.to_string(), "line 2, column 1: expected a finite number, found \"1,5\"");
        let a = parse_csv("\"length, cm\",\"width, cm\"\n\"1.5\" ,\" 2\"\n", true).unwrap();
        assert_eq!(a, ndarray::array![[1.5, 2.0]]);
        // A quote after a space is text, not the start of a quoted field.
        let err = parse_csv("1, \"2\"\n", false).unwrap_err();
        assert_eq!(err.to_string(), "line 1, column 2: expected a finite number, found \"\\\"2\\\"\"");
        let d = LabelledDataset::parse("1,1,\"setosa, bristly\",versicolor\n0.5,0\n").unwrap();
        assert_eq!(d.class_names, ["setosa, bristly", "versicolor"]);
        assert_eq!(d.labels.to_vec(), [0]);
    }

    #[test]
    fn a_doubled_quote_inside_quotes_is_one_quote() {
        let d = LabelledDataset::parse("0,2,\"the \"\"big\"\" one\",\"\"\"\"\n").unwrap();
        assert_eq!(d.class_names, ["the \"big\" one", "\""]);
        let err = parse_csv("1,\"2\"\"x\"\n", false).unwrap_err();
        assert!(
            matches!(&err, DataError::Parse { line: 1, column: 2, found, .. } if found == "2\"x"),
            "{err}"
        );
    }

    #[test]
    fn a_header_row_fixes_the_columns_and_is_not_data() {
        let text = "name,\"weight, kg\",\"height\"\n\n1,2,3\n4,5,6\n";
        assert_eq!(parse_csv(text, true).unwrap(), ndarray::array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]);
        let err = parse_csv(text, false).unwrap_err();
        assert_eq!(err.to_string(), "line 1, column 1: expected a finite number, found \"name\"");
        let err = parse_csv("a,b,c\n1,2\n", true).unwrap_err();
        assert_eq!(err.to_string(), "line 2: expected 3 columns, found 2");
        // The header is the first record that is not blank, and may itself be quoted over lines.
        let a = parse_csv("\r\n \n\"two\nline\",b\n7,8\n", true).unwrap();
        assert_eq!(a, ndarray::array![[7.0, 8.0]]);
    }

    #[test]
    fn a_ragged_row_names_its_line() {
        let cases = [
            ("1,2\n3,4,5\n", DataError::ColumnCount { line: 2, expected: 2, found: 3 }),
            ("1,2\r\n\r\n3\r\n", DataError::ColumnCount { line: 3, expected: 2, found: 1 }),
            ("1,\"2\n\n\"\n3,4,\n", DataError::ColumnCount { line: 4, expected: 2, found: 3 }),
        ];
        for (text, want) in cases {
            assert_eq!(parse_csv(text, false).unwrap_err().to_string(), want.to_string(), "{text:?}");
        }
        let err = LabelledDataset::parse("2,2,a,b\n1,2,0\n\n3,1\n").unwrap_err();
        assert_eq!(err.to_string(), "line 4: expected 3 columns, found 2");
    }

    #[test]
    fn a_field_that_is_not_a_number_names_its_line_and_column() {
        // Blank lines, `\r\n` ends and a quoted line break all count as lines of the text.
        let text = "1,2\r\n\r\n\"3\n\",4\n5, x7\n";
        let err = parse_csv(text, false).unwrap_err();
        assert_eq!(err.to_string(), "line 5, column 2: expected a finite number, found \"x7\"");
        let err = parse_csv("\u{FEFF}1,2,3\n4,5,inf\n", false).unwrap_err();
        assert!(matches!(err, DataError::Parse { line: 2, column: 3, .. }), "{err}");
        let err = LabelledDataset::parse("1,2,a\n\n\n0.5,\"1e\",0\n").unwrap_err();
        assert_eq!(err.to_string(), "line 4, column 2: expected a finite number, found \"1e\"");
        // A quote left open runs to the end; the error names where it opened.
        let err = parse_csv("1,2\n3,\"4\n5,6\n", false).unwrap_err();
        assert_eq!(err.to_string(), "line 2, column 2: expected a finite number, found \"4\\n5,6\"");
        // A lone `\r` ends a line as well.
        let err = parse_csv("1\r2\r3x\r", false).unwrap_err();
        assert_eq!(err.to_string(), "line 3, column 1: expected a finite number, found \"3x\"");
    }

    #[test]
    fn a_field_that_is_not_utf8_names_its_file_line_and_column() {
        let path = std::env::temp_dir().join(format!("tapegrad-csv-utf8-{}.csv", std::process::id()));
        std::fs::write(&path, b"1,2\n3,\xFF4\n").unwrap();
        let err = read_csv(&path, false).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{}: line 2, column 2: expected UTF-8 text, found \"\u{FFFD}4\"", path.display())
        );
        std::fs::remove_file(&path).unwrap();
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "[0-9a-z.,\\-+ \\n\\r]{0,80}|\\PC{0,40}", header: bool) {
            if let Ok(a) = parse_csv(&text, header) {
                prop_assert!(a.iter().all(|v| v.is_finite()));
                // Without quotes, every non-blank line is a record; a lone `\r` ends a line too.
                if !text.contains('"') {
                    let data_lines = text.split(['\n', '\r']).filter(|l| !l.trim().is_empty()).count();
                    prop_assert_eq!(a.nrows(), data_lines.saturating_sub(header as usize));
                }
            }
            if let Ok(d) = LabelledDataset::parse(&text) {
                prop_assert_eq!(d.features.nrows(), d.labels.len());
                prop_assert!(d.labels.iter().all(|&l| l < d.num_classes()));
            }
        }

        #[test]
        fn numeric_tables_round_trip(rows in prop::collection::vec(prop::collection::vec(-1e6f64..1e6, 3), 0..10),
                                     quoted in prop::collection::vec(any::<bool>(), 3), crlf: bool) {
            let field = |column: usize, v: f64| {
                if quoted[column] { format!("\" {v}\"") } else { v.to_string() }
            };
            let end = if crlf { "\r\n" } else { "\n" };
            let line = |r: &Vec<f64>| format!("{},{},{}{end}", field(0, r[0]), field(1, r[1]), field(2, r[2]));
            let text: String = rows.iter().map(line).collect();
            let a = parse_csv(&text, false).unwrap();
            prop_assert_eq!(a.nrows(), rows.len());
            for (i, r) in rows.iter().enumerate() {
                prop_assert_eq!(a.row(i).to_vec(), r.clone());
            }
        }
    }
}
