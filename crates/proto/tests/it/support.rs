//! The one check every wire type goes through: JSON and back gives the same value, and the JSON is the pinned one.

use std::fmt::Debug;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// `value` written as JSON reads back equal, both as text and as a JSON value, and the JSON is
/// the snapshot `<module>@<Type>.snap` (`agent@Job.snap` for `proto::agent::Job`).
pub(crate) fn check<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: &T) {
    let (module, type_name) = names::<T>();
    let text = serde_json::to_string(value).unwrap_or_else(|error| panic!("{type_name} does not write: {error}"));
    let read: T = serde_json::from_str(&text).unwrap_or_else(|error| panic!("{type_name} does not read what it wrote: {error}\n{text}"));
    assert_eq!(&read, value, "{type_name} changed on its way through JSON:\n{text}");
    let json = serde_json::to_value(value).unwrap();
    let read: T = serde_json::from_value(json.clone()).unwrap_or_else(|error| panic!("{type_name} does not read its JSON value: {error}"));
    assert_eq!(&read, value, "{type_name} changed on its way through a JSON value");
    pin(module, type_name, &json);
}

/// Every value of an enum round-trips, and the list of their spellings is pinned as one snapshot.
pub(crate) fn check_each<T: Serialize + DeserializeOwned + PartialEq + Debug>(values: &[T]) {
    let (module, type_name) = names::<T>();
    for value in values {
        let text = serde_json::to_string(value).unwrap();
        let read: T = serde_json::from_str(&text).unwrap_or_else(|error| panic!("{type_name} does not read {text}: {error}"));
        assert_eq!(&read, value, "{type_name} changed on its way through JSON: {text}");
    }
    pin(module, type_name, &serde_json::to_value(values).unwrap());
}

/// What an older peer sends, without the fields it did not know yet, reads as `expected`.
pub(crate) fn reads_as<T: DeserializeOwned + PartialEq + Debug>(json: serde_json::Value, expected: &T) {
    let read: T = serde_json::from_value(json.clone()).unwrap_or_else(|error| panic!("{json} does not read: {error}"));
    assert_eq!(&read, expected, "{json}");
}

fn pin(module: &str, type_name: &str, json: &serde_json::Value) {
    insta::with_settings!({snapshot_suffix => type_name, prepend_module_to_snapshot => false, omit_expression => true}, {
        insta::assert_json_snapshot!(module, json);
    });
}

/// `("agent", "Job")` for `proto::agent::Job`.
fn names<T>() -> (&'static str, &'static str) {
    let full = std::any::type_name::<T>();
    let mut parts = full.rsplit("::");
    let type_name = parts.next().unwrap_or(full);
    let module = parts.next().unwrap_or("proto");
    (module, type_name)
}
