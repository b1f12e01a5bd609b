//! Docker Swarm as a target: one service per application, configs and secrets as Swarm objects
//! named by content digest, the update policy as the service's `update_config` and
//! `rollback_config`.

use crate::plan::ObservedApp;
use crate::target::{Deployment, Target, TargetError};

/// Services on the Swarm an engine is a manager of.
pub struct SwarmTarget {
    #[allow(dead_code)]
    engine: docker::Engine,
}

impl SwarmTarget {
    pub async fn connect(host: Option<&str>) -> Result<SwarmTarget, TargetError> {
        let host = host.map_or_else(docker::resolve_host, str::to_owned);
        Ok(SwarmTarget { engine: docker::Engine::connect_to(&host).await? })
    }
}

impl Target for SwarmTarget {
    async fn observe(&self, _environment: &str) -> Result<Vec<ObservedApp>, TargetError> {
        Ok(Vec::new())
    }

    async fn deploy(&self, deployment: &Deployment<'_>) -> Result<(), TargetError> {
        Err(TargetError::Unsupported { app: deployment.app.name.clone(), what: "a Swarm target".into() })
    }

    async fn remove(&self, _environment: &str, _app: &str) -> Result<(), TargetError> {
        Ok(())
    }
}
