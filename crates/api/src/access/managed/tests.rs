use super::*;
use crate::access::{Action, Config, Identity};
use crate::shared::{FileDocument, MemoryDocument};

fn key(secret: &str, grants: &[(&str, &[Action])]) -> ManagedKey {
    ManagedKey {
        secret_access_key: secret.to_owned(),
        grants: grants
            .iter()
            .map(|(db, actions)| ((*db).to_owned(), actions.to_vec()))
            .collect(),
    }
}

fn put(id: &str, key: ManagedKey) -> KeyChange {
    KeyChange::Put {
        id: id.to_owned(),
        key,
    }
}

fn open_store(book: Arc<dyn SharedDocument>) -> Result<Store, String> {
    let store = Store::new(&Config::default(), [])?;
    store.with_book(book, false).map_err(|e| e.to_string())
}

/// A node of a cluster: the book is every node's.
fn cluster_node(book: Arc<dyn SharedDocument>, config: &Config) -> Result<Store, String> {
    let store = Store::new(config, [])?;
    store.with_book(book, true).map_err(|e| e.to_string())
}

fn root_config() -> Result<Config, String> {
    toml::from_str(
        r#"
        [[credentials]]
        access_key_id = "root"
        secret_access_key = "root-secret"
        grants = { "*" = ["admin"] }
        "#,
    )
    .map_err(|e| e.to_string())
}

const ADMIN: &[Action] = &[Action::Read, Action::Write, Action::Admin];

#[test]
fn a_key_made_at_run_time_signs_in_with_its_grants() -> Result<(), String> {
    let store = open_store(Arc::new(MemoryDocument::default()))?;
    assert!(store.anonymous().is_some(), "no key yet: open");
    store
        .change(&put("root", key("root-secret", &[("*", ADMIN)])))
        .map_err(|e| e.to_string())?;
    store
        .change(&put("reader", key("r", &[("metrics", &[Action::Read])])))
        .map_err(|e| e.to_string())?;
    assert!(store.anonymous().is_none(), "a key closes the server");
    let reader = store.check_secret("reader", "r").ok_or("reader signs in")?;
    assert!(reader.may("metrics", Action::Read) && !reader.may("metrics", Action::Write));
    assert!(store.check_secret("reader", "wrong").is_none());
    let listed = store.listed();
    let ids: Vec<(&str, &str)> = listed
        .iter()
        .map(|k| (k.access_key_id.as_str(), k.source))
        .collect();
    assert_eq!(ids, [("reader", "admin"), ("root", "admin")]);
    assert_eq!(
        listed[0].grants,
        key("r", &[("metrics", &[Action::Read])]).grants
    );
    // A new secret replaces the old one at once.
    store
        .change(&put("reader", key("r2", &[("metrics", &[Action::Read])])))
        .map_err(|e| e.to_string())?;
    assert!(store.check_secret("reader", "r").is_none());
    assert!(store.check_secret("reader", "r2").is_some());
    Ok(())
}

#[test]
fn changes_that_lock_out_or_open_the_server_are_refused() -> Result<(), String> {
    let store = open_store(Arc::new(MemoryDocument::default()))?;
    let refused = store.change(&put("reader", key("r", &[("db", &[Action::Read])])));
    assert!(matches!(refused, Err(KeyError::LockOut)), "{refused:?}");
    assert!(store.anonymous().is_some(), "nothing changed");
    store
        .change(&put("root", key("s", &[("*", ADMIN)])))
        .map_err(|e| e.to_string())?;
    let last = store.change(&KeyChange::Remove { id: "root".into() });
    assert!(matches!(last, Err(KeyError::Opens)), "{last:?}");
    let gone = store.change(&KeyChange::Remove {
        id: "nobody".into(),
    });
    assert!(matches!(gone, Err(KeyError::NotFound(_))), "{gone:?}");
    assert!(store.check_secret("root", "s").is_some());
    Ok(())
}

#[test]
fn configured_keys_cannot_be_changed_here() -> Result<(), String> {
    let store = Store::new(&root_config()?, [])?
        .with_book(Arc::new(MemoryDocument::default()), false)
        .map_err(|e| e.to_string())?;
    let taken = store.change(&put("root", key("other", &[("*", ADMIN)])));
    assert!(matches!(taken, Err(KeyError::Configured(_))), "{taken:?}");
    let removed = store.change(&KeyChange::Remove { id: "root".into() });
    assert!(
        matches!(removed, Err(KeyError::Configured(_))),
        "{removed:?}"
    );
    // The configuration's admin key keeps the server administrable.
    store
        .change(&put("writer", key("w", &[("db", &[Action::Write])])))
        .map_err(|e| e.to_string())?;
    store
        .change(&KeyChange::Remove {
            id: "writer".into(),
        })
        .map_err(|e| e.to_string())?;
    assert!(store.check_secret("root", "root-secret").is_some());
    let sources: Vec<&str> = store.listed().iter().map(|k| k.source).collect();
    assert_eq!(sources, ["config"]);
    Ok(())
}

