//! Every error code the server can send is one variant of `ErrorCode`; the OpenAPI document
//! and the web app's list are held against it, so neither can drift from the server.

use serde_json::Value;
use strum::IntoEnumIterator;
use talkconnect::error::ErrorCode;

fn server_codes() -> Vec<String> {
    ErrorCode::iter().map(|c| c.as_str().to_owned()).collect()
}

#[test]
fn codes_serialize_as_their_screaming_snake_case_name() {
    for code in ErrorCode::iter() {
        assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
        assert_eq!(code.as_str().parse::<ErrorCode>().unwrap(), code);
        let debug = format!("{code:?}");
        let screaming: String = debug
            .chars()
            .enumerate()
            .flat_map(|(i, c)| {
                let sep = (i > 0 && c.is_ascii_uppercase()).then_some('_');
                sep.into_iter().chain(c.to_uppercase())
            })
            .collect();
        assert_eq!(code.as_str(), screaming);
    }
}

#[test]
fn the_openapi_document_lists_every_code() {
    let doc: Value = serde_json::from_str(talkconnect::platform::OPENAPI_JSON).unwrap();
    let listed: Vec<String> =
        doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"]
            .as_array()
            .expect("Error.code has an enum")
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect();
    assert_eq!(listed, server_codes(), "docs/openapi.json Error.code enum");
}

/// web/src/errorCodes.ts as it must read.
fn web_list() -> String {
    let mut text = String::from(
        "// Generated from the server's ErrorCode (src/error.rs) by tests/api/error_codes.rs: every code\n\
         // the server may send, REST and Socket.IO alike. Run TALKCONNECT_BLESS=1 cargo test --test api\n\
         // error_codes to write it again after adding a code.\n\
         export const SERVER_ERROR_CODES = [\n",
    );
    for code in server_codes() {
        text.push_str(&format!("  '{code}',\n"));
    }
    text.push_str(
        "] as const;\n\nexport type ServerErrorCode = (typeof SERVER_ERROR_CODES)[number];\n",
    );
    text
}

#[test]
fn the_web_app_knows_every_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/web/src/errorCodes.ts");
    let expected = web_list();
    if std::env::var_os("TALKCONNECT_BLESS").is_some() {
        std::fs::write(path, &expected).unwrap();
    }
    let found = std::fs::read_to_string(path).unwrap();
    assert_eq!(
        found, expected,
        "web/src/errorCodes.ts is stale: TALKCONNECT_BLESS=1 cargo test --test api error_codes"
    );
}
