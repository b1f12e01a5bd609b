//! Fuzz target: a webhook delivery (headers and body) for every forge kind, signed by the
//! target so that parsing goes past the signature check, and unsigned, signed with another key
//! or with no secret, which must all be refused as unauthenticated. Nothing panics, and what is
//! accepted holds together (a push's reference names its branch).
//!
//! The input is an HTTP-like delivery: `name: value` header lines, an empty line, the body. An
//! input without an empty line is all body, with no headers.
//!
//! `forge::webhook` is pure (no IO); it is compiled here from its source file rather than through
//! the `forge` crate, whose HTTP client and TLS stack would triple the time to build the targets.

#![no_main]

#[path = "../../crates/forge/src/webhook.rs"]
#[allow(dead_code)]
mod webhook;

use hmac::{Hmac, KeyInit, Mac};
use libfuzzer_sys::fuzz_target;
use proto::ForgeKind;
use sha2::Sha256;
use webhook::{AuthFailure, HookEvent, WebhookError, parse};

const SECRET: &str = "fuzz-webhook-secret";
const NULL_COMMIT: &str = "0000000000000000000000000000000000000000";
const FORGES: [ForgeKind; 4] = [ForgeKind::Github, ForgeKind::Gitea, ForgeKind::Gitlab, ForgeKind::Generic];
/// Every header a forge signs or authenticates with.
const SIGNATURE_HEADERS: [&str; 4] = ["x-hub-signature-256", "x-gitea-signature", "x-forgejo-signature", "x-gitlab-token"];

fuzz_target!(|data: &[u8]| {
    let (headers, body) = split_delivery(data);
    let signs_itself = headers.iter().any(|(name, _)| SIGNATURE_HEADERS.iter().any(|header| name.eq_ignore_ascii_case(header)));
    for forge in FORGES {
        // Signed as the forge signs: never refused as unauthenticated.
        let signed = with_first(signature(forge, body, SECRET, data.len()), &headers);
        match parse(forge, &signed, body, SECRET) {
            Ok(delivery) => check_event(&delivery.event),
            Err(WebhookError::Malformed { .. }) => {}
            Err(error) => panic!("a correctly signed {forge:?} delivery was refused: {error}"),
        }
        // Signed with another key: refused.
        let forged = with_first(signature(forge, body, "another-secret", data.len()), &headers);
        let refusal = parse(forge, &forged, body, SECRET).expect_err("a delivery signed with another key was accepted");
        assert!(refusal.is_unauthenticated(), "{forge:?}: a wrongly signed delivery was refused as {refusal}");
        // As given: refused unless the input carries a signature of its own, which it cannot
        // have computed (the secret is not in it).
        let as_given = parse(forge, &headers, body, SECRET);
        if !signs_itself {
            assert!(
                matches!(as_given, Err(WebhookError::Unauthenticated(AuthFailure::MissingSignature { .. }))),
                "{forge:?}: an unsigned delivery was not refused for its missing signature: {as_given:?}"
            );
        } else if !String::from_utf8_lossy(data).contains(SECRET) {
            assert!(matches!(&as_given, Err(error) if error.is_unauthenticated()), "{forge:?}: a self-signed delivery got {as_given:?}");
        }
        // A repository without a secret verifies nothing.
        let no_secret = parse(forge, &signed, body, "");
        assert!(matches!(no_secret, Err(WebhookError::Unauthenticated(AuthFailure::NoSecret))), "{forge:?}: {no_secret:?}");
    }
});

/// Header lines up to the first empty line, then the body.
fn split_delivery(data: &[u8]) -> (Vec<(String, String)>, &[u8]) {
    let Some(end) = data.windows(2).position(|pair| pair == b"\n\n") else {
        return (Vec::new(), data);
    };
    let headers = String::from_utf8_lossy(&data[..end])
        .lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    (headers, &data[end + 2..])
}

/// The header the forge authenticates with, in one of the spellings it sends (picked by `pick`).
fn signature(forge: ForgeKind, body: &[u8], key: &str, pick: usize) -> (String, String) {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("any key length");
    mac.update(body);
    let digest = hex::encode(mac.finalize().into_bytes());
    match forge {
        ForgeKind::Github | ForgeKind::Generic => {
            let name = if pick.is_multiple_of(2) { "x-hub-signature-256" } else { "X-Hub-Signature-256" };
            (name.to_owned(), format!("sha256={digest}"))
        }
        ForgeKind::Gitea => match pick % 3 {
            0 => ("x-gitea-signature".to_owned(), digest),
            1 => ("x-forgejo-signature".to_owned(), digest),
            _ => ("x-hub-signature-256".to_owned(), format!("sha256={digest}")),
        },
        ForgeKind::Gitlab => ("x-gitlab-token".to_owned(), key.to_owned()),
    }
}

/// `first`, then every header of the input but those that authenticate (a forge sends one
/// signature per header name, and a second one would be the input's, not the forge's).
fn with_first(first: (String, String), headers: &[(String, String)]) -> Vec<(String, String)> {
    std::iter::once(first)
        .chain(headers.iter().filter(|(name, _)| !SIGNATURE_HEADERS.iter().any(|header| name.eq_ignore_ascii_case(header))).cloned())
        .collect()
}

fn check_event(event: &HookEvent) {
    match event {
        HookEvent::Push(push) => {
            assert_eq!(push.reference, format!("refs/heads/{}", push.branch));
            assert_ne!(push.commit, NULL_COMMIT, "a push of a deleted branch");
            assert_ne!(push.before.as_deref(), Some(NULL_COMMIT));
            assert_ne!(push.before.as_deref(), Some(""));
        }
        HookEvent::Tag(tag) => {
            assert_eq!(tag.reference, format!("refs/tags/{}", tag.tag));
            assert_ne!(tag.commit, NULL_COMMIT, "a push of a deleted tag");
        }
        HookEvent::PullRequest(_) | HookEvent::Deleted { .. } | HookEvent::Ping | HookEvent::Ignored { .. } => {}
    }
}
