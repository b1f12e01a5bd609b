//! Conditions: `when` (Woodpecker, Drone steps) and `trigger` (Drone pipelines), and how they match a trigger context.

use std::collections::BTreeMap;

use globset::{GlobBuilder, GlobMatcher};

use crate::context::Context;
use crate::evaluate::Expression;
use crate::yaml::Span;

/// A glob as Woodpecker's doublestar matches it: `*` stays within a path segment, `**` crosses them.
#[derive(Clone, Debug)]
pub struct GlobPattern {
    pub text: String,
    /// `None` for a pattern without glob syntax, which is compared as a string: most filters
    /// (`main`, `push`) are plain names, and compiling a matcher for them would dominate planning.
    matcher: Option<GlobMatcher>,
}

impl PartialEq for GlobPattern {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

thread_local! {
    /// Compiled globs by text: the same patterns recur across matrix rows and files.
    static COMPILED: std::cell::RefCell<std::collections::HashMap<String, GlobMatcher>> = Default::default();
}

/// Bounds the cache; a pipeline has a handful of distinct patterns.
const MAX_CACHED_GLOBS: usize = 4096;

/// Rewrites doublestar syntax globset reads differently: `**` inside a segment (`docs/**.md`)
/// means `*` there, and `[^abc]` is globset's `[!abc]`.
fn doublestar_to_globset(text: &str) -> String {
    let segments: Vec<String> = text
        .split('/')
        .map(|segment| {
            if segment != "**" && segment.contains("**") {
                let mut collapsed = segment.to_owned();
                while collapsed.contains("**") {
                    collapsed = collapsed.replace("**", "*");
                }
                collapsed
            } else {
                segment.to_owned()
            }
        })
        .collect();
    segments.join("/").replace("[^", "[!")
}

impl GlobPattern {
    pub fn new(text: &str) -> Result<Self, String> {
        if !text.contains(['*', '?', '[', ']', '{', '}', '\\']) {
            return Ok(Self { text: text.to_owned(), matcher: None });
        }
        if let Some(matcher) = COMPILED.with(|cache| cache.borrow().get(text).cloned()) {
            return Ok(Self { text: text.to_owned(), matcher: Some(matcher) });
        }
        let glob = GlobBuilder::new(&doublestar_to_globset(text))
            .literal_separator(true)
            .backslash_escape(true)
            .empty_alternates(true)
            .build()
            .map_err(|error| error.kind().to_string())?;
        let matcher = glob.compile_matcher();
        COMPILED.with(|cache| {
            let mut cache = cache.borrow_mut();
            if cache.len() >= MAX_CACHED_GLOBS {
                cache.clear();
            }
            cache.insert(text.to_owned(), matcher.clone());
        });
        Ok(Self { text: text.to_owned(), matcher: Some(matcher) })
    }

    pub fn matches(&self, candidate: &str) -> bool {
        match &self.matcher {
            Some(matcher) => matcher.is_match(candidate),
            None => self.text == candidate,
        }
    }
}

/// Include and exclude globs for one value (branch, ref, repo, ...).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Filter {
    pub include: Vec<GlobPattern>,
    pub exclude: Vec<GlobPattern>,
    pub span: Span,
}

impl Filter {
    /// Excludes win; with no includes everything not excluded matches.
    pub fn matches(&self, value: &str) -> bool {
        if self.exclude.iter().any(|pattern| pattern.matches(value)) {
            return false;
        }
        self.include.is_empty() || self.include.iter().any(|pattern| pattern.matches(value))
    }

    pub fn is_empty(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty()
    }

    pub fn describe(&self) -> String {
        let texts = |patterns: &[GlobPattern]| patterns.iter().map(|p| p.text.as_str()).collect::<Vec<_>>().join(", ");
        match (self.include.is_empty(), self.exclude.is_empty()) {
            (false, true) => texts(&self.include),
            (true, false) => format!("not {}", texts(&self.exclude)),
            (false, false) => format!("{} but not {}", texts(&self.include), texts(&self.exclude)),
            (true, true) => "any".to_owned(),
        }
    }
}

