//! The model providers a routing profile may choose (issue 23: "provider
//! and model" per profile): each a client built once (at start, and again
//! when the profiles are replaced) with what its calls' model sessions
//! take from it, so one agent can run Gemini calls next to GPT-Live calls.

use std::sync::Arc;

use callbridge_llm_bridge::{ApiKey, AudioFormat, RealtimeModel, SessionConfig};

/// One configured provider's client and its calls' settings.
///
/// ```
/// use std::sync::Arc;
/// use callbridge_llm_bridge::{AudioFormat, GptLive, SessionConfig};
/// use callbridge_session::profile::provider::ModelClient;
/// let live = ModelClient {
///     name: "gpt-live".into(),
///     client: Arc::new(GptLive::new()),
///     endpoint: Some("wss://example.test/v1/live/sessions".into()),
///     api_key: None,
///     model: "gpt-live-1".into(),
///     formats: Some((AudioFormat::Pcmu, AudioFormat::Pcmu)),
/// };
/// // A call's model session moved onto this provider.
/// let mut m = SessionConfig::default();
/// live.apply(&mut m);
/// assert_eq!(m.endpoint.as_deref(), Some("wss://example.test/v1/live/sessions"));
/// assert_eq!((m.input_format, m.output_format), (AudioFormat::Pcmu, AudioFormat::Pcmu));
/// ```
#[derive(Clone)]
pub struct ModelClient {
    /// The provider's name as configured (`gemini`, `openai`,
    /// `gpt-live`, `mock`): what profiles name, rows and metrics say.
    pub name: String,
    /// The client.
    pub client: Arc<dyn RealtimeModel>,
    /// Its endpoint (`None`: the provider's public one).
    pub endpoint: Option<String>,
    /// Its API key.
    pub api_key: Option<ApiKey>,
    /// The model its calls use when the profile names none.
    pub model: String,
    /// The audio formats to and from the model, when they differ from the
    /// agent's (G.711 both ways for the OpenAI protocols).
    pub formats: Option<(AudioFormat, AudioFormat)>,
}

impl std::fmt::Debug for ModelClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key stays out of any log line.
        f.debug_struct("ModelClient")
            .field("name", &self.name)
            .field("provider", &self.client.provider())
            .field("endpoint", &self.endpoint)
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

impl ModelClient {
    /// A call's model session template moved onto this provider: its
    /// endpoint, key and formats (the model id is the profile's).
    pub fn apply(&self, m: &mut SessionConfig) {
        m.endpoint.clone_from(&self.endpoint);
        m.api_key.clone_from(&self.api_key);
        if let Some((input, output)) = self.formats {
            m.input_format = input;
            m.output_format = output;
        }
    }
}

/// What a profile's `provider` may name besides the agent's own
/// (`model.provider`): each configured provider's client, or why it
/// cannot be used (e.g. its API key is not set).
pub type ProviderChoices = std::collections::BTreeMap<String, Result<Arc<ModelClient>, String>>;
