//! Issue 14, point 1: with access keys configured, every route but the
//! version and health checks needs one, and a key reaches only the
//! databases and actions it was granted, through every API.

use crate::harness::{TestServer, json};
use anyhow::{Result, bail};
use serde_json::{Value, json};

/// The fixed clock of these servers (2016-06-08T17:00:00Z), so Baidu
/// signatures can carry a fixed timestamp.
pub(crate) const NOW_MS: i64 = 1_465_405_200_000;
pub(crate) const SIGNED_AT: &str = "2016-06-08T16:59:00Z";

pub(crate) const KEYS: &str = r#"
[auth]
credentials = [
  { access_key_id = "root", secret_access_key = "root-secret", grants = { "*" = ["read", "write", "admin"] } },
  { access_key_id = "writer", secret_access_key = "writer-secret", grants = { default = ["read", "write"] } },
  { access_key_id = "reader", secret_access_key = "reader-secret", grants = { default = ["read"] } },
  { access_key_id = "other", secret_access_key = "other-secret", grants = { metricsdb = ["read", "write", "admin"] } },
]
"#;

/// A caller of the matrix.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Caller {
    None,
    Wrong,
    Key(&'static str),
}

impl Caller {
    pub(crate) fn secret(self) -> Option<(&'static str, String)> {
        match self {
            Caller::None => None,
            Caller::Wrong => Some(("writer", "not-the-secret".into())),
            Caller::Key(id) => Some((id, format!("{id}-secret"))),
        }
    }
}

/// A server with [`KEYS`], a fixed clock and a `metricsdb` database.
pub(crate) fn server() -> Result<TestServer> {
    let s = TestServer::spawn_with_config(&format!("{KEYS}\n[baidu]\ntest_clock_ms = {NOW_MS}\n"))?;
    let r = baidu(
        &s,
        Caller::Key("root"),
        "POST",
        "/v1/database",
        Some("clientToken=t1"),
        Some(r#"{"databaseName":"metricsdb","ingestDataPointsMonthly":1,"purchaseLength":1}"#),
    )?;
    if r.0 != 200 {
        bail!("creating metricsdb: {r:?}");
    }
    Ok(s)
}

pub(crate) use crate::harness::basic;

/// An OpenTSDB (or admin) request with Basic credentials.
pub(crate) fn tsdb(
    s: &TestServer,
    who: Caller,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<(u16, String)> {
    let auth = who.secret().map(|(id, secret)| basic(id, &secret));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a));
    }
    let r = s.send(method, path, &headers, body.map(str::as_bytes))?;
    Ok((r.status, r.body))
}

/// A `/v1` request signed as the BCE SDKs sign it.
pub(crate) fn baidu(
    s: &TestServer,
    who: Caller,
    method: &str,
    path: &str,
    query: Option<&str>,
    body: Option<&str>,
) -> Result<(u16, String)> {
    let secret = who.secret().map(|(_, secret)| secret).unwrap_or_default();
    baidu_as(s, who, &secret, method, path, query, body)
}