/// Changed-file filter, as Woodpecker's `path` (and Drone's `paths` from the pathschanged extension).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PathFilter {
    pub include: Vec<GlobPattern>,
    pub exclude: Vec<GlobPattern>,
    pub ignore_message: Option<String>,
    pub on_empty: Option<bool>,
    pub span: Span,
}

impl PathFilter {
    /// `None` changed files means unknown (no diff available): the filter passes.
    pub fn matches(&self, changed_files: Option<&[String]>, commit_message: &str) -> bool {
        if let Some(marker) = &self.ignore_message
            && !marker.is_empty()
            && commit_message.to_lowercase().contains(&marker.to_lowercase())
        {
            return true;
        }
        let Some(files) = changed_files else { return true };
        if files.is_empty() {
            return self.on_empty.unwrap_or(true);
        }
        // Excluded only when every changed file is excluded.
        if !self.exclude.is_empty() && files.iter().all(|file| self.exclude.iter().any(|p| p.matches(file))) {
            return false;
        }
        self.include.is_empty() || files.iter().any(|file| self.include.iter().any(|p| p.matches(file)))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RunStatus {
    Success,
    Failure,
}

/// One map of conditions; all its filters must match.
#[derive(Clone, Debug, Default)]
pub struct ConditionSet {
    pub span: Span,
    pub branch: Option<Filter>,
    pub event: Option<Filter>,
    pub reference: Option<Filter>,
    pub repo: Option<Filter>,
    pub instance: Option<Filter>,
    pub platform: Option<Filter>,
    pub cron: Option<Filter>,
    /// Drone: promotion target.
    pub target: Option<Filter>,
    /// Drone: pull request action.
    pub action: Option<Filter>,
    pub status: Option<Vec<RunStatus>>,
    pub path: Option<PathFilter>,
    pub evaluate: Option<(Expression, Span)>,
    /// Step-level only: matrix axis to glob.
    pub matrix: Option<Vec<(String, GlobPattern)>>,
    /// Woodpecker's `local`: `false` means "not when run by `exec`".
    pub local: Option<bool>,
}

/// `when`: a list of condition sets, any of which may match. Empty means the default
/// (every event, only while the workflow succeeds).
#[derive(Clone, Debug, Default)]
pub struct When {
    pub alternatives: Vec<ConditionSet>,
    pub span: Option<Span>,
}

/// What a `when` decides for a context before anything has run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Runs if the workflow state before it is one of these.
    Run { on_success: bool, on_failure: bool },
    /// Never runs in this context, and why.
    Skip(String),
}

/// The facts a condition is matched against.
pub struct MatchInput<'a> {
    pub context: &'a Context,
    /// Variables `evaluate` sees: built-ins, matrix and extra environment.
    pub environment: &'a BTreeMap<String, String>,
    pub matrix: Option<&'a BTreeMap<String, String>>,
    /// Whether the run is local (`gantry exec`).
    pub local: bool,
    /// Treat every condition but `status` as holding.
    pub ignore_conditions: bool,
}

impl When {
    pub fn is_empty(&self) -> bool {
        self.alternatives.is_empty()
    }

    pub fn decide(&self, input: &MatchInput<'_>) -> Result<Decision, String> {
        if self.alternatives.is_empty() {
            return Ok(Decision::Run { on_success: true, on_failure: false });
        }
        let mut matched = Vec::new();
        let mut first_reason = None;
        for set in &self.alternatives {
            if input.ignore_conditions {
                matched.push(set);
                continue;
            }
            match set.mismatch(input)? {
                None => matched.push(set),
                Some(reason) => {
                    first_reason.get_or_insert(reason);
                }
            }
        }
        if matched.is_empty() {
            return Ok(Decision::Skip(first_reason.unwrap_or_else(|| "no condition matches".into())));
        }
        let (on_success, on_failure) = statuses_of(matched.into_iter());
        Ok(Decision::Run { on_success, on_failure })
    }

