//! Placeholder until the evaluate module lands.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EvaluateError {
    #[error("invalid expression: {message}")]
    Syntax { message: String, column: Option<usize> },
    #[error("invalid regular expression `{pattern}`: {message}")]
    Regex { pattern: String, message: String },
    #[error("{message}")]
    Runtime { message: String },
}
#[derive(Clone, Debug)]
pub struct Expression { source: String }
impl Expression {
    pub fn parse(source: &str) -> Result<Expression, EvaluateError> { Ok(Expression { source: source.into() }) }
    pub fn source(&self) -> &str { &self.source }
    pub fn evaluate(&self, _environment: &std::collections::BTreeMap<String, String>) -> Result<bool, EvaluateError> { Ok(true) }
}
