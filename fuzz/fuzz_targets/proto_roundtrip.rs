//! Fuzz target: bodies of the agent protocol and the REST API. Any bytes are read as each body
//! type; whatever reads is written and read again and must come back the same, so that what
//! one side sends is what the other side reads.

#![no_main]

use libfuzzer_sys::fuzz_target;
use proto::{agent, api};
use serde::Serialize;
use serde::de::DeserializeOwned;

fuzz_target!(|data: &[u8]| {
    // What the server reads from agents, and what agents read from the server.
    round_trip::<agent::RegisterRequest>(data);
    round_trip::<agent::LeaseRequest>(data);
    round_trip::<agent::JobUpdates>(data);
    round_trip::<agent::JobDone>(data);
    round_trip::<agent::Heartbeat>(data);
    round_trip::<agent::RegisterResponse>(data);
    round_trip::<agent::Job>(data);
    round_trip::<agent::JobUpdatesResponse>(data);
    round_trip::<agent::CancelWaitResponse>(data);
    round_trip::<agent::HeartbeatResponse>(data);
    // Request bodies of the REST API, and the error body every client reads.
    round_trip::<api::UserCreate>(data);
    round_trip::<api::Login>(data);
    round_trip::<api::TokenCreate>(data);
    round_trip::<api::MemberSet>(data);
    round_trip::<api::RepoCreate>(data);
    round_trip::<api::RepoUpdate>(data);
    round_trip::<api::BuildCreate>(data);
    round_trip::<api::SecretWrite>(data);
    round_trip::<api::CronWrite>(data);
    round_trip::<api::NotifierCreate>(data);
    round_trip::<api::ErrorBody>(data);
});

/// Reads `data` as `T`; when it reads, writing and reading again gives the same JSON.
fn round_trip<T: Serialize + DeserializeOwned>(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<T>(data) else {
        return;
    };
    let name = std::any::type_name::<T>();
    let written = serde_json::to_string(&value).unwrap_or_else(|error| panic!("{name} read but does not write: {error}"));
    let read_again: T =
        serde_json::from_str(&written).unwrap_or_else(|error| panic!("{name} does not read what it wrote: {error}\n{written}"));
    let written_again = serde_json::to_string(&read_again).expect("written once, written twice");
    assert_eq!(written, written_again, "{name} changed on its way through JSON");
}
