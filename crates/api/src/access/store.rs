//! The access keys, their grants, and the identity a request proved.

use super::managed::Managed;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// What a request does to a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Queries, listings, lookups, metadata reads.
    Read,
    /// Writes of data and of BlueKing group metadata.
    Write,
    /// Deletes, database create/drop, `/admin/*`.
    Admin,
}

impl Action {
    pub(super) fn bit(self) -> u8 {
        match self {
            Self::Read => 1,
            Self::Write => 2,
            Self::Admin => 4,
        }
    }

    /// The word used in error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Admin => "administer",
        }
    }
}

/// The `[auth]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Access keys for every API. None here, in `[baidu] credentials` or
    /// in `[bkmonitor] esb_apps`: the server is open.
    pub credentials: Vec<KeyConfig>,
    /// Longest validity period a `bce-auth-v1` signature (header or
    /// presigned URL) may claim.
    pub max_signature_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            credentials: Vec::new(),
            max_signature_secs: 7 * 86_400,
        }
    }
}

/// One access key as configured.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Database name (or `"*"` for every database) → actions.
    pub grants: BTreeMap<String, Vec<Action>>,
}

/// Hand-written so secrets never reach logs.
impl fmt::Debug for KeyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyConfig")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("grants", &self.grants)
            .finish()
    }
}

/// A grant as a [`KeyConfig`] lists it, for keys converted from older
/// sections.
pub type GrantConfig = BTreeMap<String, Vec<Action>>;

/// An access key with its secrets and grants.
pub struct Principal {
    access_key_id: String,
    /// Several for BlueKing apps, which may rotate secrets.
    secrets: Vec<String>,
    secret_digests: Vec<[u8; 32]>,
    /// Database (or `"*"`) → action bits.
    grants: Vec<(String, u8)>,
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Principal")
            .field("access_key_id", &self.access_key_id)
            .field("grants", &self.grants)
            .finish_non_exhaustive()
    }
}

impl Principal {
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// The plain secrets, for signature schemes that need them as keys.
    pub fn secrets(&self) -> &[String] {
        &self.secrets
    }

    /// Whether the key may do `action` on `database`.
    pub fn may(&self, database: &str, action: Action) -> bool {
        self.grants
            .iter()
            .any(|(db, bits)| (db == "*" || db == database) && bits & action.bit() != 0)
    }

    /// Whether the key may do `action` on every database (server-wide
    /// operations such as `/admin/compact`).
    pub fn may_all(&self, action: Action) -> bool {
        self.grants
            .iter()
            .any(|(db, bits)| db == "*" && bits & action.bit() != 0)
    }

    /// The key's grants as configured: database (or `"*"`) to actions.
    pub fn grants(&self) -> GrantConfig {
        let all = [Action::Read, Action::Write, Action::Admin];
        self.grants
            .iter()
            .map(|(db, bits)| {
                let actions = all.into_iter().filter(|a| bits & a.bit() != 0);
                (db.clone(), actions.collect())
            })
            .collect()
    }

    /// Whether the key has any grant on `database`.
    pub fn knows(&self, database: &str) -> bool {
        self.grants
            .iter()
            .any(|(db, bits)| (db == "*" || db == database) && *bits != 0)
    }
}

/// What a request proved about its caller.
#[derive(Debug, Clone)]
pub enum Identity {
    /// No key is configured: everything is allowed.
    Open,
    Key(Arc<Principal>),
}

impl Identity {
    pub fn may(&self, database: &str, action: Action) -> bool {
        match self {
            Self::Open => true,
            Self::Key(p) => p.may(database, action),
        }
    }

    pub fn may_all(&self, action: Action) -> bool {
        match self {
            Self::Open => true,
            Self::Key(p) => p.may_all(action),
        }
    }

    /// Whether a listing of databases shows `database`.
    pub fn knows(&self, database: &str) -> bool {
        match self {
            Self::Open => true,
            Self::Key(p) => p.knows(database),
        }
    }

