//! Which files of a repository hold its pipeline, in the order Woodpecker and Drone look for them.

/// Where a folder of workflows lives.
pub const WOODPECKER_FOLDER: &str = ".woodpecker";

/// Picks the pipeline files of a repository from the names in its root and, when it exists, in
/// its `.woodpecker/` folder. Woodpecker's order: the folder's `*.yaml`/`*.yml` files (by name),
/// then `.woodpecker.yaml`, then `.woodpecker.yml`; the first that exists wins. Without any,
/// Drone's `.drone.yml` or `.drone.yaml`. Paths returned are relative to the root.
pub fn discover(root_entries: &[&str], woodpecker_folder_entries: Option<&[&str]>) -> Vec<String> {
    if let Some(entries) = woodpecker_folder_entries {
        let mut files: Vec<String> =
            entries.iter().filter(|name| is_yaml(name)).map(|name| format!("{WOODPECKER_FOLDER}/{name}")).collect();
        files.sort();
        if !files.is_empty() {
            return files;
        }
    }
    for candidate in [".woodpecker.yaml", ".woodpecker.yml", ".drone.yml", ".drone.yaml"] {
        if root_entries.contains(&candidate) {
            return vec![candidate.to_owned()];
        }
    }
    Vec::new()
}

fn is_yaml(name: &str) -> bool {
    name.ends_with(".yml") || name.ends_with(".yaml")
}
