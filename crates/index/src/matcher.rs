//! Tag-value predicates compiled once per query.

use crate::{Error, Result};
use regex::Regex;
use sundial_model::TagMatch;

/// A compiled predicate on one tag value.
#[derive(Debug)]
pub enum Matcher {
    Any,
    Set { values: Vec<String>, negate: bool },
    Pattern(Regex),
    NotPattern(Regex),
}

impl Matcher {
    pub fn compile(p: &TagMatch) -> Result<Self> {
        Ok(match p {
            TagMatch::Exists { .. } => Self::Any,
            TagMatch::Eq { value, .. } => Self::Set {
                values: vec![value.clone()],
                negate: false,
            },
            TagMatch::In { values, .. } => Self::Set {
                values: values.clone(),
                negate: false,
            },
            TagMatch::NotIn { values, .. } => Self::Set {
                values: values.clone(),
                negate: true,
            },
            TagMatch::Wildcard {
                pattern,
                case_insensitive,
                ..
            } => {
                let mut re = String::from(if *case_insensitive { "(?is)^" } else { "(?s)^" });
                for (i, part) in pattern.split('*').enumerate() {
                    if i > 0 {
                        re.push_str(".*");
                    }
                    re.push_str(&regex::escape(part));
                }
                re.push('$');
                Self::Pattern(build(&re, pattern)?)
            }
            TagMatch::Like {
                pattern, escape, ..
            } => {
                let mut re = String::from("(?s)^");
                let mut chars = pattern.chars();
                while let Some(c) = chars.next() {
                    if Some(c) == *escape {
                        if let Some(next) = chars.next() {
                            re.push_str(&regex::escape(&next.to_string()));
                        }
                        continue;
                    }
                    match c {
                        '%' => re.push_str(".*"),
                        '_' => re.push('.'),
                        c => re.push_str(&regex::escape(&c.to_string())),
                    }
                }
                re.push('$');
                Self::Pattern(build(&re, pattern)?)
            }
            TagMatch::Regex { pattern, .. } => Self::Pattern(build(pattern, pattern)?),
            TagMatch::NotRegex { pattern, .. } => Self::NotPattern(build(pattern, pattern)?),
            // Absence is decided on the key, never on a value.
            TagMatch::Absent { .. } => Self::Set {
                values: Vec::new(),
                negate: false,
            },
        })
    }

    pub fn matches(&self, value: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Set { values, negate } => values.iter().any(|v| v == value) != *negate,
            Self::Pattern(re) => re.is_match(value),
            Self::NotPattern(re) => !re.is_match(value),
        }
    }
}

fn build(re: &str, pattern: &str) -> Result<Regex> {
    // Bounded compiled size: a hostile pattern cannot take the memory.
    regex::RegexBuilder::new(re)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| Error::InvalidRegex {
            pattern: pattern.to_owned(),
            reason: e.to_string(),
        })
}
