//! Sundial's wire APIs. Each folder turns its protocol into
//! `sundial-model` values, makes one engine call, and renders the answer in
//! its own shape.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod baidu;
pub mod body;
pub mod opentsdb;
