//! In-process wake-ups: lease requests wait for the queue to change, log followers for their
//! step's next lines, agents for their job's cancellation. Each key has a `watch` channel whose
//! value only counts changes, so a waiter that subscribes before looking never misses a change.
//! With several servers on one PostgreSQL these are only hints; every waiter also wakes on a
//! timeout and looks again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Something became leasable (a workflow queued or unblocked, an agent freed).
    Queue,
    /// A step got log lines or changed state.
    Step(i64),
    /// A workflow was cancelled.
    Cancel(i64),
    /// A build changed state, or one of its workflows or steps did (pages showing it redraw).
    Build(i64),
    /// One of a repository's builds changed state (its page redraws the list).
    Repo(i64),
    /// Any build changed state (the dashboard redraws).
    Builds,
}

#[derive(Default)]
pub struct Hub {
    channels: Mutex<HashMap<Topic, watch::Sender<u64>>>,
}

impl Hub {
    pub fn subscribe(&self, topic: Topic) -> Subscription {
        let mut channels = self.channels.lock().expect("hub lock");
        let sender = channels.entry(topic).or_insert_with(|| watch::channel(0).0);
        Subscription { receiver: sender.subscribe() }
    }

    pub fn notify(&self, topic: Topic) {
        let mut channels = self.channels.lock().expect("hub lock");
        if let Some(sender) = channels.get(&topic) {
            sender.send_modify(|count| *count += 1);
            // Nobody listens any more: forget the topic so the map stays small.
            if sender.receiver_count() == 0 {
                channels.remove(&topic);
            }
        }
    }
}

pub struct Subscription {
    receiver: watch::Receiver<u64>,
}

impl Subscription {
    /// Waits for the next change after subscribing (or the previous wait), at most `limit`.
    /// True when something changed.
    pub async fn wait(&mut self, limit: Duration) -> bool {
        matches!(tokio::time::timeout(limit, self.receiver.changed()).await, Ok(Ok(())))
    }
}
