//! The examples' command lines: flags one at a time, each with its value, and the errors every
//! example gives in the same words.

/// The flags of a command line, read in order.
pub struct Flags {
    rest: std::vec::IntoIter<String>,
    flag: String,
}

impl Flags {
    /// The flags in `args`, leaving out every `skip` (a flag the caller has handled already).
    pub fn new(args: impl IntoIterator<Item = String>, skip: &[&str]) -> Self {
        let kept: Vec<String> = args.into_iter().filter(|a| !skip.contains(&a.as_str())).collect();
        Flags { rest: kept.into_iter(), flag: String::new() }
    }

    /// The next flag, if any.
    pub fn next_flag(&mut self) -> Option<String> {
        self.flag = self.rest.next()?;
        Some(self.flag.clone())
    }

    /// The current flag's value: the next argument.
    pub fn value(&mut self) -> Result<String, String> {
        self.rest.next().ok_or(format!("{} needs a value", self.flag))
    }

    /// The current flag's value as a number.
    pub fn number(&mut self) -> Result<f64, String> {
        let v = self.value()?;
        v.parse::<f64>().map_err(|_| format!("{}: {v:?} is not a number", self.flag))
    }

    /// The error for a flag the example does not know.
    pub fn unknown(&self) -> String {
        format!("unknown flag {:?}; see the example's header for the flags", self.flag)
    }
}