#[test]
fn bad_keys_are_refused_before_storing() -> Result<(), String> {
    let store = open_store(Arc::new(MemoryDocument::default()))?;
    for (id, k) in [
        ("", key("s", &[("*", ADMIN)])),
        ("a b", key("s", &[("*", ADMIN)])),
        ("a", key("", &[("*", ADMIN)])),
        ("a", key("s\n", &[("*", ADMIN)])),
        ("a", key("s", &[])),
        ("a", key("s", &[("db", &[])])),
        ("a", key("s", &[("", ADMIN)])),
    ] {
        let refused = store.change(&put(id, k));
        assert!(
            matches!(refused, Err(KeyError::Invalid(_))),
            "{id:?}: {refused:?}"
        );
    }
    assert!(store.listed().is_empty());
    Ok(())
}

/// Two nodes sharing one document: a key made through one signs in on
/// the other after its reload, a removal revokes it there, and changes
/// from both at once are all kept.
#[test]
fn nodes_sharing_the_document_see_each_others_keys() -> Result<(), String> {
    let doc: Arc<dyn SharedDocument> = Arc::new(MemoryDocument::default());
    let a = cluster_node(doc.clone(), &Config::default())?;
    let b = cluster_node(doc, &Config::default())?;
    let e = |e: KeyError| e.to_string();
    a.change(&put("root", key("s", &[("*", ADMIN)])))
        .map_err(e)?;
    assert!(b.check_secret("root", "s").is_none(), "not reloaded yet");
    b.reload().map_err(|e| e.to_string())?;
    assert!(b.check_secret("root", "s").is_some());
    // b changes from a version it has; a's next change starts from b's.
    b.change(&put("one", key("1", &[("db", &[Action::Read])])))
        .map_err(e)?;
    a.change(&put("two", key("2", &[("db", &[Action::Read])])))
        .map_err(e)?;
    b.reload().map_err(|e| e.to_string())?;
    for store in [&a, &b] {
        let ids: Vec<String> = store
            .listed()
            .into_iter()
            .map(|k| k.access_key_id)
            .collect();
        assert_eq!(ids, ["one", "root", "two"]);
    }
    b.change(&KeyChange::Remove { id: "one".into() })
        .map_err(e)?;
    assert!(a.check_secret("one", "1").is_some(), "a has not reloaded");
    a.reload().map_err(|e| e.to_string())?;
    assert!(a.check_secret("one", "1").is_none(), "revoked on a too");
    Ok(())
}

#[test]
fn a_single_nodes_keys_outlive_a_restart_in_a_private_file() -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().join("access-keys.json");
    let store = open_store(Arc::new(FileDocument::open(path.clone())))?;
    store
        .change(&put("root", key("s", &[("*", ADMIN)])))
        .map_err(|e| e.to_string())?;
    let mode = std::fs::metadata(&path).map_err(|e| e.to_string())?;
    assert_eq!(mode.permissions().mode() & 0o777, 0o600);
    drop(store);
    let again = open_store(Arc::new(FileDocument::open(path)))?;
    let root = again
        .check_secret("root", "s")
        .ok_or("root after restart")?;
    assert!(matches!(root, Identity::Key(_)) && root.may_all(Action::Admin));
    Ok(())
}

/// On a cluster a node's configured admin key does not let the book's
/// keys go without one: another node may have no configured key, and
/// would be left unadministrable, or open.
#[test]
fn a_clusters_keys_stand_on_their_own() -> Result<(), String> {
    let doc: Arc<dyn SharedDocument> = Arc::new(MemoryDocument::default());
    let configured = cluster_node(doc.clone(), &root_config()?)?;
    let bare = cluster_node(doc, &Config::default())?;
    let reader = key("r", &[("db", &[Action::Read])]);
    let refused = configured.change(&put("reader", reader.clone()));
    assert!(matches!(refused, Err(KeyError::LockOut)), "{refused:?}");
    let e = |e: KeyError| e.to_string();
    configured
        .change(&put("admin", key("a", &[("*", ADMIN)])))
        .map_err(e)?;
    configured.change(&put("reader", reader)).map_err(e)?;
    let last_admin = configured.change(&KeyChange::Remove { id: "admin".into() });
    assert!(
        matches!(last_admin, Err(KeyError::LockOut)),
        "{last_admin:?}"
    );
    bare.reload().map_err(|e| e.to_string())?;
    assert!(bare.anonymous().is_none(), "the bare node is closed");
    Ok(())
}
