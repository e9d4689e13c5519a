//! What can be wrong with a configuration, and where the wrong value came
//! from. Loading reports every error it finds ([`ConfigErrors`]), each
//! naming the key, the value, its [`Origin`] (the file or the variable)
//! and what the key accepts. Secrets are named by their variable, never
//! shown.

use std::fmt;
use std::path::PathBuf;

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Nobody set it: the key's default.
    Default,
    /// The configuration file.
    File(PathBuf),
    /// An environment variable (its name).
    Env(String),
}

/// One reason a configuration cannot be used. Every message names the key
/// (or variable), the value and what was expected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{}: not valid TOML: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message (with line and column).
        message: String,
    },
    /// A key (or a `CALLBRIDGE_` variable) that the configuration does
    /// not have.
    #[error("unknown key {key}{}: {hint}", Found(origin))]
    UnknownKey {
        /// Dotted path, or the variable.
        key: String,
        /// Where it was found.
        origin: Origin,
        /// What to do about it.
        hint: String,
    },
    /// A value that does not fit its key.
    #[error("{}", Shown { key, origin, value, expected })]
    Invalid {
        /// Dotted path.
        key: String,
        /// Where the value came from.
        origin: Origin,
        /// The value as written (TOML notation).
        value: String,
        /// What the key accepts.
        expected: String,
    },
    /// A key that must be set is not.
    #[error("{key} is missing: {expected}")]
    Missing {
        /// Dotted path.
        key: String,
        /// Why it is needed and what it takes.
        expected: String,
    },
    /// A secret the configuration needs is not in the environment.
    #[error("{var} is not set: {why}")]
    MissingSecret {
        /// The variable.
        var: &'static str,
        /// Which setting needs it.
        why: String,
    },
    /// A secret in the environment that cannot be used (the message
    /// never repeats the secret).
    #[error("{var} is not usable: {why}")]
    BadSecret {
        /// The variable.
        var: &'static str,
        /// What is wrong with it.
        why: String,
    },
}

/// ` in FILE` / ` in the environment` after an unknown key.
struct Found<'a>(&'a Origin);

impl fmt::Display for Found<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Origin::Default => Ok(()),
            Origin::File(p) => write!(f, " in {}", p.display()),
            Origin::Env(_) => f.write_str(" in the environment"),
        }
    }
}

/// `key (from VAR) = value: expected ...` for a variable's value,
/// `key = value: expected ... (in FILE)` for the file's, and without a
/// source for a default.
struct Shown<'a> {
    key: &'a str,
    origin: &'a Origin,
    value: &'a str,
    expected: &'a str,
}

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Shown {
            key,
            origin,
            value,
            expected,
        } = self;
        match origin {
            Origin::Env(var) => write!(f, "{key} (from {var}) = {value}: expected {expected}"),
            Origin::File(p) => write!(
                f,
                "{key} = {value}: expected {expected} (in {})",
                p.display()
            ),
            Origin::Default => write!(f, "{key} = {value}: expected {expected}"),
        }
    }
}

/// Every error found in one pass over the file, the environment and the
/// secrets; never empty. Displayed one error per line.
#[derive(Debug)]
pub struct ConfigErrors(Vec<ConfigError>);

impl ConfigErrors {
    /// `Ok(())` when `errors` is empty.
    pub fn check(errors: Vec<ConfigError>) -> Result<(), ConfigErrors> {
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(errors))
        }
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}