    /// Whether it runs after success and after failure, taking every alternative as matching.
    pub fn statuses_ignoring_conditions(&self) -> (bool, bool) {
        if self.alternatives.is_empty() {
            return (true, false);
        }
        statuses_of(self.alternatives.iter())
    }

    /// Every event any alternative can run on; `None` when some alternative does not filter events.
    pub fn possible_events(&self) -> Option<Vec<String>> {
        if self.alternatives.is_empty() {
            return None;
        }
        let mut events = Vec::new();
        for set in &self.alternatives {
            let filter = set.event.as_ref()?;
            if filter.include.is_empty() {
                return None;
            }
            for pattern in &filter.include {
                if !events.contains(&pattern.text) {
                    events.push(pattern.text.clone());
                }
            }
        }
        Some(events)
    }
}

/// Woodpecker's rule over the matching condition sets: success is presumed unless a set lists
/// statuses without it; failure must be asked for.
fn statuses_of<'a>(sets: impl Iterator<Item = &'a ConditionSet> + Clone) -> (bool, bool) {
    let on_success = !sets
        .clone()
        .any(|set| set.status.as_ref().is_some_and(|statuses| !statuses.is_empty() && !statuses.contains(&RunStatus::Success)));
    let on_failure = sets.into_iter().any(|set| set.status.as_ref().is_some_and(|statuses| statuses.contains(&RunStatus::Failure)));
    (on_success, on_failure)
}

impl ConditionSet {
    /// `None` if every filter matches, else the first that does not, in words.
    pub fn mismatch(&self, input: &MatchInput<'_>) -> Result<Option<String>, String> {
        let context = input.context;
        let event = context.event.as_str();
        if let Some(filter) = &self.event
            && !filter.matches(event)
        {
            return Ok(Some(format!("event is {event}, condition wants {}", filter.describe())));
        }
        if let (Some(filter), Some(matrix)) = (&self.matrix, input.matrix) {
            for (axis, pattern) in filter {
                let value = matrix.get(axis).map(String::as_str).unwrap_or("");
                if !pattern.matches(value) {
                    return Ok(Some(format!("matrix {axis} is {value:?}, condition wants {}", pattern.text)));
                }
            }
        }
        let checks: [(&Option<Filter>, &str, &str, bool); 8] = [
            (&self.platform, "platform", &context.platform, true),
            (&self.repo, "repository", &context.repo, true),
            (&self.reference, "ref", &context.reference, true),
            (&self.instance, "instance", &context.instance, true),
            // Branch filters do not apply to tags, which are not on a branch.
            (&self.branch, "branch", &context.branch, event != "tag"),
            (&self.cron, "cron job", context.cron.as_deref().unwrap_or(""), event == "cron"),
            (&self.target, "deploy target", context.deploy_target.as_deref().unwrap_or(""), true),
            (&self.action, "action", context.action.as_deref().unwrap_or(""), true),
        ];
        for (filter, what, value, applies) in checks {
            if let Some(filter) = filter
                && applies
                && !filter.matches(value)
            {
                return Ok(Some(format!("{what} is {value:?}, condition wants {}", filter.describe())));
            }
        }
        if let Some(path) = &self.path
            && (event == "push" || event.starts_with("pull_request"))
            && !path.matches(context.changed_files.as_deref(), &context.commit_message)
        {
            return Ok(Some("no changed file matches the path filter".to_owned()));
        }
        if let Some(local) = self.local
            && local != input.local
        {
            return Ok(Some(if input.local { "not run locally (local: false)" } else { "only run locally" }.to_owned()));
        }
        if let Some((expression, _)) = &self.evaluate {
            let result = expression.evaluate(input.environment).map_err(|error| format!("evaluate `{}`: {error}", expression.source()))?;
            if !result {
                return Ok(Some(format!("`{}` is false", expression.source())));
            }
        }
        Ok(None)
    }
}
