//! Issue 14: what every connection meets before an API sees it: foreign
//! pages and rebound host names are refused, CORS only for listed
//! origins, TLS through rustls, header, body and idle timeouts, and a cap
//! on connections.

use crate::harness::{TestServer, json};
use anyhow::{Context, Result};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

#[test]
fn foreign_pages_and_rebound_names_are_refused() -> Result<()> {
    let s = TestServer::spawn_with_config(
        "[http]\nallowed_hosts = [\".tsdb.example.com\"]\n\
         cors_allow_origins = [\"https://grafana.example.com\"]\n",
    )?;
    let put = br#"[{"metric":"edge.m","timestamp":1500000000,"value":1,"tags":{"host":"a"}}]"#;
    let own = s.addr.to_string();
    // A page of another site posting a form, and a name rebound to us.
    let r = s.send(
        "POST",
        "/api/put",
        &[("Origin", "http://evil.example")],
        Some(put),
    )?;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(json(&r.body)?["error"]["code"], 403);
    let r = s.send(
        "POST",
        "/api/put",
        &[("Host", "evil.example:4242")],
        Some(put),
    )?;
    assert_eq!(r.status, 403);
    // Each API refuses in its own shape.
    let r = s.send("GET", "/v1/metric", &[("Origin", "null")], None)?;
    assert_eq!(
        (r.status, json(&r.body)?["code"].clone()),
        (403, "AccessDenied".into())
    );
    assert!(r.request_id.is_some());
    let r = s.send(
        "POST",
        "/api/c/compapi/v2/monitor_v3/metadata_list_label/",
        &[("Host", "evil.example")],
        Some(b"{}"),
    )?;
    assert_eq!(
        (r.status, json(&r.body)?["result"].clone()),
        (403, false.into())
    );
    // The page the server itself serves, names it answers to.
    let same = format!("http://{own}");
    let r = s.send("POST", "/api/put", &[("Origin", &same)], Some(put))?;
    assert_eq!(r.status, 204, "{}", r.body);
    let r = s.send(
        "GET",
        "/api/version",
        &[("Host", "db1.tsdb.example.com")],
        None,
    )?;
    assert_eq!(r.status, 200);
    let r = s.send("GET", "/api/version", &[("Host", "localhost:4242")], None)?;
    assert_eq!(r.status, 200);
    // A listed origin gets CORS headers and its preflight answered.
    let listed = [("Origin", "https://grafana.example.com")];
    let res = ureq::get(&s.url("/api/version"))
        .set("Origin", "https://grafana.example.com")
        .call()?;
    assert_eq!(
        res.header("access-control-allow-origin"),
        Some("https://grafana.example.com")
    );
    let r = s.send("OPTIONS", "/v1/datapoint", &listed, None)?;
    assert_eq!(r.status, 200);
    // Unlisted origins never get the header, even where they may read.
    let res = ureq::get(&s.url("/api/version")).call()?;
    assert_eq!(res.header("access-control-allow-origin"), None);
    Ok(())
}

/// A client that sends headers slower than `header_timeout_secs`, a body
/// slower than `body_timeout_secs`, or nothing on telnet, loses the
/// connection.
#[test]
fn slow_connections_are_cut() -> Result<()> {
    let s = TestServer::spawn_with_config(
        "[http]\nheader_timeout_secs = 1\nbody_timeout_secs = 1\n\
         telnet_idle_timeout_secs = 1\n",
    )?;
    let closes = |mut c: TcpStream| -> Result<Vec<u8>> {
        c.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut got = Vec::new();
        c.read_to_end(&mut got)
            .context("the server must close the connection")?;
        Ok(got)
    };
    // Slowloris: headers never finish.
    let mut c = TcpStream::connect(s.addr)?;
    c.write_all(b"POST /api/put HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")?;
    closes(c)?;
    // A body that never arrives in full: 408 in OpenTSDB's shape.
    let mut c = TcpStream::connect(s.addr)?;
    c.write_all(b"POST /api/put HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n[{\"m")?;
    let answer = String::from_utf8(closes(c)?)?;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    // A silent telnet client.
    let mut c = TcpStream::connect(s.addr)?;
    c.write_all(b"version\n")?;
    let answer = String::from_utf8(closes(c)?)?;
    assert!(answer.contains("sundial"), "{answer}");
    Ok(())
}

#[test]
fn surplus_connections_are_refused() -> Result<()> {
    let s = TestServer::spawn_with_config(
        "[http]
max_connections = 3
",
    )?;
    // Three connections held open; the fourth is refused with a 503.
    let held: Vec<TcpStream> = (0..3)
        .map(|_| -> Result<TcpStream> {
            let mut c = TcpStream::connect(s.addr)?;
            // Wait until the server serves it: the slot is taken then.
            c.write_all(b"GET /api/version HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")?;
            c.set_read_timeout(Some(Duration::from_secs(30)))?;
            let mut buf = [0u8; 12];
            c.read_exact(&mut buf)?;
            Ok(c)
        })
        .collect::<Result<_>>()?;
    let mut extra = TcpStream::connect(s.addr)?;
    extra.write_all(b"GET /api/version HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")?;
    extra.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut got = Vec::new();
    extra.read_to_end(&mut got)?;
    let answer = String::from_utf8(got)?;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("Retry-After"));
    drop(held);
    Ok(())
}

