//! BlueKing metadata under the kills: a control thread creates, modifies
//! (name, label, enabled) and deletes time series groups through the ESB
//! API and forces compactions with `POST /admin/compact`; after each
//! restart every group must be as the last acknowledged change left it
//! (or as a change without answer made it), and the loop's push group must
//! still list the metrics data was acknowledged for.

use super::http::{self, Reply};
use super::model::Tally;
use super::rng::Rng;
use super::{PushTarget, RoundCtx};
use anyhow::{Context, Result};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::time::Duration;

const BASE: &str = "/api/c/compapi/v2/monitor_v3";
/// The business of every group the loop makes.
const BIZ: i64 = 8;
const LABELS: [&str; 5] = ["os", "application", "component", "apm", "host_process"];

/// What the loop checks of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
struct GroupState {
    name: String,
    label: String,
    is_enable: bool,
}

/// One group: `sure` is the state after the last acknowledged change
/// (`None`: absent or deleted), `maybe` the states of changes after it
/// that got no answer.
#[derive(Debug)]
struct Group {
    data_id: i64,
    id: Option<i64>,
    sure: Option<GroupState>,
    maybe: Vec<Option<GroupState>>,
}

/// The control thread's counts for one round.
#[derive(Debug, Default, Clone)]
pub(crate) struct ControlStats {
    pub(crate) acked_changes: u64,
    pub(crate) unknown_changes: u64,
    pub(crate) compactions: u64,
    pub(crate) unexpected: Vec<String>,
}

/// The groups the loop made and the thread that changes them.
#[derive(Debug)]
pub(crate) struct Control {
    groups: Vec<Group>,
    next_data_id: i64,
    renames: u64,
    pub(crate) stats: ControlStats,
}

/// `POST BASE/<api>/` with ESB credentials; `Ok(data)` on success, `Err`
/// with the reply otherwise.
fn esb(agent: &ureq::Agent, base_url: &str, api: &str, params: Value) -> Result<Value, Reply> {
    let mut body: Map<String, Value> = match params {
        Value::Object(o) => o,
        _ => Map::new(),
    };
    body.insert("bk_app_code".into(), json!("crashloop"));
    body.insert("bk_app_secret".into(), json!("crashloop"));
    body.insert("bk_username".into(), json!("admin"));
    let reply = http::request(
        agent,
        "POST",
        &format!("{base_url}{BASE}/{api}/"),
        Some(&Value::Object(body).to_string()),
    );
    let env: Option<Value> = reply.ok_body().and_then(|b| serde_json::from_str(b).ok());
    match env {
        Some(e) if e["result"] == json!(true) => Ok(e["data"].clone()),
        _ => Err(reply),
    }
}

impl Control {
    /// Creates the group `/v2/push/` writes into; the run cannot go on
    /// without it.
    pub(crate) fn new(base_url: &str) -> Result<(Self, PushTarget)> {
        let agent = http::agent();
        let state = GroupState {
            name: "crashloop_push".into(),
            label: "application".into(),
            is_enable: true,
        };
        let data_id = 600_001;
        let data = esb(
            &agent,
            base_url,
            "metadata_create_time_series_group",
            json!({"bk_data_id": data_id, "bk_biz_id": BIZ, "time_series_group_name": state.name,
                "label": state.label, "operator": "crashloop"}),
        )
        .map_err(|r| anyhow::anyhow!("create the push group: {}", r.summary()))?;
        let token = data["token"].as_str().context("no token")?.to_owned();
        let table = data["table_id"].as_str().context("no table_id")?;
        let prefix = table.split_once('.').context("table_id")?.0.to_owned();
        let id = data["time_series_group_id"]
            .as_i64()
            .context("no group id")?;
        let control = Self {
            groups: vec![Group {
                data_id,
                id: Some(id),
                sure: Some(state),
                maybe: Vec::new(),
            }],
            next_data_id: 700_001,
            renames: 0,
            stats: ControlStats::default(),
        };
        let push = PushTarget {
            data_id,
            group_id: id,
            token,
            prefix,
        };
        Ok((control, push))
    }

    /// Changes groups and forces compactions at a jittered pace (up to
    /// 300 ms apart: each change rewrites the metadata file) until the
    /// round stops or the server dies.
    pub(crate) fn run(mut self, ctx: &RoundCtx) -> Self {
        self.stats = ControlStats::default();
        let mut rng = Rng::derive(ctx.seed, ctx.round, 100);
        let agent = http::agent();
        while !ctx.stop.is_set() {
            let reply = if rng.percent(25) {
                let r = http::request(&agent, "POST", &ctx.url("/admin/compact"), Some(""));
                self.stats.compactions += u64::from(r.ok_body().is_some());
                r.ok_body().is_none().then_some(r)
            } else {
                self.change(ctx, &agent, &mut rng)
            };
            match reply {
                Some(Reply::Broken(_)) => break,
                Some(r) if self.stats.unexpected.len() < 5 => {
                    self.stats.unexpected.push(r.summary());
                }
                _ => {}
            }
            let pace = Duration::from_millis(rng.below(300));
            if ctx.stop.wait(pace) {
                break;
            }
        }
        self
    }

