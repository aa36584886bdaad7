//! The configuration loader on a configuration file's text (`Settings::from_toml_str`: the
//! embedded defaults, then the file, then validation): no panic, and the same text always
//! gives the same settings, or the same error (with several unknown keys in one table it once
//! named one at random: the config crate kept tables in a HashMap until `preserve_order`;
//! docs/FUZZING.md).
#![no_main]

use libfuzzer_sys::fuzz_target;
use talkconnect::config::Settings;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let answer = || {
        Settings::from_toml_str(text)
            .map(|settings| format!("{settings:?}"))
            .map_err(|e| e.to_string())
    };
    assert_eq!(answer(), answer());
});
