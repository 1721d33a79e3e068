//! Numeric CSV files and labelled classification data such as iris.
//!
//! Fields are separated by commas and trimmed of surrounding whitespace;
//! blank lines are skipped and a leading byte-order mark is ignored. Quoting
//! is not supported: every field must be a number (or, in headers, a name
//! without commas).

use std::path::Path;

use ndarray::{Array1, Array2, Axis};

use super::DataError;
use super::loader::train_test_split;

/// Reads a numeric CSV file into a `rows x columns` array.
///
/// With `has_header`, the first non-blank line is skipped but fixes the
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
    parse_csv(&read_text(path)?, has_header).map_err(|e| e.in_file(path))
}

/// Parses numeric CSV text; see [`read_csv`].
///
/// ```
/// use tapegrad::data::{DataError, parse_csv};
/// let a = parse_csv("x,y\n1,2\n3.5, -4\n", true)?;
/// assert_eq!(a, ndarray::array![[1.0, 2.0], [3.5, -4.0]]);
///
/// let err = parse_csv("1,2\n3,oops\n", false).unwrap_err();
/// assert_eq!(err.to_string(), "line 2, column 2: expected a finite number, found \"oops\"");
/// # Ok::<(), DataError>(())
/// ```
pub fn parse_csv(text: &str, has_header: bool) -> Result<Array2<f64>, DataError> {
    let mut lines = records(text);
    let mut columns = None;
    if has_header && let Some((_, fields)) = lines.next() {
        columns = Some(fields.len());
    }
    let mut data = Vec::new();
    let mut rows = 0;
    for (line, fields) in lines {
        let expected = *columns.get_or_insert(fields.len());
        if fields.len() != expected {
            return Err(DataError::ColumnCount { line, expected, found: fields.len() });
        }
        for (i, field) in fields.iter().enumerate() {
            data.push(parse_f64(field, line, i + 1)?);
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
    /// The first line is a header `rows,features,name_0,name_1,...`; every
    /// following line holds `features` numbers and then a class index into
    /// the names. The number of data lines must equal `rows`.
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
        LabelledDataset::parse(&read_text(path)?).map_err(|e| e.in_file(path))
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
        let mut lines = records(text);
        let Some((header_line, header)) = lines.next() else {
            return Err(DataError::Parse {
                line: 1,
                column: 1,
                expected: "a header `rows,features,class names...`".into(),
                found: String::new(),
            });
        };
        // NOTE: no array or Vec holds more than isize::MAX elements, and this
        // bound keeps `n_features + 1` (the columns of a data line) from wrapping.
        let count = |i: usize, what: &str| {
            let max = isize::MAX as usize;
            let field = header.get(i).copied().unwrap_or_default();
            field.parse::<usize>().ok().filter(|&n| n <= max).ok_or_else(|| DataError::Parse {
                line: header_line,
                column: i + 1,
                expected: format!("{what} (an integer from 0 to {max})"),
                found: shorten(field),
            })
        };
        let rows = count(0, "the number of rows")?;
        let n_features = count(1, "the number of features")?;
        let columns = n_features + 1;
        let class_names: Vec<String> = header.iter().skip(2).map(|s| s.to_string()).collect();
        let missing =
            if class_names.is_empty() { Some(0) } else { class_names.iter().position(|n| n.is_empty()) };
        if let Some(i) = missing {
            return Err(DataError::Parse {
                line: header_line,
                column: i + 3,
                expected: "a class name".into(),
                found: String::new(),
            });
        }
        let num_classes = class_names.len();
        let mut features = Vec::new();
        let mut labels = Vec::new();
        for (line, fields) in lines {
            if fields.len() != columns {
                return Err(DataError::ColumnCount { line, expected: columns, found: fields.len() });
            }
            for (i, field) in fields[..n_features].iter().enumerate() {
                features.push(parse_f64(field, line, i + 1)?);
            }
            let field = fields[n_features];
            let label =
                field.parse::<usize>().ok().filter(|&l| l < num_classes).ok_or_else(|| DataError::Parse {
                    line,
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
    /// If an index is out of bounds.
    pub fn select(&self, indices: &[usize]) -> LabelledDataset {
        LabelledDataset {
            features: self.features.select(Axis(0), indices),
            labels: self.labels.select(Axis(0), indices),
            class_names: self.class_names.clone(),
        }
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
        Ok((self.select(&train), self.select(&test)))
    }
}

/// Reads a UTF-8 text file.
fn read_text(path: &Path) -> Result<String, DataError> {
    std::fs::read_to_string(path).map_err(|error| DataError::Io { path: path.to_path_buf(), error })
}

/// Non-blank lines with their 1-based numbers, split into trimmed fields.
fn records(text: &str) -> impl Iterator<Item = (usize, Vec<&str>)> {
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (i + 1, l.split(',').map(str::trim).collect()))
}

/// Parses one finite number.
fn parse_f64(field: &str, line: usize, column: usize) -> Result<f64, DataError> {
    field.parse::<f64>().ok().filter(|v| v.is_finite()).ok_or_else(|| DataError::Parse {
        line,
        column,
        expected: "a finite number".into(),
        found: shorten(field),
    })
}

/// The field, cut to at most 40 characters for error messages.
pub(super) fn shorten(field: &str) -> String {
    match field.char_indices().nth(40) {
        Some((i, _)) => format!("{}...", &field[..i]),
        None => field.to_owned(),
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

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "[0-9a-z.,\\-+ \\n\\r]{0,80}|\\PC{0,40}", header: bool) {
            if let Ok(a) = parse_csv(&text, header) {
                prop_assert!(a.iter().all(|v| v.is_finite()));
                let data_lines = text.lines().filter(|l| !l.trim().is_empty()).count();
                prop_assert_eq!(a.nrows(), data_lines.saturating_sub(header as usize));
            }
            if let Ok(d) = LabelledDataset::parse(&text) {
                prop_assert_eq!(d.features.nrows(), d.labels.len());
                prop_assert!(d.labels.iter().all(|&l| l < d.num_classes()));
            }
        }

        #[test]
        fn numeric_tables_round_trip(rows in prop::collection::vec(prop::collection::vec(-1e6f64..1e6, 3), 0..10)) {
            let text: String = rows.iter().map(|r| format!("{},{},{}\n", r[0], r[1], r[2])).collect();
            let a = parse_csv(&text, false).unwrap();
            prop_assert_eq!(a.nrows(), rows.len());
            for (i, r) in rows.iter().enumerate() {
                prop_assert_eq!(a.row(i).to_vec(), r.clone());
            }
        }
    }
}
