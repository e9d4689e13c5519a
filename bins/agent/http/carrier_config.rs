//! The carriers this agent takes calls from (issue 9), validated with
//! their secrets by [`crate::settings`] (`[carrier.twilio]`,
//! `[carrier.vonage]` and the variables listed there): what the webhook
//! handlers and the media WebSockets need to know about each one.

use std::time::Duration;

use callbridge_carrier::vonage_jwt::VonageBearer;

/// One enabled carrier, validated, with its secrets.
#[derive(Clone)]
pub struct CarrierEntry {
    /// `https://host[:port]` without a trailing slash.
    pub public_url: String,
    /// Check signatures.
    pub verify_signatures: bool,
    /// REST API base.
    pub api_base: String,
    /// Twilio auth token / Vonage signature secret (needed when signatures
    /// are checked).
    pub secret: Option<String>,
    /// The Vonage REST hangup's bearer (minted or fixed); `None`: no
    /// REST hangup.
    pub hangup_bearer: Option<VonageBearer>,
    /// How long a per-call stream token waits for its stream.
    pub stream_token_ttl: Duration,
    /// Vonage: our application id (`VONAGE_APPLICATION_ID`), when set;
    /// signed webhooks naming another application are refused.
    pub application_id: Option<String>,
}

impl std::fmt::Debug for CarrierEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CarrierEntry")
            .field("public_url", &self.public_url)
            .field("verify_signatures", &self.verify_signatures)
            .field("api_base", &self.api_base)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("hangup_bearer", &self.hangup_bearer)
            .field("stream_token_ttl", &self.stream_token_ttl)
            .field("application_id", &self.application_id)
            .finish()
    }
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
