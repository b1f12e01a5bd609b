//! Changes the deployer itself writes into application files (a rollback's hold, image
//! automation's new version), made on the text so that people's comments, order and style
//! stay as they wrote them. Only top-level keys written in block style are edited; a file that
//! writes them otherwise is refused rather than rewritten. No IO.

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum EditError {
    #[error("{file}: `{key}` is not a top-level `key: value` line, so the deployer cannot change it")]
    NotEditable { file: String, key: String },
}

/// `text` with its top-level `image:` set to `image`, a comment on that line kept.
pub fn set_image(file: &str, text: &str, image: &str) -> Result<String, EditError> {
    let mut found = false;
    let mut out = String::with_capacity(text.len() + image.len());
    for line in text.split_inclusive('\n') {
        if !found && let Some(rest) = line.strip_prefix("image:") {
            let value = rest.trim_end_matches(['\n', '\r']);
            let comment = comment_of(value);
            if value.trim().is_empty() || value.trim_start().starts_with(['|', '>', '{', '[']) {
                return Err(EditError::NotEditable { file: file.to_owned(), key: "image".to_owned() });
            }
            out.push_str("image: ");
            out.push_str(image);
            if let Some(comment) = comment {
                out.push_str("  ");
                out.push_str(comment);
            }
            out.push_str(&line[line.trim_end_matches(['\n', '\r']).len()..]);
            found = true;
        } else {
            out.push_str(line);
        }
    }
    if found { Ok(out) } else { Err(EditError::NotEditable { file: file.to_owned(), key: "image".to_owned() }) }
}

/// `text` with its top-level `holds:` list replaced by `holds`, each with its note as a comment
/// (appended at the end when the file had none).
pub fn set_holds(text: &str, holds: &[(String, String)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut lines = text.split_inclusive('\n').peekable();
    let mut replaced = false;
    while let Some(line) = lines.next() {
        if line.starts_with("holds:") {
            // The block goes on while lines are indented, list items, blank or comments.
            while let Some(next) = lines.peek() {
                if next.starts_with([' ', '\t', '-', '#']) || next.trim().is_empty() {
                    lines.next();
                } else {
                    break;
                }
            }
            out.push_str(&holds_block(holds));
            replaced = true;
        } else {
            out.push_str(line);
        }
    }
    if !replaced && !holds.is_empty() {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&holds_block(holds));
    }
    out
}

fn holds_block(holds: &[(String, String)]) -> String {
    if holds.is_empty() {
        return String::new();
    }
    let mut block = "holds:\n".to_owned();
    for (hold, note) in holds {
        block.push_str("  - ");
        block.push_str(hold);
        if !note.is_empty() {
            block.push_str("  # ");
            block.push_str(&note.replace('\n', " "));
        }
        block.push('\n');
    }
    block
}

/// The `# comment` ending a plain scalar's line: a `#` after whitespace, outside quotes.
fn comment_of(value: &str) -> Option<&str> {
    let mut quote = None;
    let mut previous = ' ';
    for (index, character) in value.char_indices() {
        match (quote, character) {
            (None, '"' | '\'') => quote = Some(character),
            (Some(open), _) if character == open => quote = None,
            (None, '#') if previous.is_whitespace() => return Some(&value[index..]),
            _ => {}
        }
        previous = character;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_line_changes_and_its_comment_stays() {
        let text = "version: 1\nimage: reg/web:1.0@sha256:aa  # pinned by CI\nreplicas: 2\n";
        assert_eq!(
            set_image("apps/web.yml", text, "reg/web:1.1@sha256:bb").unwrap(),
            "version: 1\nimage: reg/web:1.1@sha256:bb  # pinned by CI\nreplicas: 2\n"
        );
    }

    #[test]
    fn an_image_written_as_a_block_is_not_rewritten() {
        let text = "image:\n  reg/web:1.0\n";
        assert!(set_image("apps/web.yml", text, "reg/web:1.1").is_err());
    }

    #[test]
    fn holds_are_appended_then_replaced_in_place() {
        let text = "image: reg/web:1.0\ndrift: heal\n";
        let once = set_holds(text, &[("sha256:aa".to_owned(), "rolled back: unhealthy".to_owned())]);
        assert_eq!(once, "image: reg/web:1.0\ndrift: heal\nholds:\n  - sha256:aa  # rolled back: unhealthy\n");
        let edited = once.replace("drift: heal\n", "") + "drift: warn\n";
        let twice = set_holds(&edited, &[("sha256:aa".to_owned(), String::new()), ("1.2.0".to_owned(), "bad".to_owned())]);
        assert_eq!(twice, "image: reg/web:1.0\nholds:\n  - sha256:aa\n  - 1.2.0  # bad\ndrift: warn\n");
    }
}
