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

    #[test]
    fn corpus_and_regressions_replay() {
        for (target, run) in TARGETS {
            let inputs = sundial_codec::fuzz::replay_inputs(target);
            assert!(!inputs.is_empty(), "no corpus for {target}");
            for (path, bytes) in inputs {
                eprintln!("{target}: {}", path.display());
                run(&bytes);
            }
        }
    }
}
