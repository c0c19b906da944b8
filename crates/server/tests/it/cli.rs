//! The command line: help texts, environment variables, the loopback rule.

use anyhow::Result;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn sundial() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sundial"))
}

#[test]
fn help_describes_every_flag() -> Result<()> {
    let top = sundial().arg("--help").output()?;
    assert!(top.status.success());
    assert!(String::from_utf8(top.stdout)?.contains("serve"));
    let serve = String::from_utf8(sundial().args(["serve", "--help"]).output()?.stdout)?;
    for flag in [
        "--config",
        "--data-dir",
        "--listen",
        "--allow-unauthenticated",
        "SUNDIAL_DATA_DIR",
        "SUNDIAL_LISTEN",
    ] {
        assert!(serve.contains(flag), "serve --help lacks {flag}");
    }
    Ok(())
}

#[test]
fn non_loopback_without_credentials_is_refused() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let out = sundial()
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path())
        .output()?;
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr)?.contains("--allow-unauthenticated"));
    Ok(())
}

#[test]
fn environment_variables_configure_serve() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("from-env");
    let mut child = sundial()
        .arg("serve")
        .env("SUNDIAL_DATA_DIR", &data)
        .env("SUNDIAL_LISTEN", "127.0.0.1:0")
        .env("SUNDIAL_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        BufReader::new(out).read_line(&mut line)?;
    }
    let _ = child.kill();
    child.wait()?;
    assert!(
        line.starts_with("sundial listening on 127.0.0.1:"),
        "{line}"
    );
    assert!(data.is_dir());
    Ok(())
}

#[test]
fn bad_config_file_is_reported() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[opentsdb]\nmax_tags = 0\n")?;
    let out = sundial()
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&cfg)
        .arg("--data-dir")
        .arg(dir.path().join("d"))
        .output()?;
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr)?.contains("max_tags"));
    Ok(())
}
