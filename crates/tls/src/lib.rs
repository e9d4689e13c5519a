//! Which certificate authorities callbridge's outbound TLS trusts:
//! [`TlsRoots`], and the one rustls client configuration for each choice.
//!
//! Every outbound TLS connection of callbridge goes through
//! [`TlsRoots::client_config`]: the realtime model WebSockets (`wss://`)
//! and the post-call summary requests (`https://`) of `callbridge-llm-bridge`,
//! the carriers' REST hang-ups of `callbridge-carrier` and the campaign
//! dialer's `AgentClient` of `callbridge-api`. The configuration is rustls
//! on the aws-lc-rs provider, passed explicitly (no process-wide default
//! provider is read or installed), with safe default protocol versions and
//! no client auth. The roots are either the system trust store
//! ([`TlsRoots::System`], the default: what the host's administrator
//! installed, including a TLS-intercepting proxy's CA), read with
//! `rustls-native-certs` (which honours `SSL_CERT_FILE` and
//! `SSL_CERT_DIR`), or the Mozilla roots bundled into the binary
//! ([`TlsRoots::Bundled`], `webpki-roots`), the fallback for hosts without a
//! usable store.
//!
//! The store is read once per process and kind; a system store that cannot
//! be read completely is logged as a warning, and one without a single
//! usable certificate is the error [`TlsError::NoSystemRoots`].
//!
//! A tiny utility crate below the protocol crates, so that llm-bridge,
//! carrier and api share one trust policy without knowing of each other.
//!
//! # Features
//!
//! - `config` (default): [`TlsRoots::client_config`] (rustls,
//!   rustls-native-certs, webpki-roots). Without it the crate is the
//!   [`TlsRoots`] setting and [`TlsError`] only.
#![deny(missing_docs)]

#[cfg(feature = "config")]
use std::sync::{Arc, OnceLock};

/// The README's example, compiled and run as a doctest.
#[cfg(all(doctest, feature = "config"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// The certificate authorities outbound TLS trusts.
///
/// ```
/// use callbridge_tls::TlsRoots;
/// assert_eq!(TlsRoots::default(), TlsRoots::System);
/// assert_eq!("bundled".parse::<TlsRoots>(), Ok(TlsRoots::Bundled));
/// assert_eq!(TlsRoots::Bundled.to_string(), "bundled");
/// # #[cfg(feature = "config")]
/// let config = TlsRoots::Bundled.client_config()?;
/// # Ok::<(), callbridge_tls::TlsError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum TlsRoots {
    /// The system trust store (`rustls-native-certs`; `SSL_CERT_FILE` and
    /// `SSL_CERT_DIR` override where it is read from).
    #[default]
    System,
    /// The Mozilla roots bundled into the binary (`webpki-roots`).
    Bundled,
}

impl TlsRoots {
    /// The name used in configuration: `system` or `bundled`.
    pub const fn as_str(self) -> &'static str {
        match self {
            TlsRoots::System => "system",
            TlsRoots::Bundled => "bundled",
        }
    }
}

impl std::fmt::Display for TlsRoots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for TlsRoots {
    type Err = TlsError;

    /// Parses `system` or `bundled` (ASCII case-insensitive).
    fn from_str(s: &str) -> Result<Self, TlsError> {
        if s.eq_ignore_ascii_case("system") {
            Ok(TlsRoots::System)
        } else if s.eq_ignore_ascii_case("bundled") {
            Ok(TlsRoots::Bundled)
        } else {
            Err(TlsError::UnknownRoots)
        }
    }
}

/// Why a TLS client configuration could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The system trust store has no usable certificate (empty, missing or
    /// unreadable); `errors` problems were met reading it.
    #[error(
        "the system trust store has no usable root certificate ({errors} load error(s)); \
         install the system CA certificates or select the bundled roots"
    )]
    NoSystemRoots {
        /// How many load errors `rustls-native-certs` reported.
        errors: usize,
    },
    /// The crypto provider refused the protocol versions (our bug).
    #[error("TLS setup failed")]
    Setup,
    /// A roots name other than `system` or `bundled`.
    #[error("unknown TLS roots (expected \"system\" or \"bundled\")")]
    UnknownRoots,
}

