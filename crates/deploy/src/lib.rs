//! Delivery: what should run in an environment, as an environment repository says it.
//!
//! An environment repository is a git repository, one per environment: `environment.yml` (the
//! environment's name, its targets, defaults) and one file per application in `apps/` (owner,
//! image, replicas, ports, health check, update and drift policies, configs beside it, secrets
//! by name). `read` turns its files into the `model`, or into every mistake with its file, line
//! and column. The format is documented in the README ("Environment repositories"). `plan`
//! compares what the repository wants with what a target runs; `target` observes what runs
//! (the Docker engine, by labels) and carries changes out, and `swarm` does the same with
//! services on a Docker Swarm; `reconcile` composes one pass and `run` repeats it against a
//! git checkout. `automation` finds the newer images applications' image policies ask for,
//! and the commits that move them there; `promote` carries out the promotions a Gantry server
//! approved for the environment, as commits too.

pub mod automation;
pub mod edit;
pub mod envgit;
pub mod events;
pub mod history;
pub mod inventory;
pub mod model;
pub mod plan;
pub mod promote;
pub mod read;
pub mod reconcile;
pub mod rollback;
pub mod run;
pub mod secrets;
pub mod serve;
pub mod swarm;
pub mod target;

pub use model::{App, EnvironmentRepo};
pub use read::{ReadOptions, RepoFile, read_repository};