/// A `/v1` request signed with `secret` as the key of `who`.
pub(crate) fn baidu_as(
    s: &TestServer,
    who: Caller,
    secret: &str,
    method: &str,
    path: &str,
    query: Option<&str>,
    body: Option<&str>,
) -> Result<(u16, String)> {
    let host = s.addr.to_string();
    let auth = who.secret().map(|(id, _)| {
        sundial_baidu::authorization(method, path, query, &host, id, secret, SIGNED_AT, 1800)
    });
    let url = match query {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    let mut headers = vec![("Content-Type", "application/json"), ("Host", &host)];
    if let Some(a) = &auth {
        headers.push(("Authorization", a));
    }
    let r = s.send(method, &url, &headers, body.map(str::as_bytes))?;
    Ok((r.status, r.body))
}

/// A BlueKing metadata call with the caller as ESB app; the envelope's
/// `code` (200 for success).
pub(crate) fn bk(s: &TestServer, who: Caller, api: &str, params: Value) -> Result<i64> {
    let mut body = params;
    if let Some((id, secret)) = who.secret() {
        body["bk_app_code"] = id.into();
        body["bk_app_secret"] = secret.into();
    }
    body["bk_username"] = "admin".into();
    let (status, text) = s.post(
        &format!("/api/c/compapi/v2/monitor_v3/{api}/"),
        &body.to_string(),
    )?;
    if status != 200 {
        bail!("{api}: HTTP {status}: {text}");
    }
    Ok(json(&text)?["code"].as_i64().unwrap_or_default())
}

/// What a telnet `put` gets: `None` when it was stored (no answer).
pub(crate) fn telnet_put(s: &TestServer, who: Caller) -> Result<Option<String>> {
    let mut t = s.telnet()?;
    if let Some((id, secret)) = who.secret() {
        t.send(&format!("auth {id} {secret}\n"))?;
    }
    t.send("put access.telnet 1500000000 1 host=a\nversion\n")?;
    let answer = t.read_available()?;
    let refused = answer
        .lines()
        .find(|l| l.starts_with("put:") || l.starts_with("auth: wrong"));
    Ok(refused.map(str::to_owned))
}

pub(crate) const PUT: &str =
    r#"[{"metric":"access.m","timestamp":1500000000,"value":1,"tags":{"host":"a"}}]"#;

/// (route, action, method, path, body) of the OpenTSDB and admin routes.
pub(crate) fn opentsdb_routes() -> Vec<(
    &'static str,
    &'static str,
    &'static str,
    String,
    Option<String>,
)> {
    let q = "start=1499999000&end=1500001000&m=sum:access.m";
    vec![
        ("/api/put", "write", "POST", "/api/put".into(), Some(PUT.into())),
        ("/api/query", "read", "GET", format!("/api/query?{q}"), None),
        (
            "/api/query/last",
            "read",
            "GET",
            "/api/query/last?timeseries=access.m{host=a}".into(),
            None,
        ),
        ("/api/suggest", "read", "GET", "/api/suggest?type=metrics".into(), None),
        (
            "/api/search/lookup",
            "read",
            "GET",
            "/api/search/lookup?m=access.m".into(),
            None,
        ),
        (
            "/api/mput",
            "write",
            "POST",
            "/api/mput".into(),
            Some(r#"[{"metric":"access.mm","timestamp":1500000000,"fields":{"a":1},"tags":{"host":"a"}}]"#.into()),
        ),
        (
            "/api/mquery",
            "read",
            "POST",
            "/api/mquery".into(),
            Some(r#"{"start":1499999000,"queries":[{"metric":"access.mm","fields":[{"field":"a"}]}]}"#.into()),
        ),
        (
            "/api/query/mlast",
            "read",
            "POST",
            "/api/query/mlast".into(),
            Some(r#"{"queries":[{"metric":"access.mm","fields":["a"]}]}"#.into()),
        ),
        ("/api/ttl", "read", "GET", "/api/ttl".into(), None),
        (
            "/api/ttl",
            "admin",
            "POST",
            "/api/ttl".into(),
            Some(r#"{"val":0}"#.into()),
        ),
        (
            "/api/dump_meta",
            "read",
            "POST",
            "/api/dump_meta".into(),
            Some(r#"{"tagkey":"host","tagvalueprefix":""}"#.into()),
        ),
        (
            "/api/uid/assign",
            "write",
            "GET",
            "/api/uid/assign?metric=access.assigned".into(),
            None,
        ),
        (
            "/api/uid/tsmeta",
            "read",
            "GET",
            "/api/uid/tsmeta?m=access.m".into(),
            None,
        ),
        (
            "/api/delete_data",
            "admin",
            "POST",
            "/api/delete_data".into(),
            Some(r#"{"metric":"access.gone","start":1500000000,"end":1500000001}"#.into()),
        ),
        (
            "/api/delete_meta",
            "admin",
            "POST",
            "/api/delete_meta".into(),
            Some(r#"{"metric":"access.gone"}"#.into()),
        ),
        ("/api/aggregators", "any", "GET", "/api/aggregators".into(), None),
        ("/api/config", "any", "GET", "/api/config".into(), None),
        ("/api/version", "public", "GET", "/api/version".into(), None),
        ("/api/health", "public", "GET", "/api/health".into(), None),
        ("/admin/compact", "server", "POST", "/admin/compact".into(), None),
        (
            "/admin/presampling",
            "server",
            "GET",
            "/admin/presampling".into(),
            None,
        ),
    ]
}

/// (action, method, name, path, query, body) of a `/v1` route.
pub(crate) type V1Route = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
);

/// The key that holds exactly what an action needs.
pub(crate) fn right_key(action: &str) -> &'static str {
    match action {
        "read" => "reader",
        "write" | "any" | "public" => "writer",
        _ => "root",
    }
}

/// One row of the access matrix: the statuses for no credential, a wrong
/// secret, the right key and a key of another database.
pub(crate) type Row = (String, [String; 4]);

#[test]
pub(crate) fn every_route_needs_a_granted_key() -> Result<()> {
    let s = server()?;
    let mut rows: Vec<Row> = Vec::new();
    let callers = |action: &str| {
        [
            Caller::None,
            Caller::Wrong,
            Caller::Key(right_key(action)),
            Caller::Key("other"),
        ]
    };
    for (name, action, method, path, body) in opentsdb_routes() {
        let mut got = Vec::new();
        for who in callers(action) {
            let (status, text) = tsdb(&s, who, method, &path, body.as_deref())?;
            got.push((status, text));
        }
        let statuses: Vec<u16> = got.iter().map(|(s, _)| *s).collect();
        let (want_none, want_other) = match action {
            "public" => (200, 200),
            "any" => (401, 200),
            _ => (401, 403),
        };
        assert_eq!(statuses[0], want_none, "{name} without a key: {}", got[0].1);
        assert_eq!(
            statuses[1],
            if action == "public" { 200 } else { 401 },
            "{name} with a wrong secret"
        );
        assert!(
            (200..300).contains(&statuses[2]),
            "{name} with the right key: {statuses:?} {}",
            got[2].1
        );
        assert_eq!(
            statuses[3], want_other,
            "{name} with another database's key"
        );
        // A key with less than the action needs is refused.
        let weaker = match action {
            "write" => Some("reader"),
            "admin" | "server" => Some("writer"),
            _ => None,
        };
        if let Some(key) = weaker {
            let (status, text) = tsdb(&s, Caller::Key(key), method, &path, body.as_deref())?;
            assert_eq!(status, 403, "{name} with {key}'s key: {text}");
        }
        rows.push((
            format!("OpenTSDB {method} {name} ({action})"),
            statuses.map_into(),
        ));
    }

    // Telnet: `auth` first, with a key that may write `default`.
    let telnet: Vec<Option<String>> = [
        Caller::None,
        Caller::Wrong,
        Caller::Key("writer"),
        Caller::Key("other"),
    ]
    .into_iter()
    .map(|who| telnet_put(&s, who))
    .collect::<Result<_>>()?;
    assert!(
        telnet[0]
            .as_deref()
            .is_some_and(|l| l.contains("authentication required"))
    );
    assert!(
        telnet[1]
            .as_deref()
            .is_some_and(|l| l.contains("wrong access key"))
    );
    assert_eq!(telnet[2], None, "the granted key's put is stored");
    assert!(
        telnet[3]
            .as_deref()
            .is_some_and(|l| l.contains("access denied"))
    );
    let stored = tsdb(
        &s,
        Caller::Key("reader"),
        "GET",
        "/api/query?start=1499999000&m=sum:access.telnet",
        None,
    )?;
    assert!(stored.1.contains("\"1500000000\":1"), "{}", stored.1);
    rows.push((
        "telnet put (write)".into(),
        telnet
            .iter()
            .map(|t| t.clone().unwrap_or_else(|| "stored".into()))
            .collect::<Vec<_>>()
            .try_into()
            .map_err(|_| anyhow::anyhow!("four answers"))?,
    ));

    // Baidu /v1, signed.
    let v1: [V1Route; 6] = [
        (
            "write",
            "POST",
            "/v1/datapoint",
            "/v1/datapoint",
            None,
            Some(
                r#"{"datapoints":[{"metric":"v1m","field":"f","tags":{"h":"a"},"timestamp":1465405000000,"value":1}]}"#,
            ),
        ),
        (
            "read",
            "PUT",
            "/v1/datapoint?query",
            "/v1/datapoint",
            Some("query"),
            Some(r#"{"queries":[{"metric":"v1m","field":"f","filters":{"start":1465404000000}}]}"#),
        ),
        ("read", "GET", "/v1/metric", "/v1/metric", None, None),
        (
            "read",
            "GET",
            "/v1/row?sql=",
            "/v1/row",
            Some("sql=select%20%2A%20from%20v1m"),
            None,
        ),
        ("any", "GET", "/v1/database", "/v1/database", None, None),
        (
            "admin",
            "DELETE",
            "/v1/database/{id}",
            "/v1/database/tsdb-nosuchdatabase",
            None,
            None,
        ),
    ];
    for (action, method, name, path, query, body) in v1 {
        let mut statuses = Vec::new();
        for who in callers(action) {
            statuses.push(baidu(&s, who, method, path, query, body)?.0);
        }
        let want_other = match action {
            "any" => 200,
            // Another key does not learn whether the database exists.
            "admin" => 404,
            _ => 403,
        };
        let want_right = if action == "admin" { 404 } else { 0 };
        assert_eq!(statuses[0], 403, "{name} unsigned");
        assert_eq!(statuses[1], 400, "{name} with a wrong signature");
        if want_right == 0 {
            assert!((200..300).contains(&statuses[2]), "{name}: {statuses:?}");
        } else {
            assert_eq!(statuses[2], want_right, "{name} with the right key");
        }
        assert_eq!(
            statuses[3], want_other,
            "{name} with another database's key"
        );
        // A read-only key may not write.
        if action == "write" {
            let (status, ..) = baidu(&s, Caller::Key("reader"), method, path, query, body)?;
            assert_eq!(status, 403, "{name} with the reader's key");
        }
        rows.push((
            format!("Baidu {method} {name} ({action})"),
            statuses.map_into(),
        ));
    }

    // BlueKing metadata: the ESB app is an access key.
    let list = json!({"include_admin_only": true});
    let codes: Vec<i64> = callers("read")
        .into_iter()
        .map(|who| bk(&s, who, "metadata_list_label", list.clone()))
        .collect::<Result<_>>()?;
    assert_eq!(codes, vec![1306000, 1306000, 200, 1306000]);
    rows.push((
        "BlueKing metadata_list_label (read)".into(),
        codes.map_into(),
    ));
    print_matrix(&rows);
    Ok(())
}

/// Markdown rows for RELIABILITY.md (`cargo nextest run access --no-capture`).
pub(crate) fn print_matrix(rows: &[Row]) {
    println!("| route (action) | none | wrong secret | right key | other database's key |");
    println!("| --- | --- | --- | --- | --- |");
    for (route, cells) in rows {
        println!("| {route} | {} |", cells.join(" | "));
    }
}

pub(crate) trait MapInto {
    fn map_into(self) -> [String; 4];
}

impl<T: ToString> MapInto for Vec<T> {
    fn map_into(self) -> [String; 4] {
        let mut out: [String; 4] = Default::default();
        for (slot, v) in out.iter_mut().zip(self) {
            *slot = v.to_string();
        }
        out
    }
}
