//! The provider abstraction: one trait, [`RealtimeModel`], whose only entry
//! point is `open`, returning the [`ModelSession`] handle for one call.
//!
//! The trait is object safe (`Box<dyn RealtimeModel>`), so the session layer
//! picks a provider from configuration at run time.

use crate::config::{CallMetadata, SessionConfig};
use crate::error::Error;
use crate::format::AudioFormat;
use crate::provider::{BoxFuture, Provider};
use crate::session::ModelSession;

/// A realtime voice model service.
///
/// `open` connects (retrying per [`SessionConfig::retry`]), completes the
/// provider's session setup and only then returns the handle, so a handle
/// always has a live, configured connection. Each handle owns exactly one
/// connection for its life; reconnects for session resumption happen inside
/// it and never overlap.
pub trait RealtimeModel: Send + Sync {
    /// Which provider this is.
    fn provider(&self) -> Provider;

    /// The audio format the model takes as input (what frames are converted to).
    fn input_format(&self, config: &SessionConfig) -> AudioFormat;

    /// Opens one session for one call.
    fn open<'a>(
        &'a self,
        config: SessionConfig,
        metadata: CallMetadata,
    ) -> BoxFuture<'a, Result<ModelSession, Error>>;
}
