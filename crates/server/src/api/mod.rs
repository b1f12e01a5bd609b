//! REST handlers under `/api/v1`, one module per resource.

pub mod agents;
pub mod artifacts;
pub mod builds;
pub mod changelog;
pub mod environments;
pub mod logs;
pub mod promotions;
pub mod registries;
pub mod repos;
pub mod schedules;
pub mod secrets;
pub mod users;