#[cfg(feature = "config")]
impl TlsRoots {
    /// The rustls client configuration trusting these roots, made once per
    /// process and shared.
    ///
    /// # Errors
    /// [`TlsError::NoSystemRoots`] when `self` is [`TlsRoots::System`] and
    /// the store has no usable certificate (also logged as a warning).
    pub fn client_config(self) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        static SYSTEM: OnceLock<Result<Arc<rustls::ClientConfig>, TlsError>> = OnceLock::new();
        static BUNDLED: OnceLock<Result<Arc<rustls::ClientConfig>, TlsError>> = OnceLock::new();
        match self {
            TlsRoots::System => SYSTEM
                .get_or_init(|| system_roots(rustls_native_certs::load_native_certs()))
                .clone(),
            TlsRoots::Bundled => BUNDLED
                .get_or_init(|| {
                    config(rustls::RootCertStore {
                        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                    })
                })
                .clone(),
        }
    }
}

#[cfg(feature = "config")]
impl TlsRoots {
    /// The configuration of a client of `url` that follows no redirects:
    /// [`TlsRoots::client_config`] for an `https://` or `wss://` URL; for
    /// any other (`http://`, `ws://`) the client never makes a TLS
    /// connection, so the bundled roots stand in and the system store is not
    /// read (a plain-HTTP client works on a host without one).
    ///
    /// # Errors
    /// As [`TlsRoots::client_config`], for a TLS URL.
    pub fn client_config_for(self, url: &str) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        let scheme = url.split_once("://").map_or("", |(s, _)| s);
        if scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("wss") {
            self.client_config()
        } else {
            TlsRoots::Bundled.client_config()
        }
    }
}

#[cfg(feature = "config")]
impl TlsRoots {
    /// The root certificates these roots stand for, read once per process
    /// and kind: for a configuration [`TlsRoots::client_config`] does not
    /// make (SIP over TLS with a client certificate).
    ///
    /// # Errors
    /// As [`TlsRoots::client_config`].
    pub fn root_store(self) -> Result<Arc<rustls::RootCertStore>, TlsError> {
        static SYSTEM: OnceLock<Result<Arc<rustls::RootCertStore>, TlsError>> = OnceLock::new();
        static BUNDLED: OnceLock<Result<Arc<rustls::RootCertStore>, TlsError>> = OnceLock::new();
        match self {
            TlsRoots::System => SYSTEM
                .get_or_init(|| {
                    system_store(rustls_native_certs::load_native_certs()).map(Arc::new)
                })
                .clone(),
            TlsRoots::Bundled => BUNDLED
                .get_or_init(|| {
                    Ok(Arc::new(rustls::RootCertStore {
                        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                    }))
                })
                .clone(),
        }
    }
}

/// The crypto provider of every callbridge TLS configuration (aws-lc-rs),
/// for configurations built outside this crate (a SIP TLS listener).
#[cfg(feature = "config")]
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The configuration for what was read from the system store: warns about
/// load errors, fails when nothing usable was found.
#[cfg(feature = "config")]
fn system_roots(
    loaded: rustls_native_certs::CertificateResult,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    config(system_store(loaded)?)
}

/// The store of what was read from the system store (see `system_roots`).
#[cfg(feature = "config")]
fn system_store(
    loaded: rustls_native_certs::CertificateResult,
) -> Result<rustls::RootCertStore, TlsError> {
    let errors = loaded.errors.len();
    for e in &loaded.errors {
        tracing::warn!(error = %e, "system trust store: a certificate source could not be read");
    }
    let mut store = rustls::RootCertStore::empty();
    let (added, ignored) = store.add_parsable_certificates(loaded.certs);
    if ignored > 0 {
        tracing::warn!(ignored, "system trust store: unusable certificates ignored");
    }
    if added == 0 {
        tracing::warn!(
            errors,
            "system trust store has no usable root certificate; outbound TLS will fail \
             unless the bundled roots are selected"
        );
        return Err(TlsError::NoSystemRoots { errors });
    }
    tracing::debug!(roots = added, "system trust store loaded");
    Ok(store)
}