    /// A refusal message for `action` on `database`.
    pub fn denial(&self, database: &str, action: Action) -> String {
        match self {
            Self::Open => format!("may not {} database {database}", action.as_str()),
            Self::Key(p) => format!(
                "access key {} may not {} database {database}",
                p.access_key_id,
                action.as_str()
            ),
        }
    }
}

/// Every access key of the server: those of its configuration, fixed,
/// and those made through `/admin/keys` (`super::managed`).
#[derive(Debug, Default)]
pub struct Store {
    configured: HashMap<String, Arc<Principal>>,
    pub(super) managed: Managed,
    /// Longest validity a signature may claim, in seconds.
    pub max_signature_secs: u64,
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

impl Store {
    /// Builds the store from `[auth]` and keys converted from older
    /// sections; refuses duplicate or empty ids, empty secrets and keys
    /// without grants.
    pub fn new(
        config: &Config,
        converted: impl IntoIterator<Item = (String, Vec<String>, GrantConfig)>,
    ) -> Result<Self, String> {
        let mut keys = HashMap::new();
        let own = config.credentials.iter().map(|k| {
            (
                k.access_key_id.clone(),
                vec![k.secret_access_key.clone()],
                k.grants.clone(),
            )
        });
        for (id, secrets, grants) in own.chain(converted) {
            let principal = principal(id.clone(), secrets, grants)?;
            if keys.insert(id.clone(), Arc::new(principal)).is_some() {
                return Err(format!("access key {id} is configured twice"));
            }
        }
        Ok(Self {
            configured: keys,
            managed: Managed::default(),
            max_signature_secs: config.max_signature_secs,
        })
    }

    /// Whether any key exists, configured or made at run time (then
    /// every route needs one).
    pub fn is_enabled(&self) -> bool {
        !self.configured.is_empty() || self.managed.any()
    }

    /// The identity of an unauthenticated request: everything when the
    /// store is empty, `None` (refuse) otherwise.
    pub fn anonymous(&self) -> Option<Identity> {
        (!self.is_enabled()).then_some(Identity::Open)
    }

    /// The key, for signature schemes that recompute a MAC.
    pub fn key(&self, access_key_id: &str) -> Option<Arc<Principal>> {
        match self.configured.get(access_key_id) {
            Some(p) => Some(p.clone()),
            None => self.managed.get(access_key_id),
        }
    }

    /// The configured key `access_key_id`.
    pub(super) fn configured(&self, access_key_id: &str) -> Option<&Arc<Principal>> {
        self.configured.get(access_key_id)
    }

    /// The configured keys, by id.
    pub(super) fn configured_keys(&self) -> impl Iterator<Item = &Arc<Principal>> {
        self.configured.values()
    }

    /// `identity` as the keys stand now: a key since revoked or given
    /// another secret or other grants, or the open identity of a server
    /// that has keys now, is no identity (`None`): sessions that proved
    /// who they are once (telnet) check again with it.
    pub fn current(&self, identity: Option<Identity>) -> Option<Identity> {
        match identity? {
            Identity::Open => self.anonymous(),
            Identity::Key(was) => {
                let now = self.key(&was.access_key_id)?;
                let same = now.secret_digests == was.secret_digests && now.grants == was.grants;
                same.then_some(Identity::Key(now))
            }
        }
    }

