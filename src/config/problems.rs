//! The one problem collector: validation reports every problem in a configuration at once,
//! each at its key path, rather than stopping at the first.

use std::time::Duration;

/// One problem in a configuration, at a key path such as `streams[0].window`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Where: a dotted key path.
    pub key: String,
    /// What is wrong, and how to fix it where that is not obvious.
    pub message: String,
}

impl ConfigProblem {
    /// A problem at `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> ConfigProblem {
        ConfigProblem {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Every problem found so far, in the order found.
#[derive(Debug, Default)]
pub struct Problems {
    list: Vec<ConfigProblem>,
}

impl Problems {
    /// Adds a problem at `key`.
    pub fn add(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.list.push(ConfigProblem::new(key, message));
    }

    /// A duration such as `30s`, or `None` with a problem at `key`.
    pub fn duration(&mut self, key: &str, text: &str) -> Option<Duration> {
        super::duration(text, false)
            .map_err(|message| self.add(key, message))
            .ok()
    }

    /// How many problems were found so far: compare before and after checking a part to see
    /// whether that part had any.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// True when no problem was found.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Every problem, in the order found.
    pub fn into_list(self) -> Vec<ConfigProblem> {
        self.list
    }
}
