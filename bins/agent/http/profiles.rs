//! `GET /api/profiles` and `PUT /api/profiles` (issue 23): the routing
//! profiles in force, and their replacement as a whole.
//!
//! The body of both is `callbridge_session::profile::ProfilesDoc`:
//! `{"default_profile": "...", "profiles": [...]}`. A `PUT` is checked
//! whole against the agent's own settings (`Profiles::load`); any error
//! refuses it, and the 400 names every error at once:
//! `{"error": "...", "errors": [{"profile", "index", "field",
//! "message"}]}`. An accepted set is first written to the profiles file
//! (`routing.profiles_file`, replaced atomically: a restart keeps it),
//! then applied to the calls that start from then on; calls in progress
//! keep their profile. Admin only, both (a profile holds prompts).

use std::path::PathBuf;
use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use callbridge_session::profile::{ProfileDefaults, Profiles, ProfilesDoc};
use tracing::info;

use super::auth::Caller;
use super::error::{ApiError, Json};
use super::state::Ctx;

/// What `PUT /api/profiles` needs besides the manager.
#[derive(Debug)]
pub struct ProfileAdmin {
    /// What every profile falls back to.
    pub defaults: ProfileDefaults,
    /// Where an accepted set is kept.
    pub file: PathBuf,
    /// The file access of what the agent writes.
    pub access: callbridge_files::Access,
    /// One `PUT` at a time: the file and the manager agree.
    pub lock: tokio::sync::Mutex<()>,
    /// `model.providers`: their clients are built again, with the keys
    /// set now, for each `PUT` (a profile naming one whose key is not set
    /// is refused with the others' errors).
    pub others: Vec<crate::settings::providers::OtherProvider>,
    /// `model.delegation_model`, for a GPT-Live client among them.
    pub delegation_model: Option<String>,
}

/// The document of a profile set.
pub fn doc(p: &Profiles) -> ProfilesDoc {
    ProfilesDoc {
        default_profile: p.default_name().map(str::to_owned),
        profiles: p.specs(),
    }
}

/// `GET /api/profiles`.
#[utoipa::path(get, path = "/api/profiles", tag = "profiles",
    description = "The routing profiles in force: `{\"default_profile\", \"profiles\": [...]}` with the fields of agent.toml's `[[profiles]]` (admin).",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The profile set", body = Object),
        (status = 401, description = "No valid token", body = callbridge_api::ErrorBody),
        (status = 403, description = "Not an admin", body = callbridge_api::ErrorBody)))]
pub async fn get(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<ProfilesDoc>, ApiError> {
    caller.require_admin()?;
    Ok(Json(doc(&ctx.state.manager.profiles())))
}

/// `PUT /api/profiles`.
#[utoipa::path(put, path = "/api/profiles", tag = "profiles",
    description = "Replace the whole profile set, checked whole; applies to calls that start from then on (admin).",
    request_body(content = Object, description = "`{\"default_profile\", \"profiles\": [...]}` as `GET` returns it"),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The new set, in force", body = Object),
        (status = 400, description = "Every error, in `errors: [{profile, index, field, message}]`", body = Object),
        (status = 401, description = "No valid token", body = callbridge_api::ErrorBody),
        (status = 403, description = "Not an admin", body = callbridge_api::ErrorBody),
        (status = 501, description = "Profiles cannot be replaced on this agent", body = callbridge_api::ErrorBody)))]
pub async fn put(
    State(ctx): State<Ctx>,
    Extension(caller): Extension<Caller>,
    body: Result<Json<ProfilesDoc>, ApiError>,
) -> Result<Response, ApiError> {
    caller.require_admin()?;
    let Json(new) = body?;
    let Some(admin) = ctx.state.profiles.clone() else {
        return Err(ApiError::NotConfigured(
            "profiles cannot be replaced on this agent".into(),
        ));
    };
    let mut defaults = admin.defaults.clone();
    if !admin.others.is_empty() {
        let env: std::collections::BTreeMap<String, String> = std::env::vars().collect();
        defaults.providers = crate::settings::providers::choices(
            &admin.others,
            Some(&env),
            admin.delegation_model.as_deref(),
        );
    }
    let profiles = match Profiles::load(&new.profiles, new.default_profile.as_deref(), &defaults) {
        Ok(p) => p,
        Err(errors) => {
            let list: Vec<serde_json::Value> = errors
                .iter()
                .map(|e| {
                    serde_json::json!({
                        "profile": e.name,
                        "index": e.index,
                        "field": e.field,
                        "message": e.message,
                    })
                })
                .collect();
            let body = serde_json::json!({
                "error": format!(
                    "{} error(s) in the profiles; nothing was changed: {}",
                    errors.len(),
                    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
                ),
                "errors": list,
            });
            return Ok((StatusCode::BAD_REQUEST, axum::Json(body)).into_response());
        }
    };
    let _one = admin.lock.lock().await;
    let text = serde_json::to_vec_pretty(&doc(&profiles)).map_err(ApiError::internal)?;
    let writer = Arc::clone(&admin);
    tokio::task::spawn_blocking(move || write_atomically(&writer.file, &text, writer.access))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::internal(format!("the profiles file: {e}")))?;
    let count = new.profiles.len();
    ctx.state.manager.set_profiles(profiles);
    info!(
        user = caller.0.id.0,
        profiles = count,
        "routing profiles replaced"
    );
    Ok(Json(doc(&ctx.state.manager.profiles())).into_response())
}

/// Writes `bytes` to `path` through a temporary file beside it and a
/// rename, so a crash leaves the old file or the new one, never half.
fn write_atomically(
    path: &std::path::Path,
    bytes: &[u8],
    access: callbridge_files::Access,
) -> std::io::Result<()> {
    use std::io::Write as _;
    let tmp = path.with_extension("json.tmp");
    let mut f = callbridge_files::create_file(&tmp, access)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}
