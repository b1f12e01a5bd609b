//! The committed OpenAPI document is the one the code generates. Regenerate it with
//! `GANTRY_UPDATE_OPENAPI=1 cargo test -p server openapi`.

#[test]
fn the_committed_openapi_document_is_current() {
    let path = format!("{}/openapi.json", env!("CARGO_MANIFEST_DIR"));
    let generated = server::app::openapi_json() + "\n";
    if std::env::var("GANTRY_UPDATE_OPENAPI").as_deref() == Ok("1") {
        std::fs::write(&path, &generated).expect("write openapi.json");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "crates/server/openapi.json is stale: run `GANTRY_UPDATE_OPENAPI=1 cargo test -p server openapi` and commit it"
    );
}

/// The generated document, as JSON.
fn document() -> serde_json::Value {
    serde_json::from_str(&server::app::openapi_json()).expect("the document is JSON")
}

/// Every operation of the document, as (method, path, operation).
fn operations(document: &serde_json::Value) -> Vec<(String, String, serde_json::Value)> {
    let paths = document["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object().expect("a path item").iter().map(move |(method, operation)| (method.clone(), path.clone(), operation.clone()))
        })
        .collect()
}

/// Query parameters were documented as path parameters (`IntoParams` puts them in the path unless
/// told otherwise), so no client could send them. Found by schemathesis.
#[test]
fn only_a_paths_own_parameters_are_documented_in_the_path() {
    for (method, path, operation) in operations(&document()) {
        for parameter in operation["parameters"].as_array().into_iter().flatten() {
            let name = parameter["name"].as_str().expect("a parameter name");
            if parameter["in"] == "path" {
                assert!(path.contains(&format!("{{{name}}}")), "{method} {path} documents `{name}` as a path parameter");
            }
        }
    }
}

/// What axum's extractors answer before a handler runs was missing from most operations: a body
/// that is not JSON, of the wrong shape or without its content type, a caller without a token,
/// a repository that does not exist. Found by schemathesis.
#[test]
fn every_operation_documents_what_its_extractors_answer() {
    for (method, path, operation) in operations(&document()) {
        let documented = |status: &str| operation["responses"].get(status).is_some();
        let mut expected = Vec::new();
        if path.starts_with("/api/v1/") && operation.get("requestBody").is_some() {
            expected.extend(["400", "413", "415", "422"]);
        }
        if path.starts_with("/api/v1/") && path != "/api/v1/login" {
            expected.push("401");
        }
        if path.starts_with("/api/v1/repos/{owner}/{name}") {
            expected.extend(["403", "404"]);
        }
        for status in expected {
            assert!(documented(status), "{method} {path} does not document {status}");
        }
    }
}
