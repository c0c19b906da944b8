//! `/admin/presampling`: a database's presampling rules (Baidu spec 12):
//! `GET` lists, `POST` with a rule object adds one, `DELETE
//! /admin/presampling/{id}` removes one; `?database=` names the database
//! (default `default`), as `/v1` calls do.

use super::error;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use sundial_baidu::presampling::{MAX_RULES, parse_rule};
use sundial_storage::{DEFAULT_DATABASE, Db, Engine, PresamplingRule};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Which {
    database: Option<String>,
}

/// The routes' state.
#[derive(Clone)]
pub(crate) struct Rules {
    /// `None` on a cluster node.
    pub(crate) engine: Option<Engine>,
    /// `(database, id)` of the configuration's rules, which stay.
    pub(crate) configured: Arc<BTreeSet<(String, String)>>,
    /// One change at a time: each reads the list, then writes it whole.
    pub(crate) changing: Arc<std::sync::Mutex<()>>,
}

/// A refused request: its status and message.
struct Refusal(StatusCode, String);

impl Refusal {
    fn response(self) -> Response {
        error(self.0, &self.1)
    }
}

fn database(rules: &Rules, which: &Which) -> Result<(String, Db), Refusal> {
    let Some(engine) = &rules.engine else {
        return Err(Refusal(
            StatusCode::NOT_IMPLEMENTED,
            "presampling rules are kept per node: not available on a cluster".into(),
        ));
    };
    let name = which
        .database
        .clone()
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| DEFAULT_DATABASE.to_owned());
    match engine.database(&name) {
        Some(db) => Ok((name, db)),
        None => Err(Refusal(
            StatusCode::NOT_FOUND,
            format!("database {name} does not exist"),
        )),
    }
}

fn listed(name: &str, rules: &[PresamplingRule]) -> Value {
    let defs: Vec<&Value> = rules.iter().map(|r| &r.definition).collect();
    json!({ "database": name, "rules": defs })
}

pub(super) async fn list(State(engine): State<Rules>, Query(which): Query<Which>) -> Response {
    match database(&engine, &which) {
        Ok((name, db)) => Json(listed(&name, &db.presampling_rules())).into_response(),
        Err(r) => r.response(),
    }
}

/// Adds a rule: 201 with it; 400 for a rule that cannot be kept, 409
/// for an id the database already has.
pub(super) async fn create(
    State(engine): State<Rules>,
    Query(which): Query<Which>,
    body: Bytes,
) -> Response {
    let (name, db) = match database(&engine, &which) {
        Ok(found) => found,
        Err(r) => return r.response(),
    };
    let definition: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("invalid JSON body: {e}")),
    };
    let rule = match parse_rule(&definition) {
        Ok(rule) => rule,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.message),
    };
    let shown = rule.definition.clone();
    let changing = engine.changing.clone();
    let saved = tokio::task::spawn_blocking(move || {
        let _one = changing.lock().unwrap_or_else(|e| e.into_inner());
        let mut rules = db.presampling_rules();
        if rules.iter().any(|r| r.id == rule.id) {
            return Err(Refusal(
                StatusCode::CONFLICT,
                format!("database {name} already has rule {}", rule.id),
            ));
        }
        if rules.len() >= MAX_RULES {
            return Err(Refusal(
                StatusCode::BAD_REQUEST,
                format!("a database has at most {MAX_RULES} presampling rules"),
            ));
        }
        rules.push(rule);
        db.set_presampling_rules(rules).map_err(saving)
    })
    .await;
    match saved {
        Ok(Ok(())) => (StatusCode::CREATED, Json(json!({ "rule": shown }))).into_response(),
        Ok(Err(r)) => r.response(),
        Err(e) => {
            tracing::error!(error = %e, "presampling task failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
        }
    }
}

pub(super) async fn remove(
    State(engine): State<Rules>,
    Query(which): Query<Which>,
    Path(id): Path<String>,
) -> Response {
    let (name, db) = match database(&engine, &which) {
        Ok(found) => found,
        Err(r) => return r.response(),
    };
    if engine.configured.contains(&(name.clone(), id.clone())) {
        return error(
            StatusCode::CONFLICT,
            &format!(
                "rule {id} comes from the configuration ([[baidu.presampling]]): remove it there"
            ),
        );
    }
    let shown = id.clone();
    let changing = engine.changing.clone();
    let removed = tokio::task::spawn_blocking(move || {
        let _one = changing.lock().unwrap_or_else(|e| e.into_inner());
        let mut rules = db.presampling_rules();
        let before = rules.len();
        rules.retain(|r| r.id != id);
        if rules.len() == before {
            return Err(Refusal(
                StatusCode::NOT_FOUND,
                format!("database {name} has no rule {id}"),
            ));
        }
        db.set_presampling_rules(rules).map_err(saving)
    })
    .await;
    match removed {
        Ok(Ok(())) => Json(json!({ "deleted": shown })).into_response(),
        Ok(Err(r)) => r.response(),
        Err(e) => {
            tracing::error!(error = %e, "presampling task failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
        }
    }
}

fn saving(e: sundial_storage::Error) -> Refusal {
    tracing::error!(error = %e, "cannot save presampling rules");
    Refusal(
        StatusCode::INTERNAL_SERVER_ERROR,
        "cannot save the presampling rules".into(),
    )
}
