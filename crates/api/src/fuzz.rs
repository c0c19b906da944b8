//! Fuzz entry points of every wire adapter, under the names of their
//! targets in `fuzz/` (which runs them under libFuzzer); `cargo test`
//! replays the committed corpus and regressions of each.

pub use crate::baidu::fuzz::{auth as baidu_auth, query as baidu_query, write as baidu_write};
pub use crate::bk::fuzz::{esb as bk_esb, push as bk_push};
pub use crate::opentsdb::fuzz::{
    put as opentsdb_put, query_get as opentsdb_query_get, query_post as opentsdb_query_post,
    telnet as opentsdb_telnet,
};

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    /// A target's name and entry point.
    type Target = (&'static str, fn(&[u8]));

    const TARGETS: [Target; 9] = [
        ("opentsdb_put", super::opentsdb_put),
        ("opentsdb_telnet", super::opentsdb_telnet),
        ("opentsdb_query_get", super::opentsdb_query_get),
        ("opentsdb_query_post", super::opentsdb_query_post),
        ("baidu_write", super::baidu_write),
        ("baidu_query", super::baidu_query),
        ("baidu_auth", super::baidu_auth),
        ("bk_esb", super::bk_esb),
        ("bk_push", super::bk_push),
    ];

    /// Every file of `fuzz/corpus/<target>` and `fuzz/regressions/<target>`.
    fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
        let mut out = Vec::new();
        for kind in ["corpus", "regressions"] {
            let Ok(entries) = std::fs::read_dir(root.join(kind).join(target)) else {
                continue;
            };
            for path in entries.flatten().map(|e| e.path()) {
                if let Ok(bytes) = std::fs::read(&path) {
                    out.push((path, bytes));
                }
            }
        }
        out
    }

    #[test]
    fn corpus_and_regressions_replay() {
        for (target, run) in TARGETS {
            let inputs = inputs(target);
            assert!(!inputs.is_empty(), "no corpus for {target}");
            for (path, bytes) in inputs {
                eprintln!("{target}: {}", path.display());
                run(&bytes);
            }
        }
    }
}
