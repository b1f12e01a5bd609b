//! What keeps password sign-in from being a way to exhaust the server or guess passwords:
//! argon2 runs on a few threads of its own, each reusing one ~19 MiB buffer (`crypto`), so that
//! memory stays at a few hashes' worth however many sign-ins arrive (on the runtime's blocking
//! pool, with argon2 allocating per hash, 150 at once took the server past 1 GiB); waiting for a
//! turn has a limit, and failed sign-ins are counted per client address and per login, so that
//! after too many the next attempts are answered `429` with `Retry-After` before any hashing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, oneshot};

/// Most argon2 computations at once: enough to keep both cores busy, never hundreds.
const CONCURRENT_HASHES: usize = 4;
/// How long a sign-in waits for its turn before it is told to come back later.
const TURN_WAIT: Duration = Duration::from_secs(3);
/// Failed sign-ins counted per login and per client address, over `FAILURE_WINDOW`.
const FAILURES_PER_LOGIN: u32 = 10;
const FAILURES_PER_ADDRESS: u32 = 30;
const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// The failure counters forget the oldest keys beyond this many, so that a flood of distinct
/// logins or addresses cannot grow them without bound.
const MAX_TRACKED_KEYS: usize = 20_000;

/// Sign-in refused before it was checked, and when to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TryLater {
    pub retry_after: Duration,
}

pub struct LoginGuard {
    /// One permit per hash that may be running or queued for the hashing threads.
    turns: Semaphore,
    /// Work for the hashing threads; they end when this is dropped.
    hashing: std::sync::mpsc::Sender<HashingJob>,
    in_flight: std::sync::Arc<AtomicUsize>,
    most_in_flight: std::sync::Arc<AtomicUsize>,
    failures: Mutex<HashMap<FailureKey, Failures>>,
}

type HashingJob = Box<dyn FnOnce() + Send>;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum FailureKey {
    Login(String),
    Address(IpAddr),
}

#[derive(Clone, Copy, Debug)]
struct Failures {
    count: u32,
    window_start: Instant,
}

impl Default for LoginGuard {
    fn default() -> Self {
        let (sender, receiver) = std::sync::mpsc::channel::<HashingJob>();
        let receiver = std::sync::Arc::new(Mutex::new(receiver));
        for index in 0..CONCURRENT_HASHES {
            let receiver = receiver.clone();
            std::thread::Builder::new()
                .name(format!("password-hash-{index}"))
                .spawn(move || {
                    loop {
                        // The lock is held only to take the next job, not while running it.
                        let job = receiver.lock().unwrap_or_else(std::sync::PoisonError::into_inner).recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })
                .expect("a thread for password hashing starts");
        }
        LoginGuard {
            turns: Semaphore::new(CONCURRENT_HASHES),
            hashing: sender,
            in_flight: Default::default(),
            most_in_flight: Default::default(),
            failures: Mutex::new(HashMap::new()),
        }
    }
}

impl LoginGuard {
    /// Refuses a sign-in for `login` from `address` that follows too many failures.
    pub fn check(&self, login: &str, address: Option<IpAddr>) -> Result<(), TryLater> {
        let now = Instant::now();
        let failures = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut wait = Duration::ZERO;
        for (key, limit) in keys(login, address) {
            if let Some(entry) = failures.get(&key)
                && entry.count >= limit
            {
                let ends = entry.window_start + FAILURE_WINDOW;
                wait = wait.max(ends.saturating_duration_since(now));
            }
        }
        if wait.is_zero() { Ok(()) } else { Err(TryLater { retry_after: wait.max(Duration::from_secs(1)) }) }
    }