    /// One create, modify or delete; `Some(reply)` unless acknowledged.
    fn change(&mut self, ctx: &RoundCtx, agent: &ureq::Agent, rng: &mut Rng) -> Option<Reply> {
        // Never the push group (index 0); only groups in a known state.
        let live: Vec<usize> = (1..self.groups.len())
            .filter(|i| {
                let g = &self.groups[*i];
                g.sure.is_some() && g.maybe.is_empty() && g.id.is_some()
            })
            .collect();
        let label = rng.pick(&LABELS).copied().unwrap_or("os").to_owned();
        let (index, api, params, next) = match rng.pick(&live) {
            Some(&i) if live.len() >= 6 || (live.len() >= 2 && rng.percent(60)) => {
                let g = &self.groups[i];
                let id = g.id.unwrap_or_default();
                if rng.percent(70) {
                    let mut s = g.sure.clone()?;
                    s.label = label;
                    if rng.percent(50) {
                        self.renames += 1;
                        s.name = format!("crashloop_{}_r{}", g.data_id, self.renames);
                    }
                    if rng.percent(30) {
                        s.is_enable = !s.is_enable;
                    }
                    let params = json!({"time_series_group_id": id, "operator": "crashloop",
                        "time_series_group_name": s.name, "label": s.label, "is_enable": s.is_enable});
                    (i, "metadata_modify_time_series_group", params, Some(s))
                } else {
                    let params = json!({"time_series_group_id": id, "operator": "crashloop"});
                    (i, "metadata_delete_time_series_group", params, None)
                }
            }
            _ => {
                let data_id = self.next_data_id;
                self.next_data_id += 1;
                let s = GroupState {
                    name: format!("crashloop_{data_id}"),
                    label,
                    is_enable: true,
                };
                let params = json!({"bk_data_id": data_id, "bk_biz_id": BIZ,
                    "time_series_group_name": s.name, "label": s.label, "operator": "crashloop"});
                self.groups.push(Group {
                    data_id,
                    id: None,
                    sure: None,
                    maybe: Vec::new(),
                });
                (
                    self.groups.len() - 1,
                    "metadata_create_time_series_group",
                    params,
                    Some(s),
                )
            }
        };
        let answer = esb(agent, &ctx.base_url, api, params);
        let g = &mut self.groups[index];
        match answer {
            Ok(data) => {
                self.stats.acked_changes += 1;
                if let Some(id) = data["time_series_group_id"].as_i64() {
                    g.id = Some(id);
                }
                g.sure = next;
                g.maybe.clear();
                None
            }
            Err(reply) => {
                self.stats.unknown_changes += 1;
                g.maybe.push(next);
                Some(reply)
            }
        }
    }

    /// Compares every group with what the server lists for the business,
    /// and the push group's metrics with `pushed` (metric names data was
    /// acknowledged for); then continues from what is stored.
    pub(crate) fn check(
        &mut self,
        base_url: &str,
        push: &PushTarget,
        pushed: &[String],
    ) -> Result<Tally> {
        let agent = http::agent();
        let listed = esb(
            &agent,
            base_url,
            "metadata_query_time_series_group",
            json!({"bk_biz_id": BIZ}),
        )
        .map_err(|r| anyhow::anyhow!("list groups: {}", r.summary()))?;
        let mut seen: HashMap<i64, (i64, GroupState)> = HashMap::new();
        for g in listed.as_array().context("group list is no array")? {
            let state = GroupState {
                name: g["time_series_group_name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                label: g["label"].as_str().unwrap_or_default().to_owned(),
                is_enable: g["is_enable"] == json!(true),
            };
            let data_id = g["bk_data_id"].as_i64().context("bk_data_id")?;
            let id = g["time_series_group_id"].as_i64().context("group id")?;
            seen.insert(data_id, (id, state));
        }
        let mut t = Tally::default();
        for g in &mut self.groups {
            let found = seen.remove(&g.data_id);
            let state = found.as_ref().map(|(_, s)| s.clone());
            if state != g.sure && !g.maybe.contains(&state) {
                t.lost += 1;
                t.note(format!(
                    "group of data id {}: expected {:?}{}, found {state:?}",
                    g.data_id,
                    g.sure,
                    if g.maybe.is_empty() {
                        ""
                    } else {
                        " or an unacknowledged change"
                    }
                ));
            }
            if let Some((id, _)) = found {
                g.id = Some(id);
            }
            g.sure = state;
            g.maybe.clear();
        }
        for (data_id, (_, s)) in seen {
            t.stray += 1;
            t.note(format!("group never created: data id {data_id} {s:?}"));
        }
        let got = esb(
            &agent,
            base_url,
            "metadata_get_time_series_group",
            json!({"time_series_group_id": push.group_id}),
        )
        .map_err(|r| anyhow::anyhow!("get the push group: {}", r.summary()))?;
        let listed: Vec<&str> = got[0]["metric_info_list"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["field_name"].as_str())
            .collect();
        for m in pushed {
            if !listed.contains(&m.as_str()) {
                t.lost += 1;
                t.note(format!(
                    "push group lost its discovered metric {m}: lists {listed:?}"
                ));
            }
        }
        Ok(t)
    }

    /// Groups the model holds (push group included).
    pub(crate) fn len(&self) -> usize {
        self.groups.len()
    }
}
