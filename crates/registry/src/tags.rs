//! Listing a repository's tags, page after page: the `Link` header the registry sends where it
//! has more, else `n` and `last` while pages come back full.

use std::collections::HashSet;

use crate::client::{Credentials, Registry};
use crate::error::{Context, RegistryError};

/// The most pages one listing reads: a repository with more tags than this is refused rather
/// than read for ever.
const MAX_PAGES: usize = 200;

const LIST_TAGS: &str = "list tags";

/// One page of `GET /v2/<name>/tags/list`.
#[derive(serde::Deserialize)]
struct TagPage {
    /// `null` in some registries' answer for a repository without tags.
    #[serde(default)]
    tags: Option<Vec<String>>,
}

impl Registry {
    /// Every tag of `repository` (`registry/name`), in the registry's order, each once.
    /// `RegistryError::NotFound` when the registry does not know the repository,
    /// `Unauthorized` when it wants other credentials (or some).
    pub async fn list_tags(&self, repository: &str, credentials: Option<&Credentials>) -> Result<Vec<String>, RegistryError> {
        let session = self.session(repository, credentials, LIST_TAGS).await?;
        let context = session.context(repository, LIST_TAGS);
        let authorization = session.authorization().await.map_err(|error| context.classify(error))?;
        let http = session.http(&context)?;
        let origin = session.origin();
        let first = format!("{origin}/v2/{}/tags/list", session.repository.repository());

        let mut tags = Vec::new();
        let mut seen = HashSet::new();
        let page_size = self.tag_page_size;
        let mut request = http.get(&first).query(&[("n", page_size)]);
        for page_number in 0..MAX_PAGES {
            if page_number > 0 {
                session.pace().await;
            }
            let response = authorization.apply(request).send().await.map_err(|error| context.request(&error))?;
            let status = response.status();
            if matches!(status.as_u16(), 401 | 403) {
                return Err(RegistryError::Unauthorized {
                    registry: session.registry().to_owned(),
                    repository: session.repository.repository().to_owned(),
                    operation: LIST_TAGS,
                });
            }
            if status.as_u16() == 404 {
                return Err(RegistryError::NotFound { reference: repository.to_owned() });
            }
            let next = next_link(response.headers(), &origin, &context)?;
            let body = response.bytes().await.map_err(|error| context.request(&error))?;
            if !status.is_success() {
                return Err(RegistryError::Request {
                    registry: session.registry().to_owned(),
                    operation: LIST_TAGS,
                    message: format!("the registry answered {status}"),
                });
            }
            let page: TagPage = serde_json::from_slice(&body).map_err(|error| context.unexpected(error.to_string()))?;
            let page = page.tags.unwrap_or_default();
            let before = tags.len();
            for tag in &page {
                if seen.insert(tag.clone()) {
                    tags.push(tag.clone());
                }
            }
            // A page with nothing new ends the listing whatever it links to: a registry that
            // ignores `last` would otherwise send its first page for ever.
            let progressed = tags.len() > before;
            request = match (next, page.last()) {
                (Some(next), _) if progressed => http.get(next),
                (None, Some(last)) if progressed && page.len() >= page_size => {
                    http.get(&first).query(&[("n", page_size.to_string().as_str()), ("last", last.as_str())])
                }
                _ => return Ok(tags),
            };
        }
        Err(context.unexpected(format!("more than {MAX_PAGES} pages of tags")))
    }
}

/// The next page's address from a `Link: </v2/name/tags/list?last=x&n=100>; rel="next"`
/// header, made absolute on `origin`. A next page on another host is refused: the credentials
/// of this registry are not for it.
fn next_link(headers: &reqwest::header::HeaderMap, origin: &str, context: &Context<'_>) -> Result<Option<String>, RegistryError> {
    for value in headers.get_all(reqwest::header::LINK) {
        let Ok(value) = value.to_str() else { continue };
        for link in value.split(',') {
            let Some((target, parameters)) = link.trim().strip_prefix('<').and_then(|rest| rest.split_once('>')) else { continue };
            let next = parameters.split(';').any(|parameter| {
                let parameter = parameter.trim().replace(' ', "");
                parameter == "rel=\"next\"" || parameter == "rel=next"
            });
            if !next {
                continue;
            }
            if target.starts_with('/') {
                return Ok(Some(format!("{origin}{target}")));
            }
            if target.strip_prefix(origin).is_some_and(|path| path.starts_with('/')) {
                return Ok(Some(target.to_owned()));
            }
            return Err(context.unexpected(format!("the next page of tags is on another host ({target})")));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use reqwest::header::{HeaderMap, HeaderValue, LINK};

    use super::next_link;
    use crate::error::Context;

    fn next(link: &str) -> Result<Option<String>, String> {
        let context = Context {
            registry: "registry.example.com",
            repository: "team/app",
            reference: "registry.example.com/team/app",
            operation: "list tags",
            password: None,
        };
        let mut headers = HeaderMap::new();
        headers.insert(LINK, HeaderValue::from_str(link).unwrap());
        next_link(&headers, "https://registry.example.com", &context).map_err(|error| error.to_string())
    }

    #[test]
    fn the_next_page_is_read_from_the_link_header_on_the_same_registry_only() {
        assert_eq!(
            next("</v2/team/app/tags/list?last=b&n=2>; rel=\"next\"").unwrap().as_deref(),
            Some("https://registry.example.com/v2/team/app/tags/list?last=b&n=2")
        );
        assert_eq!(
            next("<https://registry.example.com/v2/team/app/tags/list?last=b>; rel=next").unwrap().as_deref(),
            Some("https://registry.example.com/v2/team/app/tags/list?last=b")
        );
        assert_eq!(next("</v2/team/app/tags/list?last=a>; rel=\"prev\"").unwrap(), None);
        let elsewhere = next("<https://registry.example.com.evil.test/v2/x>; rel=\"next\"").unwrap_err();
        assert!(elsewhere.contains("another host"), "{elsewhere}");
    }
}