    /// Counts a failed sign-in.
    pub fn failed(&self, login: &str, address: Option<IpAddr>) {
        let now = Instant::now();
        let mut failures = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if failures.len() >= MAX_TRACKED_KEYS {
            failures.retain(|_, entry| now.duration_since(entry.window_start) < FAILURE_WINDOW);
            if failures.len() >= MAX_TRACKED_KEYS {
                // Still full of fresh keys (a flood of distinct names): forget the oldest half.
                let mut starts: Vec<Instant> = failures.values().map(|entry| entry.window_start).collect();
                starts.sort_unstable();
                let cut = starts[starts.len() / 2];
                failures.retain(|_, entry| entry.window_start > cut);
            }
        }
        for (key, _) in keys(login, address) {
            let entry = failures.entry(key).or_insert(Failures { count: 0, window_start: now });
            if now.duration_since(entry.window_start) >= FAILURE_WINDOW {
                *entry = Failures { count: 0, window_start: now };
            }
            entry.count = entry.count.saturating_add(1);
        }
    }

    /// A successful sign-in clears its login's failures (not its address's: one right password
    /// does not excuse many wrong ones for others).
    pub fn succeeded(&self, login: &str) {
        self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&FailureKey::Login(login.to_owned()));
    }

    /// Runs `hashing` (argon2) on the hashing threads once a turn is free; `TryLater` when none
    /// frees up in time.
    pub async fn hash<T: Send + 'static>(&self, hashing: impl FnOnce() -> T + Send + 'static) -> Result<T, TryLater> {
        let _turn = tokio::time::timeout(TURN_WAIT, self.turns.acquire())
            .await
            .map_err(|_| TryLater { retry_after: Duration::from_secs(2) })?
            .expect("the hashing semaphore is never closed");
        let (done, result) = oneshot::channel();
        let (in_flight, most_in_flight) = (self.in_flight.clone(), self.most_in_flight.clone());
        let job: HashingJob = Box::new(move || {
            let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            most_in_flight.fetch_max(now, Ordering::SeqCst);
            let value = hashing();
            in_flight.fetch_sub(1, Ordering::SeqCst);
            let _ = done.send(value);
        });
        self.hashing.send(job).expect("the hashing threads run while the guard lives");
        Ok(result.await.expect("a hashing job always answers"))
    }

    /// The most password hashes that ever ran at once (for tests and metrics).
    pub fn most_concurrent_hashes(&self) -> usize {
        self.most_in_flight.load(Ordering::SeqCst)
    }
}

fn keys(login: &str, address: Option<IpAddr>) -> Vec<(FailureKey, u32)> {
    let mut keys = vec![(FailureKey::Login(login.to_owned()), FAILURES_PER_LOGIN)];
    if let Some(address) = address {
        keys.push((FailureKey::Address(address), FAILURES_PER_ADDRESS));
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_lock_a_login_and_an_address_separately() {
        let guard = LoginGuard::default();
        let address: IpAddr = "192.0.2.7".parse().unwrap();
        for _ in 0..FAILURES_PER_LOGIN {
            assert_eq!(guard.check("alice", Some(address)), Ok(()));
            guard.failed("alice", Some(address));
        }
        assert!(guard.check("alice", None).is_err(), "the login is locked from anywhere");
        assert_eq!(guard.check("bob", Some(address)), Ok(()), "the address is not locked yet");
        guard.succeeded("alice");
        assert_eq!(guard.check("alice", None), Ok(()));
        for index in 0..FAILURES_PER_ADDRESS {
            guard.failed(&format!("user-{index}"), Some(address));
        }
        let refused = guard.check("carol", Some(address)).unwrap_err();
        assert!(refused.retry_after > Duration::from_secs(60) && refused.retry_after <= FAILURE_WINDOW);
        assert_eq!(guard.check("carol", Some("192.0.2.8".parse().unwrap())), Ok(()));
    }

    #[test]
    fn the_failure_counters_stay_bounded() {
        let guard = LoginGuard::default();
        for index in 0..(MAX_TRACKED_KEYS * 2) {
            guard.failed(&format!("user-{index}"), None);
        }
        assert!(guard.failures.lock().unwrap().len() <= MAX_TRACKED_KEYS);
    }
}
