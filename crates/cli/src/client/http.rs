//! A small typed client of the REST API: where the server is, the token, JSON requests, and the
//! one error type that tells a refusal by the server (exit 1) from a server that cannot be
//! reached or understood (exit 2).

use std::fmt;
use std::time::Duration;

use anyhow::bail;
use clap::Args;
use proto::api::ErrorBody;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// How long a JSON request may take. Starting a build fetches the repository first, which can
/// be slow on a large one; log streams have no limit.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the server is and who is asking; every client command takes these.
#[derive(Args, Clone)]
pub(crate) struct Connection {
    /// The server's base URL, e.g. http://127.0.0.1:8000.
    #[arg(long, env = "GANTRY_SERVER", global = true, value_name = "URL", display_order = 100)]
    pub server: Option<String>,
    /// An API token. Prefer the variable: arguments show in process lists.
    #[arg(long, env = "GANTRY_TOKEN", global = true, hide_env_values = true, value_name = "TOKEN", display_order = 101)]
    pub token: Option<String>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let token = self.token.as_ref().map(|_| "<hidden>");
        formatter.debug_struct("Connection").field("server", &self.server).field("token", &token).finish()
    }
}

/// A session opened by signing in: its cookie and the CSRF token its changes carry.
pub(super) struct Session {
    cookie: String,
    csrf: String,
}

/// What went wrong talking to the server.
#[derive(Debug)]
pub(super) enum ClientError {
    /// The server answered with an error status; `body` says why (made up from the status and
    /// the text when the answer was not an `ErrorBody`, as for a proxy's error page).
    Refused { status: StatusCode, body: ErrorBody },
    /// No answer: refused connection, DNS, TLS, timeout.
    Unreachable { base: String, detail: String },
    /// An answer that is not what the API promises.
    BadAnswer { url: String, detail: String },
}

impl fmt::Display for ClientError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Refused { body, .. } => formatter.write_str(&body.error),
            ClientError::Unreachable { base, detail } => {
                write!(formatter, "cannot reach the server at {base}: {detail}; check GANTRY_SERVER (or --server)")
            }
            ClientError::BadAnswer { url, detail } => {
                write!(formatter, "unexpected answer from {url}: {detail}; is GANTRY_SERVER a Gantry server?")
            }
        }
    }
}

impl std::error::Error for ClientError {}

/// The REST API of one server, as one caller.
pub(super) struct Client {
    /// Ends with `/`, so relative segments go below it even when the server lives under a path.
    base: Url,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    /// A client for the server and token given; a missing or malformed server URL is a usage
    /// error. The token is not checked here: the server says whether it is valid.
    pub(super) fn new(connection: &Connection) -> anyhow::Result<Client> {
        let Some(server) = connection.server.as_deref().map(str::trim).filter(|server| !server.is_empty()) else {
            bail!("no server given: set GANTRY_SERVER (or pass --server) to its URL, e.g. http://127.0.0.1:8000");
        };
        let base = match Url::parse(server) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => url,
            _ => bail!("GANTRY_SERVER `{server}` is not an http:// or https:// URL, e.g. http://127.0.0.1:8000"),
        };
        if base.query().is_some() || base.fragment().is_some() {
            bail!("GANTRY_SERVER `{server}` must not have a query or fragment");
        }
        let token = connection.token.clone().filter(|token| !token.is_empty());
        if let Some(token) = &token
            && HeaderValue::from_str(&format!("Bearer {token}")).is_err()
        {
            bail!("GANTRY_TOKEN holds characters a token cannot have (spaces or control characters)");
        }
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("gantry/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| anyhow::anyhow!("cannot set up HTTP: {error}"))?;
        let mut base = base;
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        Ok(Client { base, token, http })
    }

