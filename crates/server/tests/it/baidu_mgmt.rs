//! Baidu `/v1/database` management API: spec 16.8 (TV-M1 … TV-M6).

use crate::baidu::{Check, D1, get};
use crate::harness::{Reply, TestServer};
use anyhow::Result;
use serde_json::{Value, json};

const HOST: (&str, &str) = ("Host", "testdb01.tsdb.iot.gz.baidubce.com");

fn create(s: &TestServer, token: Option<&str>, body: &Value) -> Result<Reply> {
    let path = match token {
        Some(t) => format!("/v1/database?clientToken={t}"),
        None => "/v1/database".to_owned(),
    };
    s.send(
        "POST",
        &path,
        &[("Content-Type", "application/json; charset=utf-8")],
        Some(body.to_string().as_bytes()),
    )
}

fn m1_body() -> Value {
    json!({"databaseName": "testdb01", "description": "test",
        "ingestDataPointsMonthly": 1, "purchaseLength": 1})
}

/// `yyyy-MM-ddTHH:mm:ssZ` → (year, month, day, seconds of day).
fn utc_time(v: &Value) -> Option<(i64, i64, i64, i64)> {
    let s = v.as_str()?;
    let b = s.as_bytes();
    let shape = b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        });
    if !shape {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s[r].parse::<i64>().ok();
    Some((
        n(0..4)?,
        n(5..7)?,
        n(8..10)?,
        n(11..13)? * 3600 + n(14..16)? * 60 + n(17..19)?,
    ))
}

fn is_lower_alnum(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// TV-M1 … TV-M5: create, idempotency, get, data routing by Host, delete.
#[test]
fn database_lifecycle() -> Result<()> {
    // The spec addresses databases by `{db}.tsdb.` host names.
    let s = TestServer::spawn_with_config("[http]\nallowed_hosts = [\".baidubce.com\"]\n")?;
    let mut c = Check::new();

    // TV-M1
    let created = c.json("TV-M1", &create(&s, Some("tok-1"), &m1_body())?, 200);
    let id = created["databaseId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    c.that(
        "TV-M1 databaseId ^tsdb-[a-z0-9]{12}$",
        id.strip_prefix("tsdb-")
            .is_some_and(|r| r.len() == 12 && is_lower_alnum(r)),
        &created,
    );
    c.eq("TV-M1 charge", &created["charge"], &json!(0));
    c.that(
        "TV-M1 expiredTime",
        utc_time(&created["expiredTime"]).is_some(),
        &created,
    );
    c.that(
        "TV-M1 orderId ^[0-9a-f]{32}$",
        created["orderId"].as_str().is_some_and(|o| {
            o.len() == 32
                && o.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        }),
        &created,
    );

    // TV-M2
    let again = c.json("TV-M2", &create(&s, Some("tok-1"), &m1_body())?, 200);
    c.eq("TV-M2 same id", &again["databaseId"], &json!(id));
    let list = c.json("TV-M2 list", &get(&s, "/v1/database")?, 200);
    let ids: Vec<&Value> = list["databases"]
        .as_array()
        .map(|l| l.iter().map(|d| &d["databaseId"]).collect())
        .unwrap_or_default();
    c.eq("TV-M2 one database", ids, vec![&json!(id)]);

    // TV-M3
    let db = c.json("TV-M3", &get(&s, &format!("/v1/database/{id}"))?, 200);
    c.eq("TV-M3 databaseId", &db["databaseId"], &json!(id));
    c.eq(
        "TV-M3 databaseName",
        &db["databaseName"],
        &json!("testdb01"),
    );
    c.eq("TV-M3 description", &db["description"], &json!("test"));
    c.eq("TV-M3 status", &db["status"], &json!("Active"));
    c.eq(
        "TV-M3 endpoint",
        &db["endpoint"],
        &json!("testdb01.tsdb.iot.gz.baidubce.com"),
    );
    c.eq(
        "TV-M3 ingest quota",
        &db["quota"]["ingestDataPointsMonthlyQuota"],
        &json!(1_000_000),
    );
    c.eq(
        "TV-M3 time series quota",
        &db["quota"]["timeSeriesQuota"],
        &json!(10_000_000),
    );
    c.eq(
        "TV-M3 expiredTime",
        &db["expiredTime"],
        &created["expiredTime"],
    );
    // purchaseLength 1: one calendar month after createTime.
    match (utc_time(&db["createTime"]), utc_time(&db["expiredTime"])) {
        (Some((y, m, d, secs)), Some(exp)) => {
            let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            c.that(
                "TV-M3 expiredTime = createTime + 1 month",
                exp.0 == ny && exp.1 == nm && exp.3 == secs && (d > 28 || exp.2 == d),
                &db,
            );
        }
        _ => c.fail("TV-M3 createTime/expiredTime format", db.to_string()),
    }

    // TV-M4
    let json_type = ("Content-Type", "application/json; charset=utf-8");
    let r = s.send(
        "POST",
        "/v1/datapoint",
        &[HOST, json_type],
        Some(D1.as_bytes()),
    )?;
    c.eq("TV-M4 write by Host", r.status, 204);
    let r = s.send("GET", "/v1/metric", &[HOST], None)?;
    c.body(
        "TV-M4 metrics by Host",
        &r,
        &json!({"metrics": ["cpu_idle"]}),
    );
    c.body(
        "TV-M4 default database untouched",
        &get(&s, "/v1/metric")?,
        &json!({"metrics": []}),
    );

    // TV-M5
    let r = s.send("DELETE", &format!("/v1/database/{id}"), &[], None)?;
    c.eq("TV-M5 delete status", r.status, 200);
    c.eq("TV-M5 delete body", r.body.as_str(), "");
    let r = get(&s, &format!("/v1/database/{id}"))?;
    c.error("TV-M5 get deleted", &r, 404, "ResourceNotFound");
    let r = s.send("GET", "/v1/metric", &[HOST], None)?;
    c.error(
        "TV-M5 data API on deleted database",
        &r,
        404,
        "ResourceNotFound",
    );
    c.done_with_errors()
}

/// TV-M6: creation errors.
#[test]
fn database_errors() -> Result<()> {
    let s = TestServer::spawn()?;
    let mut c = Check::new();
    let r = create(&s, None, &m1_body())?;
    c.error("TV-M6 no clientToken", &r, 400, "ParameterMissing");
    let mut bad = m1_body();
    bad["databaseName"] = json!("Bad_Name");
    let r = create(&s, Some("tok-bad"), &bad)?;
    c.error("TV-M6 Bad_Name", &r, 400, "InvalidArgument");
    c.eq(
        "TV-M6 create testdb01",
        create(&s, Some("tok-1"), &m1_body())?.status,
        200,
    );
    let r = create(&s, Some("tok-2"), &m1_body())?;
    c.error("TV-M6 name taken", &r, 400, "InvalidArgument");
    let mut no_length = m1_body();
    no_length["databaseName"] = json!("testdb02");
    if let Some(o) = no_length.as_object_mut() {
        o.remove("purchaseLength");
    }
    let r = create(&s, Some("tok-3"), &no_length)?;
    c.error("TV-M6 no purchaseLength", &r, 400, "ParameterMissing");
    let list = c.json("TV-M6 list", &get(&s, "/v1/database")?, 200);
    c.eq(
        "TV-M6 only testdb01 exists",
        list["databases"].as_array().map(Vec::len),
        Some(1),
    );
    c.done_with_errors()
}
