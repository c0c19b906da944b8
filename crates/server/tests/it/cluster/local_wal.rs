//! `wal = "local"` in a process: one node of every role logging on its
//! own disk, no NATS. Killed with `kill -9` after writes it had not
//! checkpointed and started again on the same directory, it answers as a
//! single node given the same writes.

use super::{node_config, puts, same_answers, until_not_busy, until_shards};
use crate::harness::TestServer;
use crate::object_store::fresh_store_keys;
use anyhow::Result;
use sundial_testkit::postgres::Postgres;

#[test]
fn a_node_with_a_local_log_loses_nothing_to_kill_9() -> Result<()> {
    let pg = Postgres::start()?;
    let store = fresh_store_keys()?;
    let tmp = tempfile::tempdir()?;
    let config = node_config(&pg.url(), "", &store, "all", "local-1")
        .replace("[cluster]\n", "[cluster]\nwal = \"local\"\n")
        // Checkpoints far apart: the writes stay in the log.
        .replace("checkpoint_secs = 2", "checkpoint_secs = 3600");
    let path = tmp.path().join("sundial.toml");
    std::fs::write(&path, config)?;
    let path = path.to_string_lossy().into_owned();
    let data = tmp.path().join("data");
    let single = TestServer::spawn()?;
    let mut node = TestServer::spawn_with(&data, &["--config", &path])?;
    until_shards(std::slice::from_ref(&node), |owned, unconfirmed| {
        owned == super::SHARDS as usize && unconfirmed == 0
    })?;
    for body in puts(0..20, 5) {
        let (status, text) = until_not_busy(&node, "POST", "/api/put", Some(&body))?;
        assert_eq!(status, 204, "{text}");
        assert_eq!(single.post("/api/put", &body)?.0, 204);
    }
    same_answers(&single, &node, 20)?;
    node.kill9()?;
    let node = TestServer::spawn_with(&data, &["--config", &path])?;
    until_shards(std::slice::from_ref(&node), |owned, unconfirmed| {
        owned == super::SHARDS as usize && unconfirmed == 0
    })?;
    same_answers(&single, &node, 20)?;
    Ok(())
}
