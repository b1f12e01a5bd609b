//! Translating a step's pipeline-level fields into the engine's terms: byte sizes (`512m`),
//! volumes, devices, tmpfs mounts and container names.

use docker::Device;

/// Parses a size the way the docker CLI does (`--memory`, `--shm-size`): a number, optionally
/// with a fraction, then an optional unit `b`, `k`, `m`, `g`, `t` or `p` (binary multiples),
/// optionally followed by `b` or `ib`; case-insensitive.
pub fn parse_byte_size(text: &str) -> Option<i64> {
    let text = text.trim().to_ascii_lowercase();
    let number_end = text.find(|character: char| !(character.is_ascii_digit() || character == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(number_end);
    let number: f64 = number.parse().ok()?;
    let unit = unit.trim_start();
    let unit = unit.strip_suffix("ib").or_else(|| unit.strip_suffix('b').filter(|rest| !rest.is_empty())).unwrap_or(unit);
    let multiplier: f64 = match unit {
        "" | "b" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024.0_f64.powi(4),
        "p" => 1024.0_f64.powi(5),
        _ => return None,
    };
    let bytes = number * multiplier;
    (bytes.is_finite() && bytes >= 0.0 && bytes < i64::MAX as f64).then_some(bytes as i64)
}

/// A step volume as written: `source:target[:mode]`, or a lone path (an anonymous volume).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum VolumeSpec {
    /// A host path bound into the container.
    Host { source: String, target: String, mode: Option<String> },
    /// A named volume; it refers to the workflow's own volume of that name.
    Named { name: String, target: String, mode: Option<String> },
    /// A fresh volume at this path, gone with the container.
    Anonymous { target: String },
}

pub(crate) fn parse_volume(text: &str) -> Option<VolumeSpec> {
    let parts: Vec<&str> = text.split(':').collect();
    let mode = |index: usize| parts.get(index).map(ToString::to_string).filter(|mode| !mode.is_empty());
    match parts.as_slice() {
        [target] if !target.is_empty() => Some(VolumeSpec::Anonymous { target: target.to_string() }),
        [source, target, ..] if parts.len() <= 3 && !source.is_empty() && !target.is_empty() => {
            if source.starts_with('/') {
                Some(VolumeSpec::Host { source: source.to_string(), target: target.to_string(), mode: mode(2) })
            } else {
                Some(VolumeSpec::Named { name: source.to_string(), target: target.to_string(), mode: mode(2) })
            }
        }
        _ => None,
    }
}

/// `host[:container[:permissions]]`, as `docker run --device` takes it.
pub(crate) fn parse_device(text: &str) -> Option<Device> {
    let parts: Vec<&str> = text.split(':').collect();
    let (host_path, container_path, permissions) = match parts.as_slice() {
        [host] => (*host, *host, "rwm"),
        [host, container] if container.starts_with('/') => (*host, *container, "rwm"),
        [host, permissions] => (*host, *host, *permissions),
        [host, container, permissions] => (*host, *container, *permissions),
        _ => return None,
    };
    (!host_path.is_empty()).then(|| Device {
        host_path: host_path.to_string(),
        container_path: container_path.to_string(),
        permissions: permissions.to_string(),
    })
}

/// `path[:options]`, as `docker run --tmpfs` takes it.
pub(crate) fn parse_tmpfs(text: &str) -> Option<(String, String)> {
    let (path, options) = text.split_once(':').unwrap_or((text, ""));
    (!path.is_empty()).then(|| (path.to_string(), options.to_string()))
}

/// Makes `text` usable in a container, network or volume name (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`):
/// other characters become `-`, and it is cut to `max_length`.
pub(crate) fn name_part(text: &str, max_length: usize) -> String {
    let mut part: String = text
        .chars()
        .map(|character| if character.is_ascii_alphanumeric() || matches!(character, '_' | '.' | '-') { character } else { '-' })
        .take(max_length)
        .collect();
    if !part.starts_with(|character: char| character.is_ascii_alphanumeric()) {
        part.insert(0, 'x');
    }
    part
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_the_docker_cli() {
        assert_eq!(parse_byte_size("1024"), Some(1024));
        assert_eq!(parse_byte_size("512m"), Some(512 * 1024 * 1024));
        assert_eq!(parse_byte_size("512MB"), Some(512 * 1024 * 1024));
        assert_eq!(parse_byte_size("1g"), Some(1 << 30));
        assert_eq!(parse_byte_size("1GiB"), Some(1 << 30));
        assert_eq!(parse_byte_size("1.5k"), Some(1536));
        assert_eq!(parse_byte_size("64 m"), Some(64 << 20));
        assert_eq!(parse_byte_size("10b"), Some(10));
        assert_eq!(parse_byte_size("lots"), None);
        assert_eq!(parse_byte_size("5x"), None);
        assert_eq!(parse_byte_size(""), None);
    }

    #[test]
    fn volumes_are_host_paths_named_volumes_or_anonymous() {
        assert_eq!(
            parse_volume("/var/cache:/cache:ro"),
            Some(VolumeSpec::Host { source: "/var/cache".into(), target: "/cache".into(), mode: Some("ro".into()) })
        );
        assert_eq!(parse_volume("deps:/deps"), Some(VolumeSpec::Named { name: "deps".into(), target: "/deps".into(), mode: None }));
        assert_eq!(parse_volume("/scratch"), Some(VolumeSpec::Anonymous { target: "/scratch".into() }));
        assert_eq!(parse_volume("a:b:c:d"), None);
        assert_eq!(parse_volume(":/x"), None);
    }

    #[test]
    fn devices_and_tmpfs_read_like_docker_run() {
        assert_eq!(parse_device("/dev/fuse").unwrap().container_path, "/dev/fuse");
        assert_eq!(parse_device("/dev/sda:/dev/xvda").unwrap().permissions, "rwm");
        assert_eq!(parse_device("/dev/sda:r").unwrap().permissions, "r");
        assert_eq!(parse_device("/dev/sda:/dev/xvda:rw").unwrap().container_path, "/dev/xvda");
        assert_eq!(parse_tmpfs("/run:size=64m"), Some(("/run".into(), "size=64m".into())));
        assert_eq!(parse_tmpfs("/tmp"), Some(("/tmp".into(), String::new())));
    }

    #[test]
    fn names_keep_only_allowed_characters() {
        assert_eq!(name_part("build & test", 40), "build---test");
        assert_eq!(name_part("_private", 40), "x_private");
        assert_eq!(name_part("abcdef", 3), "abc");
    }
}
