//! The configuration loader on a configuration file's text (`Settings::from_toml_str`: the
//! embedded defaults, then the file, then validation): no panic, and the same text always
//! gives the same answer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use talkconnect::config::Settings;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let first = format!("{:?}", Settings::from_toml_str(text));
    let second = format!("{:?}", Settings::from_toml_str(text));
    assert_eq!(first, second);
});