#[test]
fn tls_serves_http_and_telnet() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
    let (cert_path, key_path) = (tmp.path().join("cert.pem"), tmp.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem())?;
    std::fs::write(&key_path, cert.key_pair.serialize_pem())?;
    let s = TestServer::spawn_with_config(&format!(
        "[tls]\ncert = {:?}\nkey = {:?}\n",
        cert_path.display().to_string(),
        key_path.display().to_string()
    ))?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let agent = ureq::AgentBuilder::new().tls_config(config.clone()).build();
    let url = format!("https://localhost:{}/api/version", s.addr.port());
    let res = agent.get(&url).call()?;
    assert_eq!(res.status(), 200);
    // Plain HTTP on the TLS port gets nothing.
    assert!(ureq::get(&s.url("/api/version")).call().is_err());
    // Telnet inside TLS.
    let name = rustls::pki_types::ServerName::try_from("localhost")?;
    let conn = rustls::ClientConnection::new(config, name)?;
    let tcp = TcpStream::connect(s.addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(b"put tls.m 1500000000 5 host=a\nversion\n")?;
    let mut got = [0u8; 7];
    tls.read_exact(&mut got)?;
    assert_eq!(&got, b"sundial");
    let res = agent
        .get(&format!(
            "https://localhost:{}/api/query?start=1499999000&m=sum:tls.m",
            s.addr.port()
        ))
        .call()?;
    assert_eq!(json(&res.into_string()?)?[0]["dps"]["1500000000"], 5);
    Ok(())
}

/// A body nested a million levels deep gets a 4xx from every JSON route
/// and the server lives on (sonic-rs skipped such values recursively and
/// the stack overflowed, aborting the process).
#[test]
fn deeply_nested_bodies_are_refused_not_fatal() -> Result<()> {
    let s = TestServer::spawn()?;
    let deep = "[".repeat(1 << 20);
    let deep_value = format!(r#"[{{"metric":"m","timestamp":1,"value":{deep}}}]"#);
    let post = |path| ("POST", path, deep.as_str());
    for (method, path, body) in [
        post("/api/put"),
        ("POST", "/api/put", deep_value.as_str()),
        post("/api/mput"),
        post("/api/query"),
        post("/api/query/last"),
        post("/api/search/lookup"),
        post("/api/dump_meta"),
        post("/v1/datapoint"),
        ("PUT", "/v1/datapoint", deep.as_str()),
        ("PUT", "/v1/row", deep.as_str()),
        post("/v2/push/"),
        post("/api/c/compapi/v2/monitor_v3/metadata_query_time_series_group/"),
    ] {
        let reply = s.send(method, path, &[], Some(body.as_bytes()))?;
        let (status, text) = (reply.status, reply.body);
        // BlueKing's envelope carries its errors with HTTP 200.
        let refused = (400..500).contains(&status)
            || (status == 200 && json(&text)?["result"] == serde_json::json!(false));
        assert!(
            refused,
            "{method} {path}: {status} {}",
            text.chars().take(200).collect::<String>()
        );
        let (alive, _) = s.get("/api/version")?;
        assert_eq!(alive, 200, "the server died on {path}");
    }
    Ok(())
}

/// A request refused before its body is read still gets its answer, not
/// a broken pipe, though the client sends all 8 MiB before reading (as
/// ureq and most SDKs do); nothing of the refused body is stored and the
/// connection serves on.
#[test]
fn refusals_reach_clients_still_sending_the_body() -> Result<()> {
    use crate::access::{Caller, baidu, server, tsdb};
    let s = server()?;
    let point = r#"{"metric":"refused.m","timestamp":1465405000,"value":1,"tags":{"h":"a"}},"#;
    let mut body = "[".to_owned() + &point.repeat((8 << 20) / point.len());
    body.pop();
    body.push(']');
    for (who, path) in [
        (Caller::None, "/api/put"),
        (Caller::Wrong, "/api/put"),
        (Caller::Key("reader"), "/api/put"),
        (Caller::Key("root"), "/api/no/such/route"),
    ] {
        let (status, text) = tsdb(&s, who, "POST", path, Some(&body))?;
        assert!((400..500).contains(&status), "{who:?} {path}: {status}");
        assert!(json(&text)?["error"]["message"].is_string(), "{text}");
    }
    let (status, text) = baidu(&s, Caller::None, "POST", "/v1/datapoint", None, Some(&body))?;
    assert!((400..500).contains(&status), "/v1/datapoint: {status}");
    assert!(json(&text)?["code"].is_string(), "{text}");
    let q = r#"{"start":1465400000,"queries":[{"metric":"refused.m","aggregator":"sum"}]}"#;
    let (status, text) = tsdb(&s, Caller::Key("root"), "POST", "/api/query", Some(q))?;
    // OpenTSDB's answer for a metric never written.
    assert_eq!(status, 400, "a refused body was stored: {text}");
    assert!(text.contains("No such name"), "{text}");
    Ok(())
}
