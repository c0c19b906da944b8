//! Access keys on a cluster: kept in PostgreSQL, so a key made through
//! one node signs in on every other within a second, and a key revoked
//! through one node is refused everywhere within a second. Run last: the
//! first key closes the cluster.

use crate::access::basic;
use crate::harness::TestServer;
use anyhow::{Result, bail};
use serde_json::json;
use std::time::{Duration, Instant};

/// `PUT /admin/keys/{id}` with secret `{id}-secret` through `node`.
pub(super) fn put_key(
    node: &TestServer,
    auth: Option<&str>,
    id: &str,
    grants: serde_json::Value,
) -> Result<(u16, String)> {
    let body = json!({"secret_access_key": format!("{id}-secret"), "grants": grants});
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(auth) = auth {
        headers.push(("Authorization", auth));
    }
    let path = format!("/admin/keys/{id}");
    let r = node.send("PUT", &path, &headers, Some(body.to_string().as_bytes()))?;
    Ok((r.status, r.body))
}

/// The status of `GET /api/suggest?type=metrics` through `node`.
fn suggest_status(node: &TestServer, auth: Option<&str>) -> Result<u16> {
    let headers: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
    Ok(node
        .send("GET", "/api/suggest?type=metrics", &headers, None)?
        .status)
}

/// Waits (up to ten seconds) until `node` answers `want` to the caller.
fn until_status(node: &TestServer, auth: Option<&str>, want: u16) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = suggest_status(node, auth)?;
        if status == want {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("still {status}, not {want}, after ten seconds");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub(super) fn keys_shared(router: &TestServer, querier: &TestServer) -> Result<()> {
    let root = basic("root", "root-secret");
    let reader = basic("reader", "reader-secret");
    let (status, text) = put_key(
        router,
        None,
        "root",
        json!({"*": ["read", "write", "admin"]}),
    )?;
    assert_eq!(status, 200, "{text}");
    // The router refuses anonymous callers at once, the querier soon.
    assert_eq!(suggest_status(router, None)?, 401);
    until_status(querier, None, 401)?;
    assert_eq!(suggest_status(querier, Some(&root))?, 200);
    let (status, text) = put_key(querier, Some(&root), "reader", json!({"*": ["read"]}))?;
    assert_eq!(status, 200, "{text}");
    until_status(router, Some(&reader), 200)?;
    let r = router.send(
        "DELETE",
        "/admin/keys/reader",
        &[("Authorization", &root)],
        None,
    )?;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(suggest_status(router, Some(&reader))?, 401);
    until_status(querier, Some(&reader), 401)?;
    Ok(())
}
