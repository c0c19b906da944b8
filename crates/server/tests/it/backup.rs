//! Issue 16: snapshots of a running server, `sundial backup` to a
//! directory and to S3 (incremental, resumable), and `sundial restore`
//! giving the same answers through every API, SQL and BlueKing's
//! metadata; snapshots keep the S3 objects they name across compaction.

use crate::bk::{ok, seed_request};
use crate::durability::T0;
use crate::harness::{TestServer, json, point};
use crate::object_store::{
    BUCKET, answers, fresh_prefix, manifest_keys, objects, on_endpoint, on_s3, s3_env,
    write_everything,
};
use anyhow::{Result, anyhow, bail};
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Output};

const SMALL: &str = "[storage]\nwal_segment_bytes = 8192\nflush_wal_bytes = 16384\n\
                     compaction_min_blocks = 1000\n";

/// `sundial <args>` with `env`; fails unless it exits 0.
fn sundial(args: &[&str], env: &[(&str, String)]) -> Result<String> {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_sundial"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("SUNDIAL_LOG", "warn")
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "sundial {args:?} exited {:?}: {stdout}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(stdout)
}

/// How many files the backup summary says it copied.
fn copied(summary: &str) -> Result<usize> {
    summary
        .lines()
        .find_map(|l| {
            l.split(" files, ")
                .nth(1)?
                .split(" copied")
                .next()?
                .parse()
                .ok()
        })
        .ok_or_else(|| anyhow!("no summary in {summary}"))
}

/// Everything the tests compare: the query set of every API and SQL, and
/// BlueKing's group.
fn state(s: &TestServer) -> Result<Vec<Value>> {
    let mut out = answers(s)?;
    out.push(ok(
        s,
        "metadata_get_time_series_group",
        json!({"time_series_group_id": 1}),
    )?);
    Ok(out)
}

fn restore_and_compare(
    from: &str,
    name: &str,
    want: &[Value],
    env: &[(&str, String)],
) -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("restored");
    let dir_arg = dir.to_string_lossy().into_owned();
    let report = sundial(
        &[
            "restore",
            "--from",
            from,
            "--name",
            name,
            "--data-dir",
            &dir_arg,
        ],
        env,
    )?;
    assert!(report.contains("; 0 damaged"), "{report}");
    let s = TestServer::spawn_with(&dir, &[])?;
    assert_eq!(
        state(&s)?,
        want,
        "answers after restoring {name} from {from}"
    );
    Ok(())
}

