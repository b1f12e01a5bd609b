//! Types on the wire between Gantry's processes: the server↔agent protocol (`agent`), the REST
//! API's bodies (`api`) and the states both share (`state`). Everything here is `Serialize`
//! because it crosses a boundary; nothing here does IO.

pub mod agent;
pub mod api;
pub mod state;

pub use state::{ApprovalPolicy, ForgeKind, LostPolicy, State, Trust};
