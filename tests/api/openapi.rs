use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{Backend, TestApp};

/// Every documented operation exists on the server (answers something other than the
/// generic 404/405); every answer the other tests get is checked against the document.
#[tokio::test]
async fn every_documented_operation_is_served() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (status, served) = app.get("/api/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    let file: Value = serde_json::from_str(talkconnect::platform::OPENAPI_JSON).unwrap();
    assert_eq!(served, file);
    assert_eq!(served["openapi"], "3.1.0");

    let sample_id = uuid::Uuid::new_v4().to_string();
    let mut operations = 0;
    for (template, item) in served["paths"].as_object().unwrap() {
        let path = template
            .replace("{roomId}", &sample_id)
            .replace("{userId}", &sample_id);
        for method in item
            .as_object()
            .unwrap()
            .keys()
            .filter(|m| *m != "parameters")
        {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response = app
                .client
                .request(method.clone(), format!("{}{path}", app.address))
                .send()
                .await
                .unwrap();
            let status = response.status();
            let body: Value = response.json().await.unwrap();
            let generic = body["error"]["code"] == "NOT_FOUND"
                || body["error"]["code"] == "METHOD_NOT_ALLOWED";
            assert!(
                !generic,
                "{method} {template} is documented but not served ({status}: {body})"
            );
            operations += 1;
        }
    }
    assert!(operations >= 15, "only {operations} operations documented");
}