    /// `…/api/v1/<segments>`, each segment percent-encoded.
    pub(super) fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        {
            let mut path = url.path_segments_mut().expect("an http(s) URL has a path");
            path.pop_if_empty().extend(["api", "v1"]).extend(segments);
        }
        url
    }

    fn request(&self, method: Method, url: Url) -> RequestBuilder {
        let request = self.http.request(method, url);
        match &self.token {
            Some(token) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {token}")).expect("checked in Client::new");
                value.set_sensitive(true);
                request.header(AUTHORIZATION, value)
            }
            None => request,
        }
    }

    pub(super) async fn get<T: DeserializeOwned>(&self, segments: &[&str]) -> Result<T, ClientError> {
        self.get_query(segments, &[]).await
    }

    pub(super) async fn get_query<T: DeserializeOwned>(&self, segments: &[&str], query: &[(&str, String)]) -> Result<T, ClientError> {
        let url = self.url(segments);
        let request = self.request(Method::GET, url.clone()).query(query).timeout(REQUEST_TIMEOUT);
        decode(&url, self.send(request).await?).await
    }

    pub(super) async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(&self, segments: &[&str], body: &B) -> Result<T, ClientError> {
        self.with_body(Method::POST, segments, body).await
    }

    pub(super) async fn put<B: Serialize + ?Sized, T: DeserializeOwned>(&self, segments: &[&str], body: &B) -> Result<T, ClientError> {
        self.with_body(Method::PUT, segments, body).await
    }

    #[allow(dead_code)] // No command changes settings yet; kept so the client covers the API's verbs.
    pub(super) async fn patch<B: Serialize + ?Sized, T: DeserializeOwned>(&self, segments: &[&str], body: &B) -> Result<T, ClientError> {
        self.with_body(Method::PATCH, segments, body).await
    }

    /// A DELETE; the answer's body, if any, is not read.
    pub(super) async fn delete(&self, segments: &[&str]) -> Result<(), ClientError> {
        let request = self.request(Method::DELETE, self.url(segments)).timeout(REQUEST_TIMEOUT);
        self.send(request).await.map(drop)
    }

    /// Signs in with a login and password (no token sent): the session opened.
    pub(super) async fn sign_in(&self, login: &proto::api::Login) -> Result<Session, ClientError> {
        let url = self.url(&["login"]);
        let response = self.send(self.http.post(url.clone()).json(login).timeout(REQUEST_TIMEOUT)).await?;
        let header = |name: &str| response.headers().get(name).and_then(|value| value.to_str().ok()).map(str::to_owned);
        let cookie = header("set-cookie").and_then(|cookie| cookie.split(';').next().map(str::to_owned));
        match (cookie, header("x-csrf-token")) {
            (Some(cookie), Some(csrf)) => Ok(Session { cookie, csrf }),
            _ => Err(ClientError::BadAnswer { url: url.to_string(), detail: "the sign-in opened no session".to_owned() }),
        }
    }

    /// POSTs `body` as the signed-in `session` (its cookie and CSRF token, no API token).
    pub(super) async fn post_in_session<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        session: &Session,
        segments: &[&str],
        body: &B,
    ) -> Result<T, ClientError> {
        let url = self.url(segments);
        decode(&url, self.send(self.session_request(session, url.clone()).json(body)).await?).await
    }

    /// Closes `session`.
    pub(super) async fn sign_out(&self, session: &Session) -> Result<(), ClientError> {
        self.send(self.session_request(session, self.url(&["logout"]))).await.map(drop)
    }

    fn session_request(&self, session: &Session, url: Url) -> RequestBuilder {
        let mut cookie = HeaderValue::from_str(&session.cookie).unwrap_or_else(|_| HeaderValue::from_static(""));
        cookie.set_sensitive(true);
        self.http.post(url).header(reqwest::header::COOKIE, cookie).header("x-csrf-token", &session.csrf).timeout(REQUEST_TIMEOUT)
    }

    async fn with_body<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        body: &B,
    ) -> Result<T, ClientError> {
        let url = self.url(segments);
        let request = self.request(method, url.clone()).json(body).timeout(REQUEST_TIMEOUT);
        decode(&url, self.send(request).await?).await
    }

    /// A GET whose body the caller reads as it arrives (logs): no overall time limit.
    pub(super) async fn open_stream(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
        headers: &[(&str, String)],
    ) -> Result<Response, ClientError> {
        let mut request = self.request(Method::GET, self.url(segments)).query(query);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        self.send(request).await
    }

    /// Sends, and turns an error status into `Refused` with the server's `ErrorBody`.
    async fn send(&self, request: RequestBuilder) -> Result<Response, ClientError> {
        let response = request.send().await.map_err(|error| self.unreachable(&error))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str::<ErrorBody>(&text).unwrap_or_else(|_| ErrorBody {
            code: status.as_str().to_owned(),
            error: describe_status(status, &text),
            field: None,
        });
        Err(ClientError::Refused { status, body })
    }

    pub(super) fn unreachable(&self, error: &reqwest::Error) -> ClientError {
        let detail = if error.is_timeout() { "no answer in time".to_owned() } else { root_cause(error) };
        ClientError::Unreachable { base: self.base.as_str().trim_end_matches('/').to_owned(), detail }
    }
}

