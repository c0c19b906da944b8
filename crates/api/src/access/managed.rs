//! Access keys made at run time (`/admin/keys`; docs/config.md, "Access
//! control"): kept in a document, a file in the data directory on a
//! single node and PostgreSQL on a cluster, where every node reads it
//! again each second (`Store::reload`). The configuration's keys are fixed: a key made here
//! cannot take one's id. A change that would leave keys but none that
//! may administer every database is refused, so no change locks the
//! operators out; so is removing the last key, which would open the
//! server to every caller.

use super::store::{GrantConfig, Principal, Store, principal};
use crate::shared::SharedDocument;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Most keys `/admin/keys` keeps: each is checked on every reload.
pub const MAX_MANAGED_KEYS: usize = 10_000;

/// Times a change is tried against other nodes' changes.
const ATTEMPTS: usize = 16;

/// One key made through `/admin/keys`, as its document keeps it.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManagedKey {
    pub secret_access_key: String,
    /// Database (or `"*"`) → actions.
    pub grants: GrantConfig,
}

impl std::fmt::Debug for ManagedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagedKey")
            .field("grants", &self.grants)
            .finish_non_exhaustive()
    }
}

/// A change of the managed keys.
#[derive(Debug, Clone)]
pub enum KeyChange {
    /// Makes key `id`, or replaces its secret and grants.
    Put {
        id: String,
        key: ManagedKey,
    },
    Remove {
        id: String,
    },
}

/// One key as `/admin/keys` lists it: never its secret.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListedKey {
    pub access_key_id: String,
    pub grants: GrantConfig,
    /// `"config"` (fixed) or `"admin"` (made through `/admin/keys`).
    pub source: &'static str,
}

/// Why a change of the managed keys was refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{0}")]
    Invalid(String),
    #[error("access key {0} is set in the server's configuration; change it there")]
    Configured(String),
    #[error("no access key {0} was made through /admin/keys")]
    NotFound(String),
    #[error("the change would leave no key that may administer every database (\"*\")")]
    LockOut,
    #[error(
        "removing the last access key would open the server to every caller; make another first"
    )]
    Opens,
    #[error("at most {MAX_MANAGED_KEYS} keys can be made through /admin/keys")]
    TooMany,
    #[error("this server keeps no access keys of its own")]
    NoBook,
    #[error("the key store: {0}; retry")]
    Unreachable(std::io::Error),
    #[error("other nodes kept changing the access keys; retry")]
    Busy,
}

type Book = BTreeMap<String, ManagedKey>;

/// The keys of the document, and where it is.
#[derive(Debug, Default)]
pub(super) struct Managed {
    book: Option<Arc<dyn SharedDocument>>,
    /// Whether other nodes, with configurations of their own, share the
    /// book (a cluster): then its keys must stand on their own.
    shared: bool,
    keys: RwLock<HashMap<String, Arc<Principal>>>,
    /// The stored version `keys` is.
    version: Mutex<i64>,
}

impl Managed {
    pub(super) fn any(&self) -> bool {
        !self.keys.read().is_empty()
    }

    pub(super) fn get(&self, access_key_id: &str) -> Option<Arc<Principal>> {
        self.keys.read().get(access_key_id).cloned()
    }
}

impl Store {
    /// Keeps keys made through `/admin/keys` in `book`, loading those it
    /// holds; `shared`: every node of a cluster reads the same book.
    /// Blocks (a document's calls do).
    pub fn with_book(
        mut self,
        book: Arc<dyn SharedDocument>,
        shared: bool,
    ) -> std::io::Result<Self> {
        self.managed.book = Some(book);
        self.managed.shared = shared;
        self.reload()?;
        Ok(self)
    }

    /// Reads the managed keys again if the document changed (another
    /// node's change). Blocks.
    pub fn reload(&self) -> std::io::Result<()> {
        let Some(book) = &self.managed.book else {
            return Ok(());
        };
        let mut version = self.managed.version.lock();
        if book.version()? == *version {
            return Ok(());
        }
        let (stored, keys) = load(&**book)?;
        let principals = self
            .principals(&keys, true)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        // Only a hand-edited book gets here: the API never empties one.
        if principals.is_empty() && self.configured_keys().next().is_none() && self.managed.any() {
            return Err(std::io::Error::other(
                "the stored access keys are gone, which would open this node to every caller; \
                 keeping the last ones",
            ));
        }
        *self.managed.keys.write() = principals;
        *version = stored;
        Ok(())
    }

    /// Every key: the configuration's, then the managed ones, by id.
    pub fn listed(&self) -> Vec<ListedKey> {
        let listed = |p: &Arc<Principal>, source| ListedKey {
            access_key_id: p.access_key_id().to_owned(),
            grants: p.grants(),
            source,
        };
        let mut keys: Vec<ListedKey> = self
            .configured_keys()
            .map(|p| listed(p, "config"))
            .collect();
        keys.extend(
            self.managed
                .keys
                .read()
                .values()
                .map(|p| listed(p, "admin")),
        );
        keys.sort_by(|a, b| a.access_key_id.cmp(&b.access_key_id));
        keys
    }

