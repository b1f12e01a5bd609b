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