    /// Checks a plain secret. An unknown key costs the same work as a
    /// wrong secret and fails the same way.
    pub fn check_secret(&self, access_key_id: &str, secret: &str) -> Option<Identity> {
        let given = digest(secret);
        let principal = self.key(access_key_id);
        let candidates = principal
            .as_ref()
            .map_or(&[[0u8; 32]][..], |p| &p.secret_digests[..]);
        let matched = candidates
            .iter()
            .fold(0u8, |ok, d| ok | d.ct_eq(&given).unwrap_u8());
        match (principal, matched) {
            (Some(p), 1) => Some(Identity::Key(p)),
            _ => None,
        }
    }
}

/// A key from its id, secrets and grants; refuses an empty id or secret
/// and a key without grants.
pub(super) fn principal(
    id: String,
    secrets: Vec<String>,
    grants: GrantConfig,
) -> Result<Principal, String> {
    if id.is_empty() {
        return Err("an access key has an empty access_key_id".into());
    }
    if secrets.is_empty() || secrets.iter().any(String::is_empty) {
        return Err(format!("access key {id} has an empty secret"));
    }
    let grants: Vec<(String, u8)> = grants
        .into_iter()
        .map(|(db, actions)| (db, actions.iter().fold(0, |bits, a| bits | a.bit())))
        .filter(|(_, bits)| *bits != 0)
        .collect();
    if grants.is_empty() {
        return Err(format!("access key {id} has no grants"));
    }
    Ok(Principal {
        access_key_id: id,
        secret_digests: secrets.iter().map(|s| digest(s)).collect(),
        secrets,
        grants,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> Result<Store, String> {
        let config: Config = toml::from_str(
            r#"
            [[credentials]]
            access_key_id = "reader"
            secret_access_key = "r-secret"
            grants = { metrics = ["read"] }
            [[credentials]]
            access_key_id = "root"
            secret_access_key = "root-secret"
            grants = { "*" = ["read", "write", "admin"] }
            "#,
        )
        .map_err(|e| e.to_string())?;
        Store::new(
            &config,
            [(
                "bk_app".to_owned(),
                vec!["one".to_owned(), "two".to_owned()],
                GrantConfig::from([("default".to_owned(), vec![Action::Write])]),
            )],
        )
    }

    #[test]
    fn grants_are_per_database_and_action() -> Result<(), String> {
        let s = store()?;
        let reader = s.check_secret("reader", "r-secret").ok_or("reader")?;
        assert!(reader.may("metrics", Action::Read));
        assert!(!reader.may("metrics", Action::Write));
        assert!(!reader.may("default", Action::Read));
        assert!(!reader.may_all(Action::Read));
        assert!(reader.knows("metrics") && !reader.knows("other"));
        let root = s.check_secret("root", "root-secret").ok_or("root")?;
        assert!(root.may("anything", Action::Admin) && root.may_all(Action::Admin));
        // Either of a BlueKing app's secrets.
        for secret in ["one", "two"] {
            let app = s.check_secret("bk_app", secret).ok_or("bk_app")?;
            assert!(app.may("default", Action::Write) && !app.may("default", Action::Read));
        }
        Ok(())
    }

    #[test]
    fn unknown_key_and_wrong_secret_fail_alike() -> Result<(), String> {
        let s = store()?;
        assert!(s.check_secret("reader", "wrong").is_none());
        assert!(s.check_secret("nobody", "r-secret").is_none());
        assert!(s.check_secret("reader", "").is_none());
        assert!(s.is_enabled() && s.anonymous().is_none());
        let open = Store::new(&Config::default(), [])?;
        assert!(!open.is_enabled());
        assert!(matches!(open.anonymous(), Some(Identity::Open)));
        Ok(())
    }

    #[test]
    fn bad_keys_are_refused() {
        let grants = || GrantConfig::from([("*".to_owned(), vec![Action::Read])]);
        let key =
            |id: &str, secret: &str, g: GrantConfig| (id.to_owned(), vec![secret.to_owned()], g);
        for (keys, want) in [
            (vec![key("", "s", grants())], "empty access_key_id"),
            (vec![key("a", "", grants())], "empty secret"),
            (vec![key("a", "s", GrantConfig::new())], "no grants"),
            (
                vec![key("a", "s", grants()), key("a", "t", grants())],
                "configured twice",
            ),
        ] {
            let e = Store::new(&Config::default(), keys)
                .err()
                .unwrap_or_default();
            assert!(e.contains(want), "{e}");
        }
    }
}
