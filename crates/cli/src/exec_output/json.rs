//! JSON output: each event as one line of JSON, stamped with the time it was shown.

use runtime::Event;

use super::{ExecOutput, lock};

impl ExecOutput {
    pub(super) fn emit_json(&self, event: Event) {
        // Serialised before taking the lock, which other tasks are waiting for.
        let Ok(serialized) = serde_json::to_vec(&event) else { return };
        // Every event says when it happened (milliseconds since the Unix epoch), so that a
        // consumer can tell how long anything took and what overlapped.
        let at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|since| since.as_millis()).unwrap_or_default();
        let mut line = Vec::with_capacity(serialized.len() + 24);
        line.extend_from_slice(format!("{{\"at_ms\":{at},").as_bytes());
        line.extend_from_slice(serialized.get(1..).unwrap_or_default());
        line.push(b'\n');
        let mut state = lock(&self.state);
        state.run.observe(&event);
        state.out.write(&line);
        if !matches!(event, Event::Log { .. }) {
            state.out.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::exec_output::OutputMode;
    use crate::exec_output::fixtures::{one_workflow_events, one_workflow_summary, render};

    #[test]
    fn json_output_is_one_event_per_line_and_nothing_else() {
        let text = render(OutputMode::Json, one_workflow_events(), Some(&one_workflow_summary()));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), one_workflow_events().len());
        for (line, event) in lines.iter().zip(one_workflow_events()) {
            let mut parsed: serde_json::Value = serde_json::from_str(line).unwrap();
            let at = parsed.as_object_mut().unwrap().remove("at_ms").expect("every event has a time");
            assert!(at.as_u64().unwrap() > 1_700_000_000_000, "{line}");
            assert_eq!(parsed, serde_json::to_value(&event).unwrap());
        }
        assert!(lines[4].contains(r#""event":"step_finished""#) && lines[4].contains(r#""duration_ms":1200"#), "{}", lines[4]);
    }
}
