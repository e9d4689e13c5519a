//! Loading: read the file, layer the environment over it, validate every
//! key and (for `run` and `check-config`) read the secrets; every error of
//! the whole pass comes back together.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::check::Check;
use super::error::{ConfigError, ConfigErrors};
use super::secrets::Secrets;
use super::source::Sources;
use super::validate;
use super::values::{Needs, Settings};

impl Settings {
    /// Reads the file at `path`, overrides from `env` and validates it
    /// (without the secrets: the `user` and `store` commands need none).
    pub fn load(path: &Path, env: &BTreeMap<String, String>) -> Result<Settings, ConfigErrors> {
        let text = read(path)?;
        Settings::from_text(path, &text, env, &base_of(path))
    }

    /// Validates `text` as the file at `path`, with the overrides in
    /// `env`; relative paths in it are relative to `base`.
    pub fn from_text(
        path: &Path,
        text: &str,
        env: &BTreeMap<String, String>,
        base: &Path,
    ) -> Result<Settings, ConfigErrors> {
        let (settings, _, errors) = pass(path, text, env, base)?;
        finish(settings, errors)
    }
}

/// [`Settings::load`] and the secrets the settings need, with every
/// error of both.
pub fn load(
    path: &Path,
    env: &BTreeMap<String, String>,
) -> Result<(Settings, Secrets), ConfigErrors> {
    let text = read(path)?;
    from_text(path, &text, env, &base_of(path))
}

/// [`Settings::from_text`] and the secrets the settings need, with every
/// error of both.
pub fn from_text(
    path: &Path,
    text: &str,
    env: &BTreeMap<String, String>,
    base: &Path,
) -> Result<(Settings, Secrets), ConfigErrors> {
    let (settings, needs, mut errors) = pass(path, text, env, base)?;
    match settings {
        Some(mut settings) if errors.is_empty() => {
            let secrets = Secrets::from_env(&settings, env)?;
            // The profiles' other providers, with their keys now.
            super::providers::attach_keys(&mut settings, env)?;
            Ok((settings, secrets))
        }
        settings => {
            // Some key is bad: the secrets are checked too, so that one
            // pass reports everything.
            Secrets::read(&needs, None, env, &mut errors);
            finish(settings, errors).map(|s| (s, Secrets::default()))
        }
    }
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The directory relative paths in the file at `path` are relative to:
/// the file's own, made absolute (`agent run --config agent.toml` started
/// in `/srv/cb` resolves `recordings` to `/srv/cb/recordings`), so the
/// paths the agent stores (recordings on session rows) mean the same
/// thing to a dialer or an operator in another directory (issue 22). The
/// current directory unreadable: the relative directory as given.
fn base_of(path: &Path) -> PathBuf {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// One pass: sources, their problems, every key.
fn pass(
    path: &Path,
    text: &str,
    env: &BTreeMap<String, String>,
    base: &Path,
) -> Result<(Option<Settings>, Needs, Vec<ConfigError>), ConfigError> {
    let mut sources = Sources::new(path, text, env)?;
    let problems = sources.take_problems();
    let check = Check::new(&sources, problems);
    let (settings, needs) = validate::build(&check, base);
    let (errors, _) = check.finish();
    Ok((settings, needs, errors))
}

fn finish(settings: Option<Settings>, errors: Vec<ConfigError>) -> Result<Settings, ConfigErrors> {
    ConfigErrors::check(errors)?;
    // `build` returns `None` only after recording an error.
    settings.ok_or_else(|| {
        ConfigErrors::from(ConfigError::Missing {
            key: "(internal)".into(),
            expected: "a value for every key".into(),
        })
    })
}

#[cfg(test)]
pub(super) fn keys_read(path: &Path, text: &str) -> std::collections::BTreeSet<&'static str> {
    let Ok(mut sources) = Sources::new(path, text, &BTreeMap::new()) else {
        return Default::default();
    };
    let problems = sources.take_problems();
    let check = Check::new(&sources, problems);
    let _ = validate::build(&check, Path::new("/"));
    check.finish().1
}

#[cfg(test)]
mod base_tests {
    use super::base_of;
    use std::path::Path;

    #[test]
    fn a_relative_config_path_resolves_against_the_current_directory() {
        let cwd = std::env::current_dir().unwrap();
        let base = base_of(Path::new("agent.toml"));
        assert!(base.is_absolute(), "{}", base.display());
        assert_eq!(base.join("recordings"), cwd.join("recordings"));
        assert_eq!(base_of(Path::new("conf/agent.toml")), cwd.join("conf"));
        assert_eq!(
            base_of(Path::new("/etc/callbridge/agent.toml")),
            Path::new("/etc/callbridge")
        );
    }
}
