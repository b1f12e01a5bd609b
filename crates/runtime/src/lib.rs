//! Gantry's runtime: runs a `Plan` on a `Backend`.
//!
//! A step starts as soon as its own dependencies finish; services start first and are waited
//! for when they declare a readiness check; every byte of output passes through secret masking
//! on its way to the `EventSink`; whatever happens, every workflow is torn down.

pub mod backend;
pub mod event;
#[cfg(feature = "fake")]
pub mod fake;
pub mod mask;
pub mod publish;
pub mod run;
pub mod script;
pub mod trust;

pub use backend::{Backend, BackendError, OutputChunk, OutputStream, RunInfo, StepRequest, WorkflowSetup, WorkspaceSource};
pub use event::{Event, EventSink, Status};
/// Plan types a backend needs, so that backends depend on the runtime alone for them.
pub use pipeline::model::PullPolicy;
pub use pipeline::plan::StepKind;
pub use publish::{BuildRequest, PublishOptions, PublishedImage, RegistryCredential};
pub use run::{RunOptions, RunSummary, run_plan};
