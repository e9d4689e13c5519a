//! The dialer's error: what went wrong and which exit status it means
//! (2 for bad usage or configuration, 1 for everything else).

use std::process::ExitCode;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CampaignError {
    /// Bad usage or configuration (exit status 2).
    #[error("{0}")]
    Usage(String),
    /// The store refused or failed.
    #[error("store: {0}")]
    Store(#[from] callbridge_crm_store::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The run failed (agent down too long, refused token, errors).
    #[error("{0}")]
    Failed(String),
}

impl CampaignError {
    /// The process exit status for this error.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            CampaignError::Usage(_)
            | CampaignError::Store(callbridge_crm_store::Error::InvalidInput { .. }) => {
                ExitCode::from(2)
            }
            _ => ExitCode::from(1),
        }
    }
}

impl From<callbridge_api::ClientError> for CampaignError {
    fn from(e: callbridge_api::ClientError) -> Self {
        match e {
            callbridge_api::ClientError::NotHttp { .. } => {
                CampaignError::Usage(format!("--agent {e}"))
            }
            // The host's trust store: configuration, like a bad flag.
            callbridge_api::ClientError::Tls { roots, source } => {
                CampaignError::Usage(format!("--tls-roots {roots}: {source}"))
            }
            _ => CampaignError::Failed(e.to_string()),
        }
    }
}

/// Result with [`CampaignError`].
pub type Result<T> = std::result::Result<T, CampaignError>;