async fn decode<T: DeserializeOwned>(url: &Url, response: Response) -> Result<T, ClientError> {
    let bytes = response.bytes().await.map_err(|error| ClientError::BadAnswer { url: url.to_string(), detail: root_cause(&error) })?;
    serde_json::from_slice(&bytes)
        .map_err(|error| ClientError::BadAnswer { url: url.to_string(), detail: format!("not the JSON expected ({error})") })
}

/// The innermost cause, which says what actually failed ("Connection refused (os error 111)")
/// where the outer ones only say that sending failed.
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

/// An error answer that is not an `ErrorBody` (a proxy's page, a panic's text): the status,
/// and the start of the text when it is short and readable.
fn describe_status(status: StatusCode, text: &str) -> String {
    let reason = status.canonical_reason().unwrap_or("error");
    let text = text.trim();
    if text.is_empty() || text.starts_with('<') {
        return format!("the server answered {} {reason}", status.as_u16());
    }
    let first_line: String = text.lines().next().unwrap_or_default().chars().take(200).collect();
    format!("the server answered {} {reason}: {first_line}", status.as_u16())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(server: &str) -> anyhow::Result<Client> {
        Client::new(&Connection { server: Some(server.into()), token: Some("secret".into()) })
    }

    #[test]
    fn urls_encode_segments_and_keep_a_base_path() {
        let url = client("http://127.0.0.1:8000").unwrap().url(&["repos", "acme", "shop", "secrets", "a b/c"]);
        assert_eq!(url.as_str(), "http://127.0.0.1:8000/api/v1/repos/acme/shop/secrets/a%20b%2Fc");
        let url = client("https://ci.example.com/gantry").unwrap().url(&["repos"]);
        assert_eq!(url.as_str(), "https://ci.example.com/gantry/api/v1/repos");
        let url = client("https://ci.example.com/gantry/").unwrap().url(&["repos"]);
        assert_eq!(url.as_str(), "https://ci.example.com/gantry/api/v1/repos");
    }

    #[test]
    fn a_server_must_be_an_http_url() {
        for bad in ["", "127.0.0.1:8000", "localhost:8000", "ftp://example.com", "http://x/?a=b"] {
            assert!(client(bad).is_err(), "{bad}");
        }
        let missing = Client::new(&Connection { server: None, token: None }).err().unwrap().to_string();
        assert!(missing.contains("GANTRY_SERVER"), "{missing}");
    }

    #[test]
    fn debug_output_hides_the_token() {
        let connection = Connection { server: Some("http://x".into()), token: Some("hunter2".into()) };
        assert!(!format!("{connection:?}").contains("hunter2"));
    }

    #[test]
    fn error_answers_that_are_not_json_still_say_something() {
        assert_eq!(describe_status(StatusCode::BAD_GATEWAY, "<html>…</html>"), "the server answered 502 Bad Gateway");
        assert_eq!(
            describe_status(StatusCode::UNPROCESSABLE_ENTITY, "Failed to deserialize the JSON body\nmore"),
            "the server answered 422 Unprocessable Entity: Failed to deserialize the JSON body"
        );
    }
}