    /// Applies `change` to the managed keys and stores them; in force on
    /// this node at once, on other nodes of a cluster within a second.
    /// Blocks.
    pub fn change(&self, change: &KeyChange) -> Result<(), KeyError> {
        let book = self.managed.book.as_ref().ok_or(KeyError::NoBook)?;
        if let KeyChange::Put { id, key } = change {
            validate(id, key)?;
        }
        let id = match change {
            KeyChange::Put { id, .. } | KeyChange::Remove { id } => id,
        };
        if self.configured(id).is_some() {
            return Err(KeyError::Configured(id.clone()));
        }
        let mut installed = self.managed.version.lock();
        for _ in 0..ATTEMPTS {
            let (version, mut keys) = load(&**book).map_err(KeyError::Unreachable)?;
            let keys_before_empty = keys.is_empty();
            match change {
                KeyChange::Put { id, key } => {
                    keys.insert(id.clone(), key.clone());
                }
                KeyChange::Remove { id } => {
                    keys.remove(id)
                        .ok_or_else(|| KeyError::NotFound(id.clone()))?;
                }
            }
            if keys.len() > MAX_MANAGED_KEYS {
                return Err(KeyError::TooMany);
            }
            let principals = self.principals(&keys, true).map_err(KeyError::Invalid)?;
            if self.managed.shared {
                // Every node sees the whole book, whatever ids this one's
                // configuration shadows.
                let whole = self.principals(&keys, false).map_err(KeyError::Invalid)?;
                self.check_administrable(&whole, keys_before_empty)?;
            } else {
                self.check_administrable(&principals, keys_before_empty)?;
            }
            let body = serde_json::to_vec(&keys).map_err(|e| KeyError::Invalid(e.to_string()))?;
            if book.store(version, &body).map_err(KeyError::Unreachable)? {
                *self.managed.keys.write() = principals;
                *installed = version + 1;
                return Ok(());
            }
        }
        Err(KeyError::Busy)
    }

    /// Refuses managed keys `principals` that would leave keys but none
    /// that may administer every database, or no key at all where there
    /// were some.
    fn check_administrable(
        &self,
        principals: &HashMap<String, Arc<Principal>>,
        keys_before_empty: bool,
    ) -> Result<(), KeyError> {
        // On a cluster another node may have no configured key: the
        // book's keys must keep every node closed and administrable.
        let configured = self.configured_keys().filter(|_| !self.managed.shared);
        let mut all = configured.chain(principals.values()).peekable();
        if all.peek().is_none() {
            return match keys_before_empty {
                true => Ok(()),
                false => Err(KeyError::Opens),
            };
        }
        match all.any(|p| p.may_all(super::Action::Admin)) {
            true => Ok(()),
            false => Err(KeyError::LockOut),
        }
    }

    /// The principals of `keys`; with `shadowed_out`, one with a
    /// configured key's id is left out (the configuration wins).
    fn principals(
        &self,
        keys: &Book,
        shadowed_out: bool,
    ) -> Result<HashMap<String, Arc<Principal>>, String> {
        let mut principals = HashMap::new();
        for (id, key) in keys {
            if shadowed_out && self.configured(id).is_some() {
                continue;
            }
            let p = principal(
                id.clone(),
                vec![key.secret_access_key.clone()],
                key.grants.clone(),
            )?;
            principals.insert(id.clone(), Arc::new(p));
        }
        Ok(principals)
    }
}

/// The document's keys and its version (0 and none before a first store).
fn load(book: &dyn SharedDocument) -> std::io::Result<(i64, Book)> {
    match book.load()? {
        None => Ok((0, Book::new())),
        Some((version, body)) => {
            let keys = serde_json::from_slice(&body)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            Ok((version, keys))
        }
    }
}

/// Ids a signature's `Authorization` string and a Basic header both
/// carry without escaping.
fn validate(id: &str, key: &ManagedKey) -> Result<(), KeyError> {
    let invalid = |m: String| Err(KeyError::Invalid(m));
    let id_chars = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if id.is_empty() || id.len() > 128 || !id.chars().all(id_chars) {
        return invalid(format!(
            "access key id {id:?}: 1 to 128 letters, digits, '-', '_' or '.'"
        ));
    }
    let secret = &key.secret_access_key;
    if secret.is_empty() || secret.len() > 256 || secret.chars().any(char::is_control) {
        return invalid("secret_access_key: 1 to 256 bytes, no control character".into());
    }
    if key.grants.is_empty() {
        return invalid("grants: at least one database with its actions".into());
    }
    for (database, actions) in &key.grants {
        if database.is_empty() || database.len() > 255 || database.chars().any(char::is_control) {
            return invalid(format!("grants: database name {database:?}"));
        }
        if actions.is_empty() {
            return invalid(format!("grants: no action for database {database:?}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
