//! Pipelines with the mistakes people make: each diagnostic names the file, line and column,
//! says what is wrong and, where it helps, what to do. Pinned by snapshots of the CLI rendering.

use pipeline::lint_files;

use crate::support::{cases, load, render_diagnostics};

#[test]
fn diagnostics_match_snapshots() {
    for (name, dir) in cases("diagnostics") {
        let files = load(&dir);
        let diagnostics = lint_files(&files);
        assert!(diagnostics.iter().any(|d| d.is_error()), "{name}: expected at least one error");
        insta::with_settings!({snapshot_suffix => name.clone(), prepend_module_to_snapshot => false, omit_expression => true}, {
            insta::assert_snapshot!("diagnostics", render_diagnostics(&diagnostics, &files));
        });
    }
}
