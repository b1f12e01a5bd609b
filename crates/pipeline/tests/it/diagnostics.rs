//! Pipelines with the mistakes people make: each diagnostic names the file, line and column,
//! says what is wrong and, where it helps, what to do. Pinned by snapshots of the CLI rendering.

use pipeline::lint_files;

use crate::support::{cases, load, render_diagnostics};

#[test]
fn diagnostics_match_snapshots() {
    for (name, dir) in cases("diagnostics") {
        let files = load(&dir);
        let diagnostics = lint_files(&files);
        assert!(diagnostics.iter().any(pipeline::Diagnostic::is_error), "{name}: expected at least one error");
        insta::with_settings!({snapshot_suffix => name.clone(), prepend_module_to_snapshot => false, omit_expression => true}, {
            insta::assert_snapshot!("diagnostics", render_diagnostics(&diagnostics, &files));
        });
    }
}

/// A minified JSON pipeline is one long line: the rendering shows a window around the column.
#[test]
fn long_lines_are_cut_to_a_window_around_the_caret() {
    let padding = "x".repeat(500);
    let text = format!(r#"{{"pad": "{padding}", "steps": {{"a": {{"image": "alpine", "detach": "maybe"}}}}}}"#);
    let files = [pipeline::SourceFile::new(".woodpecker.yml", text.as_str())];
    let diagnostics = lint_files(&files);
    let detach = diagnostics.iter().find(|d| d.message.contains("detach")).expect("a diagnostic for detach");
    let rendered = detach.render(Some(&text));
    let lines: Vec<&str> = rendered.lines().collect();
    assert!(lines[3].chars().count() < 140, "{rendered}");
    // Columns on screen are characters: the window starts with a one-character `…`.
    let caret = lines[4].find('^').unwrap();
    let under_caret: String = lines[3].chars().skip(caret).take(7).collect();
    assert_eq!(under_caret, "\"maybe\"", "{rendered}");
    assert!(!detach.render_with(Some(&text), false).contains('\x1b'));
    assert!(detach.render_with(Some(&text), true).contains("\x1b[1;31m"));
}
