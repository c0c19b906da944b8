#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sundial_cluster::fuzz::local_log(data));