/// rustls on the aws-lc-rs provider (given explicitly: nothing depends on
/// a process-wide default) with `roots`.
#[cfg(feature = "config")]
fn config(roots: rustls::RootCertStore) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|_| TlsError::Setup)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(all(test, feature = "config"))]
mod tests {
    use super::*;

    fn loaded(certs: Vec<Vec<u8>>) -> rustls_native_certs::CertificateResult {
        let mut r = rustls_native_certs::CertificateResult::default();
        r.certs = certs.into_iter().map(Into::into).collect();
        r
    }

    #[test]
    fn empty_system_store_is_an_error_that_names_the_fallback() {
        let err = system_roots(loaded(Vec::new())).unwrap_err();
        assert_eq!(err, TlsError::NoSystemRoots { errors: 0 });
        assert!(err.to_string().contains("bundled roots"), "{err}");
    }

    #[test]
    fn system_store_of_garbage_only_is_an_error() {
        let err = system_roots(loaded(vec![b"not a certificate".to_vec()])).unwrap_err();
        assert!(matches!(err, TlsError::NoSystemRoots { .. }), "{err:?}");
    }

    #[test]
    fn bundled_roots_always_make_a_configuration() {
        let a = TlsRoots::Bundled.client_config().unwrap();
        let b = TlsRoots::Bundled.client_config().unwrap();
        assert!(Arc::ptr_eq(&a, &b), "made once per process");
    }

    #[test]
    fn plain_urls_never_read_the_system_store() {
        let bundled = TlsRoots::Bundled.client_config().unwrap();
        for url in [
            "http://127.0.0.1:8080",
            "HTTP://agent",
            "ws://x",
            "no scheme",
        ] {
            let c = TlsRoots::System.client_config_for(url).unwrap();
            assert!(Arc::ptr_eq(&c, &bundled), "{url}");
        }
        for url in ["https://api.twilio.com", "HTTPS://x", "wss://x"] {
            let c = TlsRoots::Bundled.client_config_for(url).unwrap();
            assert!(Arc::ptr_eq(&c, &bundled), "{url}");
            // The system store's configuration (or its error) is another.
            match TlsRoots::System.client_config_for(url) {
                Ok(c) => assert!(!Arc::ptr_eq(&c, &bundled), "{url}"),
                Err(e) => assert!(matches!(e, TlsError::NoSystemRoots { .. })),
            }
        }
    }

    #[test]
    fn configurations_carry_the_aws_lc_rs_provider_explicitly() {
        // Nothing installed a process default: the provider comes with the
        // configuration, so no caller depends on global state.
        assert!(rustls::crypto::CryptoProvider::get_default().is_none());
        let names = |p: &rustls::crypto::CryptoProvider| {
            p.kx_groups.iter().map(|g| g.name()).collect::<Vec<_>>()
        };
        let ours = TlsRoots::Bundled.client_config().unwrap();
        let want = rustls::crypto::aws_lc_rs::default_provider();
        assert_eq!(names(ours.crypto_provider()), names(&want));
        // aws-lc-rs offers the post-quantum hybrid group; ring does not.
        assert!(
            names(&want).contains(&rustls::NamedGroup::X25519MLKEM768),
            "{:?}",
            names(&want)
        );
    }

    #[test]
    fn roots_parse_from_their_configuration_names() {
        for r in [TlsRoots::System, TlsRoots::Bundled] {
            assert_eq!(r.as_str().parse::<TlsRoots>(), Ok(r));
        }
        assert_eq!("SYSTEM".parse::<TlsRoots>(), Ok(TlsRoots::System));
        assert_eq!("webpki".parse::<TlsRoots>(), Err(TlsError::UnknownRoots));
    }
}
