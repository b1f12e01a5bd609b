//! The UI's stylesheets, scripts and icons, compiled into the binary from `crates/server/assets`.
//! Each is served under a name that carries its content's digest, so browsers keep it for a year
//! and a new build is fetched at once.

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

#[derive(rust_embed::Embed)]
#[folder = "assets/"]
struct Files;

struct Asset {
    /// `/assets/<digest>/<name>`.
    url: &'static str,
    digest: String,
}

fn table() -> &'static HashMap<String, Asset> {
    static TABLE: OnceLock<HashMap<String, Asset>> = OnceLock::new();
    TABLE.get_or_init(|| {
        Files::iter()
            .filter_map(|name| {
                let file = Files::get(&name)?;
                let digest = hex::encode(&file.metadata.sha256_hash()[..6]);
                let url: &'static str = Box::leak(format!("/assets/{digest}/{name}").into_boxed_str());
                Some((name.into_owned(), Asset { url, digest }))
            })
            .collect()
    })
}

/// The address of asset `name`; a missing asset is a bug caught by the page tests.
pub fn url(name: &str) -> &'static str {
    table().get(name).map(|asset| asset.url).unwrap_or("/assets/missing")
}

/// The text of asset `name` (for pages that inline an SVG icon).
pub fn bytes(name: &str) -> Option<std::borrow::Cow<'static, [u8]>> {
    Files::get(name).map(|file| file.data)
}

/// `GET /assets/{digest}/{name}`. An old digest still gets the current file, without the long
/// cache, so a page cached across an upgrade keeps working.
pub async fn serve(Path((digest, name)): Path<(String, String)>) -> Response {
    let Some(file) = Files::get(&name) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let current = table().get(&name).is_some_and(|asset| asset.digest == digest);
    let cache = if current { "public, max-age=31536000, immutable" } else { "no-cache" };
    let content_type = match name.rsplit('.').next() {
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    };
    ([(header::CONTENT_TYPE, HeaderValue::from_static(content_type)), (header::CACHE_CONTROL, HeaderValue::from_static(cache))], file.data)
        .into_response()
}

/// Bytes of every stylesheet and script, the most any page loads (the benchmark reports it).
pub fn css_and_js_bytes() -> usize {
    Files::iter()
        .filter(|name| name.ends_with(".css") || name.ends_with(".js"))
        .filter_map(|name| Files::get(&name).map(|file| file.data.len()))
        .sum()
}
