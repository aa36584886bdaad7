//! The configuration loader on a configuration file's text (`Settings::from_toml_str`: the
//! embedded defaults, then the file, then validation): no panic, and the same text always
//! gives the same settings, or an error both times. Only the fact of the error is compared:
//! with several unknown keys in one table, which one the message names varies from run to
//! run (the config crate keeps tables in a HashMap; docs/FUZZING.md).
#![no_main]

use libfuzzer_sys::fuzz_target;
use talkconnect::config::Settings;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let answer = || Settings::from_toml_str(text).map(|settings| format!("{settings:?}"));
    assert_eq!(answer().ok(), answer().ok());
});
