#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sundial_opentsdb::fuzz::query_post(data));
