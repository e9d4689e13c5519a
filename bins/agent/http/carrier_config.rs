//! The carriers this agent takes calls from (issue 9), validated with
//! their secrets by [`crate::settings`] (`[carrier.twilio]`,
//! `[carrier.vonage]` and the variables listed there): what the webhook
//! handlers and the media WebSockets need to know about each one.

use std::time::Duration;

use callbridge_carrier::vonage_jwt::VonageBearer;
use callbridge_redact::Secret;

/// One enabled carrier, validated, with its secrets (`Debug` prints them
/// `<redacted>`).
#[derive(Debug, Clone)]
pub struct CarrierEntry {
    /// `https://host[:port]` without a trailing slash.
    pub public_url: String,
    /// Check signatures.
    pub verify_signatures: bool,
    /// REST API base.
    pub api_base: String,
    /// Twilio auth token / Vonage signature secret (needed when signatures
    /// are checked).
    pub secret: Option<Secret<String>>,
    /// The Vonage REST hangup's bearer (minted or fixed); `None`: no
    /// REST hangup.
    pub hangup_bearer: Option<VonageBearer>,
    /// How long a per-call stream token waits for its stream.
    pub stream_token_ttl: Duration,
    /// Vonage: our application id (`VONAGE_APPLICATION_ID`), when set;
    /// signed webhooks naming another application are refused.
    pub application_id: Option<String>,
}

impl CarrierEntry {
    /// The `wss://` (or `ws://`) form of the public URL.
    pub fn ws_base(&self) -> String {
        if let Some(rest) = self.public_url.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = self.public_url.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            self.public_url.clone()
        }
    }
}

/// The enabled carriers.
#[derive(Debug, Clone, Default)]
pub struct CarrierSettings {
    /// Twilio, when enabled.
    pub twilio: Option<CarrierEntry>,
    /// Vonage, when enabled.
    pub vonage: Option<CarrierEntry>,
}
