//! The crate's one error: a configuration that cannot work. Detection
//! itself cannot fail (every frame is valid audio).

/// A setting of [`crate::AmdConfig`] or [`crate::WordConfig`] that is out
/// of range or contradicts another (the caller's misuse).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A duration that must be above zero is zero.
    #[error("amd setting {field} must be above zero")]
    Zero {
        /// The setting.
        field: &'static str,
    },
    /// Two settings in the wrong order.
    #[error("amd setting {lower} must be below {higher}")]
    Order {
        /// The setting that must be the lower.
        lower: &'static str,
        /// The setting that must be the higher.
        higher: &'static str,
    },
    /// A setting outside its range.
    #[error("amd setting {field} must be {range}")]
    OutOfRange {
        /// The setting.
        field: &'static str,
        /// The allowed range, in words.
        range: &'static str,
    },
}
