//! Types on the wire between Gantry's processes: the server↔agent protocol (`agent`), the REST
//! API's bodies (`api`), what builds publish (`artifact`) and the states both share (`state`); and how a clone URL the server and
//! the agent exchange is read (`remote`). The types here are `Serialize` because they cross a
//! boundary; nothing here does IO.

pub mod agent;
pub mod api;
pub mod artifact;
pub mod delivery;
pub mod remote;
pub mod state;

pub use state::{ApprovalPolicy, ForgeKind, LostPolicy, State, Trust};
