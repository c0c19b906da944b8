//! Column codecs for Sundial's block files. Knows nothing of series or
//! APIs: it turns timestamp and value sequences into bytes and back.
//!
//! * Timestamps: `pco` over i64 (it finds the delta order itself, so a
//!   regular interval costs a few bits per point).
//! * Numbers: Longs and Booleans as i64, Doubles as decimal-scaled i64
//!   when every value has at most 9 decimals (agents send 2), else raw
//!   f64, both through `pco`; a kind stream only when a column mixes kinds.
//! * Streams of a few numbers skip `pco` for varint deltas ([`stream`]).
//! * Text and bytes: length-prefixed.
//!
//! Decoders validate as they read and return `Err` on any damage; they
//! never panic.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzz;
mod numeric;
mod stream;
mod timestamps;
pub mod value;
pub mod varint;

pub use numeric::{
    Num, NumColumn, decode_number_column, decode_numbers, encode_numbers_into, encode_numbers_with,
};
pub use timestamps::{decode_timestamps, encode_timestamps_into, encode_timestamps_with};

/// How hard `pco` works. The format is the same; decoders need not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Effort {
    /// pco's default level: what compacted blocks keep.
    #[default]
    Small,
    /// Level 2: several times faster, a few percent larger; for blocks a
    /// compaction rewrites anyway.
    Fast,
}

impl Effort {
    fn level(self) -> usize {
        match self {
            Effort::Small => pco::DEFAULT_COMPRESSION_LEVEL,
            Effort::Fast => 2,
        }
    }
}
pub use varint::{decode_texts, encode_texts_into};

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("input ends early: {0}")]
    Truncated(&'static str),
    #[error("invalid encoding: {0}")]
    Invalid(String),
    #[error("pco: {0}")]
    Pco(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
