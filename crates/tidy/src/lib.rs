//! The rules of `ARCHITECTURE.md` that a machine can check, so that they are enforced rather
//! than remembered. The test binary of this crate applies them to the workspace; the rules
//! themselves are pure functions over what `cargo metadata` says and what the files hold.

mod layering;
mod module_docs;
mod workspace;

pub use layering::{LAYERS, Layer, Violation, check_layering};
pub use module_docs::{lacks_module_doc, rust_files};
pub use workspace::{Dependency, DependencyKind, Package, TidyError, workspace_packages};
