#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shikaku_fuzz::check("http_framing", data));
