//! Rebuilds the store when a migration is added: `sqlx::migrate!` embeds the folder's files,
//! but on stable Rust it cannot tell cargo to watch the folder itself.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