#[test]
fn backups_of_a_running_server_restore_to_the_same_answers() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let cfg = tmp.path().join("sundial.toml");
    std::fs::write(&cfg, SMALL)?;
    let data = tmp.path().join("data");
    let s = TestServer::spawn_with(&data, &["--config", cfg.to_str().unwrap_or_default()])?;
    write_everything(&s)?;
    ok(&s, "metadata_create_time_series_group", seed_request())?;
    let at_snapshot = state(&s)?;

    // A snapshot is named, listed, and holds what was written before it.
    let (status, text) = s.post("/admin/snapshots", r#"{"name": "s1"}"#)?;
    assert_eq!(status, 201, "{text}");
    let info = &json(&text)?["snapshot"];
    assert_eq!(info["databases"], json!(["default"]), "{text}");
    assert!(info["blocks"].as_u64().unwrap_or(0) > 0, "{text}");
    let (status, text) = s.post("/admin/snapshots", r#"{"name": "s1"}"#)?;
    assert_eq!(status, 409, "{text}");
    let (status, text) = s.post("/admin/snapshots", r#"{"name": "../x"}"#)?;
    assert_eq!(status, 400, "{text}");
    let listed = s.get_json("/admin/snapshots")?;
    assert_eq!(listed["snapshots"][0]["name"], json!("s1"), "{listed}");

    // Written after the snapshot: in later backups, not in s1.
    let later: Vec<Value> = (0..30)
        .map(|i| point("after.snap", T0 + i, json!(i), &[("h", "x")]))
        .collect();
    let (status, text) = s.post("/api/put", &Value::Array(later).to_string())?;
    assert_eq!(status, 204, "{text}");
    let mut now = state(&s)?;
    now.push(s.get_json(&format!("/api/query?start={T0}&m=sum:after.snap"))?);

    let dest = tmp.path().join("backups");
    let dest_arg = dest.to_string_lossy().into_owned();
    let data_arg = data.to_string_lossy().into_owned();
    // A snapshot directory is backed up while the server runs; the data
    // directory itself is not.
    sundial(
        &[
            "backup",
            "--data-dir",
            &data_arg,
            "--snapshot",
            "s1",
            "--to",
            &dest_arg,
            "--name",
            "from-s1",
        ],
        &[],
    )?;
    let refused = sundial(&["backup", "--data-dir", &data_arg, "--to", &dest_arg], &[]);
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("a server is running")),
        "{refused:?}"
    );
    restore_and_compare(&dest_arg, "from-s1", &at_snapshot, &[])?;

    // Through the server: a fresh snapshot, copied and dropped again.
    let url = s.url("");
    let first = sundial(
        &["backup", "--url", &url, "--to", &dest_arg, "--name", "b1"],
        &[],
    )?;
    let blobs_after_first = std::fs::read_dir(dest.join("blobs"))?.count();
    // Incremental: the blocks s1 already brought are not copied again.
    let total: usize = first
        .lines()
        .find_map(|l| {
            l.split("backup b1: ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .ok_or_else(|| anyhow!("{first}"))?;
    assert!(copied(&first)? < total, "{first}");
    let listed = s.get_json("/admin/snapshots")?;
    assert_eq!(
        listed["snapshots"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
    let restored_now = {
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path().join("r");
        sundial(
            &[
                "restore",
                "--from",
                &dest_arg,
                "--data-dir",
                dir.to_str().unwrap_or_default(),
            ],
            &[],
        )?;
        let r = TestServer::spawn_with(&dir, &[])?;
        let mut got = state(&r)?;
        got.push(r.get_json(&format!("/api/query?start={T0}&m=sum:after.snap"))?);
        got
    };
    assert_eq!(restored_now, now, "the newest backup, restored");

    // Interrupted: the list is written last, so a backup cut off leaves
    // blobs without it; the rerun copies only the blob that is missing.
    let second = sundial(
        &["backup", "--url", &url, "--to", &dest_arg, "--name", "b2"],
        &[],
    )?;
    assert_eq!(
        copied(&second)?,
        std::fs::read_dir(dest.join("blobs"))?.count() - blobs_after_first,
        "{second}"
    );
    std::fs::remove_file(dest.join("backups").join("b2.json"))?;
    let manifest = std::fs::read_to_string(dest.join("backups").join("b1.json"))?;
    let b1: Value = serde_json::from_str(&manifest)?;
    let block = b1["files"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| f["path"].as_str().is_some_and(|p| p.ends_with(".sdb")))
        .ok_or_else(|| anyhow!("no block in {manifest}"))?;
    std::fs::remove_file(
        dest.join("blobs")
            .join(block["id"].as_str().unwrap_or_default()),
    )?;
    let resumed = sundial(
        &["backup", "--url", &url, "--to", &dest_arg, "--name", "b2"],
        &[],
    )?;
    assert_eq!(copied(&resumed)?, 1, "{resumed}");

    // To S3, and back.
    let (prefix, _) = fresh_prefix()?;
    let env = s3_env()?;
    let s3_dest = format!("s3://{BUCKET}/{prefix}-backup");
    sundial(
        &["backup", "--url", &url, "--to", &s3_dest, "--name", "b3"],
        &env,
    )?;
    let restored = tempfile::tempdir()?;
    let dir = restored.path().join("r");
    sundial(
        &[
            "restore",
            "--from",
            &s3_dest,
            "--data-dir",
            dir.to_str().unwrap_or_default(),
        ],
        &env,
    )?;
    let r = TestServer::spawn_with(&dir, &[])?;
    let mut got = state(&r)?;
    got.push(r.get_json(&format!("/api/query?start={T0}&m=sum:after.snap"))?);
    assert_eq!(got, now, "restored from S3");

    // Dropping a snapshot; a restore never writes into a used directory.
    let (status, text) = s.request("DELETE", "/admin/snapshots/s1", None)?;
    assert_eq!(status, 200, "{text}");
    let (status, text) = s.request("DELETE", "/admin/snapshots/s1", None)?;
    assert_eq!(status, 404, "{text}");
    assert!(
        sundial(
            &["restore", "--from", &dest_arg, "--data-dir", &data_arg],
            &[]
        )
        .is_err()
    );
    Ok(())
}

#[test]
fn a_snapshot_keeps_its_objects_on_s3_until_it_is_dropped() -> Result<()> {
    let (prefix, root) = fresh_prefix()?;
    let tmp = tempfile::tempdir()?;
    let cfg = tmp.path().join("s3.toml");
    std::fs::write(&cfg, on_s3(SMALL, &prefix)?)?;
    let data = tmp.path().join("data");
    let s = TestServer::spawn_with(&data, &["--config", cfg.to_str().unwrap_or_default()])?;
    write_everything(&s)?;
    ok(&s, "metadata_create_time_series_group", seed_request())?;
    let before = state(&s)?;
    let (status, text) = s.post("/admin/snapshots?name=pinned", "")?;
    assert_eq!(status, 201, "{text}");
    let snap_db = data.join("snapshots/pinned/db/default");
    let pinned = manifest_keys(&snap_db)?;
    assert!(!pinned.is_empty());

    // Compaction replaces every block; the snapshot's objects stay.
    let (status, text) = s.post("/admin/compact", "")?;
    assert_eq!(status, 200, "{text}");
    let live = manifest_keys(&data.join("db/default"))?;
    assert!(
        pinned.difference(&live).next().is_some(),
        "compaction replaced blocks"
    );
    let stored = objects(&root.join("default"));
    assert!(
        pinned.is_subset(&stored),
        "pinned {pinned:?} stored {stored:?}"
    );

    // The snapshot, backed up from its directory with the blocks read
    // from the bucket, restores to the answers it was taken at.
    let env = s3_env()?;
    let dest = tmp.path().join("backup");
    let store_url = format!("s3://{BUCKET}/{prefix}");
    sundial(
        &[
            "backup",
            "--data-dir",
            data.to_str().unwrap_or_default(),
            "--snapshot",
            "pinned",
            "--object-store",
            &store_url,
            "--to",
            dest.to_str().unwrap_or_default(),
            "--name",
            "p",
        ],
        &env,
    )?;
    restore_and_compare(dest.to_str().unwrap_or_default(), "p", &before, &[])?;

    // Dropped: only the live blocks remain in the bucket.
    let (status, text) = s.request("DELETE", "/admin/snapshots/pinned", None)?;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        objects(&root.join("default")),
        manifest_keys(&data.join("db/default"))?
    );
    assert!(!Path::new(&snap_db).exists());
    Ok(())
}

/// moto, a second S3 implementation: blocks there answer like local ones
/// across compaction and a restart, and a backup to it restores.
#[test]
fn on_moto_blocks_answer_like_local_ones_and_backups_restore() -> Result<()> {
    let moto = sundial_testkit::moto::MotoServer::start(&[BUCKET])?;
    let tmp = tempfile::tempdir()?;
    let (local_cfg, moto_cfg) = (tmp.path().join("local.toml"), tmp.path().join("moto.toml"));
    std::fs::write(&local_cfg, SMALL)?;
    std::fs::write(&moto_cfg, on_endpoint(&moto.endpoint(), SMALL, "blocks"))?;
    let start = |name: &str, cfg: &Path| {
        TestServer::spawn_with(
            &tmp.path().join(name),
            &["--config", cfg.to_str().unwrap_or_default()],
        )
    };
    let (local, remote) = (start("local", &local_cfg)?, start("moto", &moto_cfg)?);
    for s in [&local, &remote] {
        write_everything(s)?;
        ok(s, "metadata_create_time_series_group", seed_request())?;
    }
    // BlueKing tokens and times differ between the two servers: the
    // queries are compared across them, the whole state over time.
    assert!(
        answers(&remote)? == answers(&local)?,
        "answers with blocks on moto differ from local ones"
    );
    let want = state(&remote)?;
    let status = remote.get_json("/admin/storage")?;
    assert!(
        status["databases"]["default"]["remote_blocks"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "{status}"
    );
    for s in [&local, &remote] {
        let (status, text) = s.post("/admin/compact", "")?;
        assert_eq!(status, 200, "{text}");
    }
    assert!(
        answers(&remote)? == answers(&local)?,
        "answers on moto after compaction differ"
    );
    assert!(
        state(&remote)? == want,
        "the state on moto changed in compaction"
    );
    drop(remote);
    let remote = start("moto", &moto_cfg)?;
    assert!(
        state(&remote)? == want,
        "the state on moto changed across a restart"
    );

    let dest = "s3://sundial/backups";
    let env = moto.env();
    sundial(
        &[
            "backup",
            "--url",
            &remote.url(""),
            "--to",
            dest,
            "--name",
            "m1",
        ],
        &env,
    )?;
    restore_and_compare(dest, "m1", &want, &env)
}
