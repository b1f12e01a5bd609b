//! The shell script a commands step runs: `set -e`, and each command echoed before it runs.

/// Builds the script: every command is printed as `+ command` and then run; the first that
/// fails ends the script with its exit code.
pub fn commands_script(commands: &[String]) -> String {
    let mut script = String::from("set -e\n");
    for command in commands {
        script.push_str("printf '%s\\n' ");
        script.push_str(&shell_quote(&format!("+ {command}")));
        script.push('\n');
        script.push_str(command);
        script.push('\n');
    }
    script
}

/// Quotes a string for a POSIX shell: single quotes, with each `'` written as `'\''`.
pub fn shell_quote(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('\'');
    for character in text.chars() {
        if character == '\'' {
            quoted.push_str("'\\''");
        } else {
            quoted.push(character);
        }
    }
    quoted.push('\'');
    quoted
}
