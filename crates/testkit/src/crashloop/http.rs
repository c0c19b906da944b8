//! Blocking HTTP for the loop's threads: a request either gets an answer
//! (any status) or breaks (the server died under it).

use std::time::Duration;

/// How a request ended.
#[derive(Debug)]
pub(crate) enum Reply {
    Answered {
        status: u16,
        body: String,
    },
    /// No complete answer: connection refused, reset or timed out.
    Broken(String),
}

impl Reply {
    /// The body of a 2xx answer.
    pub(crate) fn ok_body(&self) -> Option<&str> {
        match self {
            Self::Answered { status, body } if (200..300).contains(status) => Some(body),
            _ => None,
        }
    }

    /// A short text for reports.
    pub(crate) fn summary(&self) -> String {
        match self {
            Self::Answered { status, body } => {
                let body: String = body.chars().take(200).collect();
                format!("HTTP {status}: {body}")
            }
            Self::Broken(e) => format!("no answer: {e}"),
        }
    }
}

/// An agent for one thread; a request that takes longer than a minute
/// while the server runs counts as broken.
pub(crate) fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(60))
        .build()
}

pub(crate) fn request(agent: &ureq::Agent, method: &str, url: &str, body: Option<&str>) -> Reply {
    let req = agent.request(method, url);
    let res = match body {
        Some(b) => req.set("Content-Type", "application/json").send_string(b),
        None => req.call(),
    };
    let res = match res {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Reply::Broken(e.to_string()),
    };
    let status = res.status();
    match res.into_string() {
        Ok(body) => Reply::Answered { status, body },
        Err(e) => Reply::Broken(e.to_string()),
    }
}
