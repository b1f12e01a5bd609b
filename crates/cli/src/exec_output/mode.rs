//! Which output mode a run gets: live on a terminal, plain in CI, pipes and dumb terminals, JSON on request.

use std::io::IsTerminal;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OutputMode {
    /// A redrawn view of workflows and steps with log lines scrolling above it.
    Live,
    /// One line per log line or state change, no colours: for CI logs, pipes and files.
    Plain,
    /// Each event as one line of JSON.
    Json,
}

impl OutputMode {
    /// Live on a terminal unless `CI` is set; Plain otherwise; Json when asked. `NO_COLOR` only
    /// turns colours off. A dumb terminal (`TERM=dumb` or unset) gets Plain, because it cannot
    /// move the cursor to redraw a view (and indicatif draws nothing there, log lines included).
    pub(crate) fn choose(json: bool) -> OutputMode {
        choose_mode(json, std::io::stdout().is_terminal(), |name| std::env::var(name).ok())
    }
}

fn choose_mode(json: bool, stdout_is_terminal: bool, variable: impl Fn(&str) -> Option<String>) -> OutputMode {
    if json {
        return OutputMode::Json;
    }
    // CI systems set CI to `true`, or to their own name (Woodpecker sets `woodpecker`).
    let in_ci = variable("CI").is_some_and(|value| !value.is_empty() && value != "false" && value != "0");
    let dumb_terminal = match variable("TERM") {
        Some(term) => term == "dumb",
        // Windows consoles do not set TERM; elsewhere a terminal without it is treated as dumb.
        None => !cfg!(windows),
    };
    if stdout_is_terminal && !in_ci && !dumb_terminal { OutputMode::Live } else { OutputMode::Plain }
}

#[cfg(test)]
mod tests {
    use super::{OutputMode, choose_mode};

    #[test]
    fn mode_follows_terminal_ci_and_term() {
        let check = |json: bool, terminal: bool, variables: &[(&str, &str)], expected: OutputMode| {
            let lookup = |name: &str| variables.iter().find(|(key, _)| *key == name).map(|(_, value)| value.to_string());
            assert_eq!(choose_mode(json, terminal, lookup), expected, "json={json} terminal={terminal} {variables:?}");
        };
        let xterm = ("TERM", "xterm-256color");
        check(false, true, &[xterm], OutputMode::Live);
        check(false, true, &[xterm, ("NO_COLOR", "1")], OutputMode::Live);
        check(false, false, &[xterm], OutputMode::Plain);
        check(false, true, &[xterm, ("CI", "true")], OutputMode::Plain);
        check(false, true, &[xterm, ("CI", "woodpecker")], OutputMode::Plain);
        check(false, true, &[xterm, ("CI", "false")], OutputMode::Live);
        check(false, true, &[("TERM", "dumb")], OutputMode::Plain);
        check(true, true, &[xterm], OutputMode::Json);
        check(true, false, &[("CI", "true")], OutputMode::Json);
    }
}
