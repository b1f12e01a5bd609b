//! The agent: lease a workflow, run it, report states and logs, heartbeat.
