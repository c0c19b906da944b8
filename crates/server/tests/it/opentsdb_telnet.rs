//! The telnet `put` protocol on the HTTP port (spec 22.2).

use crate::harness::TestServer;
use anyhow::Result;
use serde_json::json;

#[test]
fn telnet_vectors() -> Result<()> {
    let s = TestServer::spawn()?;
    let mut t = s.telnet()?;
    let cases = [
        (
            "put sys.if.bytes.out 1479496100 1.3E3 host=web01 interface=eth0\n",
            "",
        ),
        (
            "put\n",
            "put: illegal argument: not enough arguments (need least 4, got 0)\n",
        ),
        (
            "put m 1500000000 1\n",
            "put: illegal argument: not enough arguments (need least 4, got 3)\n",
        ),
        (
            "put metric.foo notatime 42 host=web01\n",
            "put: invalid value: Invalid character 'n' in notatime\n",
        ),
        (
            "put cpu.idle 1500000000 nan fqdn=h1\n",
            "put: invalid value: Unable to parse value to a number: nan\n",
        ),
        ("put cpu.idle 1500000000 97.5 fqdn=h1  \r\n", ""),
        (
            "put m 1000 1 h=x\n",
            "put: illegal argument: invalid timestamp: 1000\n",
        ),
        (
            "put m 1500000000 1 hx\n",
            "put: illegal argument: invalid tag: hx\n",
        ),
        (
            "put m 1500000000 1 h=a h=b\n",
            "put: illegal argument: duplicate tag: h=b\n",
        ),
        (
            "put sys@cpu 1500000000 1 h=x\n",
            "put: illegal argument: Invalid metric name (\"sys@cpu\"): illegal character: @\n",
        ),
        ("put m2 1500000000.250 1 h=x\n", ""),
        ("bogus\n", "unknown command: bogus.  Try `help'.\n"),
    ];
    for (line, reply) in cases {
        t.send(line)?;
        assert_eq!(t.read_available()?, reply, "{line:?}");
    }
    t.send("version\n")?;
    assert!(!t.read_available()?.trim().is_empty());
    // The connection stayed open through every error.
    t.send("put after.errors 1500000000 5 h=x\n")?;
    assert_eq!(t.read_available()?, "");

    let got = s.get_json("/api/query?start=1479496100&end=1479496100&m=none:sys.if.bytes.out")?;
    assert_eq!(got[0]["dps"], json!({"1479496100": 1300.0}));
    let got = s.get_json("/api/query?start=1500000000&end=1500000000&m=none:cpu.idle")?;
    assert_eq!(got[0]["dps"], json!({"1500000000": 97.5}));
    let got = s.get_json("/api/query?start=1500000000&end=1500000001&ms&m=none:m2")?;
    assert_eq!(got[0]["dps"], json!({"1500000000250": 1}));
    let got = s.get_json("/api/query?start=1500000000&end=1500000000&m=none:after.errors")?;
    assert_eq!(got[0]["dps"], json!({"1500000000": 5}));
    Ok(())
}

#[test]
fn telnet_kind_conflict_and_many_lines_in_one_packet() -> Result<()> {
    let s = TestServer::spawn()?;
    assert_eq!(
        s.post(
            "/api/put",
            &json!({"metric": "txt", "timestamp": 1500000000, "value": "up", "tags": {"h": "x"}})
                .to_string()
        )?
        .0,
        204
    );
    let mut t = s.telnet()?;
    t.send("put txt 1500000001 1 h=x\n")?;
    assert_eq!(
        t.read_available()?,
        "put: illegal argument: Cannot write a numeric value to metric txt: it stores string values\n"
    );
    // collectd writes many lines per packet; all must land.
    let lines: String = (0..500)
        .map(|i| format!("put burst 15000{i:05} {i} h=x\r\n"))
        .collect();
    t.send(&lines)?;
    assert_eq!(t.read_available()?, "");
    let got = s.get_json("/api/query?start=1500000000&end=1500000499&m=none:burst")?;
    let dps = got[0]["dps"].as_object().cloned().unwrap_or_default();
    assert_eq!(dps.len(), 500);
    for i in 0..500i64 {
        assert_eq!(dps.get(&(1_500_000_000 + i).to_string()), Some(&json!(i)));
    }
    t.send("exit\n")?;
    Ok(())
}

#[test]
fn telnet_line_too_long_closes() -> Result<()> {
    let s = TestServer::spawn()?;
    let mut t = s.telnet()?;
    t.send(&format!("put {} 1500000000 1 h=x\n", "a".repeat(9000)))?;
    assert_eq!(t.read_available()?, "error: line too long\n");
    Ok(())
}
