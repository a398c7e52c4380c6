//! The campaign's checker: a pure function of the recorded [`History`],
//! tested below on doctored histories it must reject (and one it must
//! accept). It trusts nothing the edges say about themselves: it reads what
//! the factory stand-in received (every POST, its `Idempotency-Key`, body
//! and the status it was answered with), what MES holds, and when the
//! harness saw each operation finish.
//!
//! For every operation it requires:
//! * for each of log, Pair (or directBurn) and notification: exactly one
//!   `Idempotency-Key` (one run), every POST under it with one body, and
//!   at least one of them answered 2xx (delivered); Pair only when a device
//!   passed, and then required;
//! * every device exactly once in the log and the notification, every
//!   passing device exactly once in Pair, no serial nobody asked for;
//! * each device's result (log `result`, notification `result`,
//!   membership in Pair) equal to what MES says;
//! * the notification carries no error, and the API ended it `done`;
//! * finished within its window plus [`History::bound`];
//! * nothing left running at the end: the store lists no operation still
//!   collecting or reporting.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// One factory POST as the stand-in recorded it.
#[derive(Debug, Clone)]
pub(crate) struct Post {
    pub(crate) path: String,
    pub(crate) key: Option<String>,
    pub(crate) body: Vec<u8>,
    /// The status it was answered with.
    pub(crate) status: u16,
}

/// One operation as the harness drove it.
#[derive(Debug, Clone)]
pub(crate) struct OpHistory {
    /// The operation id as keys and bodies carry it.
    pub(crate) op: String,
    /// Every device asked, and whether MES's record matches its cards
    /// (it must pass).
    pub(crate) devices: Vec<(String, bool)>,
    /// `windowSecs`.
    pub(crate) window: Duration,
    /// When the client first sent `POST /scans` (since the campaign began).
    pub(crate) posted: Duration,
    /// When an edge accepted it (202, or 409 for an attempt that got
    /// through before), if one did.
    pub(crate) accepted: Option<Duration>,
    /// When the API first showed it finished, and in which state.
    pub(crate) finished: Option<(Duration, String)>,
}

/// Everything the checker reads.
#[derive(Debug, Clone)]
pub(crate) struct History {
    /// How long past its window an operation may take to finish.
    pub(crate) bound: Duration,
    pub(crate) ops: Vec<OpHistory>,
    /// Every POST the stand-in received during the campaign.
    pub(crate) posts: Vec<Post>,
    /// The store's operations at the end (`GET /scans?limit=…`: id and
    /// state), `None` if no edge could be asked.
    pub(crate) at_end: Option<Vec<(String, String)>>,
    /// What the harness saw go wrong around the faults: an edge that did
    /// not exit on SIGTERM or exited non-zero, two edges active at once,
    /// no edge active again, a node or edge that would not start again.
    pub(crate) incidents: Vec<String>,
}

/// What the checker found for one operation.
#[derive(Debug, Clone, Default)]
pub(crate) struct OpVerdict {
    pub(crate) op: String,
    /// Devices missing from a payload (or from a payload never delivered).
    pub(crate) lost: usize,
    /// Devices listed twice, payloads sent under two keys or with two
    /// bodies under one key.
    pub(crate) duplicated: usize,
    /// Devices whose result differs from what MES says.
    pub(crate) wrong: usize,
    /// Not finished within its window plus the bound, or still running.
    pub(crate) stuck: bool,
    /// From the first `POST /scans` to finished.
    pub(crate) took: Option<Duration>,
    /// POSTs the factory received for it (retries included).
    pub(crate) posts: usize,
    pub(crate) problems: Vec<String>,
}

/// The checker's findings.
#[derive(Debug, Clone, Default)]
pub(crate) struct Verdict {
    pub(crate) ops: Vec<OpVerdict>,
    /// Problems not of one operation.
    pub(crate) problems: Vec<String>,
}

impl Verdict {
    pub(crate) fn passed(&self) -> bool {
        self.problems.is_empty() && self.ops.iter().all(|o| o.problems.is_empty())
    }
    pub(crate) fn lost(&self) -> usize {
        self.ops.iter().map(|o| o.lost).sum()
    }
    pub(crate) fn duplicated(&self) -> usize {
        self.ops.iter().map(|o| o.duplicated).sum()
    }
    pub(crate) fn wrong(&self) -> usize {
        self.ops.iter().map(|o| o.wrong).sum()
    }
    pub(crate) fn stuck(&self) -> usize {
        self.ops.iter().filter(|o| o.stuck).count()
    }
}

/// The three payloads, by their key's last part and the path they go to.
const KINDS: [(&str, &str); 4] = [
    ("log", "/log"),
    ("pair", "/pair"),
    ("directBurn", "/directBurn"),
    ("notify", "/notify"),
];

/// Checks the whole history.
pub(crate) fn check(h: &History) -> Verdict {
    let mut v = Verdict {
        problems: h.incidents.clone(),
        ..Verdict::default()
    };
    // POSTs by operation (a key is `<op>:<run>:<kind>`).
    let mut by_op: BTreeMap<&str, Vec<&Post>> = BTreeMap::new();
    let known: BTreeSet<&str> = h.ops.iter().map(|o| o.op.as_str()).collect();
    for p in &h.posts {
        let op = p.key.as_deref().and_then(|k| k.split(':').next());
        match op.filter(|op| known.contains(op)) {
            Some(op) => by_op.entry(op).or_default().push(p),
            None => v.problems.push(format!(
                "a {} POST carries Idempotency-Key {:?}: no operation of this campaign",
                p.path, p.key
            )),
        }
    }
    for o in &h.ops {
        let posts = by_op.remove(o.op.as_str()).unwrap_or_default();
        v.ops.push(check_op(o, &posts, h.bound));
    }
    match &h.at_end {
        None => v
            .problems
            .push("no edge answered GET /scans at the end: what still runs is unknown".into()),
        Some(list) => {
            for (op, state) in list {
                if !matches!(state.as_str(), "done" | "failed") {
                    let mine = v.ops.iter_mut().find(|x| &x.op == op);
                    let why = format!("still {state} at the end of the campaign");
                    match mine {
                        Some(x) => {
                            x.stuck = true;
                            x.problems.push(why);
                        }
                        None => v.problems.push(format!("operation {op} is {why}")),
                    }
                }
            }
        }
    }
    v
}

fn check_op(o: &OpHistory, posts: &[&Post], bound: Duration) -> OpVerdict {
    let mut v = OpVerdict {
        op: o.op.clone(),
        posts: posts.len(),
        ..OpVerdict::default()
    };
    let passing: Vec<&str> = o
        .devices
        .iter()
        .filter(|(_, pass)| *pass)
        .map(|(sn, _)| sn.as_str())
        .collect();
    let all: Vec<&str> = o.devices.iter().map(|(sn, _)| sn.as_str()).collect();
    let mes: BTreeMap<&str, bool> = o.devices.iter().map(|(s, p)| (s.as_str(), *p)).collect();

    // Timing first: a stuck operation explains what is missing below.
    match (&o.accepted, &o.finished) {
        (None, _) => {
            v.stuck = true;
            v.problems
                .push("no edge accepted POST /scans (the client gave up)".into());
        }
        (Some(_), None) => {
            v.stuck = true;
            v.problems.push(format!(
                "not finished {:.0} s after POST /scans (window {:.0} s + bound {:.0} s)",
                (o.window + bound).as_secs_f64(),
                o.window.as_secs_f64(),
                bound.as_secs_f64()
            ));
        }
        (Some(_), Some((at, state))) => {
            let took = at.saturating_sub(o.posted);
            v.took = Some(took);
            if took > o.window + bound {
                v.stuck = true;
                v.problems.push(format!(
                    "finished {:.1} s after POST /scans: more than its window {:.0} s + bound {:.0} s",
                    took.as_secs_f64(),
                    o.window.as_secs_f64(),
                    bound.as_secs_f64()
                ));
            }
            if state != "done" {
                v.problems
                    .push(format!("the API ended it {state}, not done"));
            }
        }
    }

    let mut bodies: BTreeMap<&str, serde_json::Value> = BTreeMap::new();
    for (kind, path) in KINDS {
        let of_kind: Vec<&&Post> = posts
            .iter()
            .filter(|p| {
                p.key
                    .as_deref()
                    .is_some_and(|k| k.ends_with(&format!(":{kind}")))
            })
            .collect();
        if let Some(p) = of_kind.iter().find(|p| p.path != path) {
            v.problems.push(format!(
                "a POST to {} carries the {kind} key {:?}",
                p.path, p.key
            ));
        }
        let keys: BTreeSet<&str> = of_kind.iter().filter_map(|p| p.key.as_deref()).collect();
        if keys.len() > 1 {
            v.duplicated += keys.len() - 1;
            v.problems.push(format!(
                "{kind} sent under {} keys ({}): one operation, one run",
                keys.len(),
                keys.iter().copied().collect::<Vec<_>>().join(", ")
            ));
        }
        let distinct: BTreeSet<&[u8]> = of_kind.iter().map(|p| p.body.as_slice()).collect();
        if distinct.len() > 1 {
            v.duplicated += distinct.len() - 1;
            v.problems.push(format!(
                "{kind}: {} different bodies (a retry must resend the same body)",
                distinct.len()
            ));
        }
        let wanted = match kind {
            "log" | "notify" => true,
            // Pair or directBurn, whichever was sent; one of them when a
            // device passed.
            _ => false,
        };
        let delivered = of_kind.iter().find(|p| (200..300).contains(&p.status));
        match delivered {
            Some(p) => match serde_json::from_slice::<serde_json::Value>(&p.body) {
                Ok(json) => {
                    bodies.insert(kind, json);
                }
                Err(e) => v.problems.push(format!("the {kind} body is not JSON: {e}")),
            },
            None if !of_kind.is_empty() => {
                v.problems.push(format!(
                    "{kind} was POSTed {} time(s) and never answered 2xx: not delivered",
                    of_kind.len()
                ));
            }
            None if wanted => v.problems.push(format!("no {kind} POST was received")),
            None => {}
        }
    }

    // The log: every device once, its result MES's.
    let log_entries = bodies
        .get("log")
        .map(|log| log["scaninfo"].as_array().cloned().unwrap_or_default());
    let seen = |entries: &Option<Vec<serde_json::Value>>, field: &str| -> Vec<String> {
        entries
            .iter()
            .flatten()
            .map(|e| e[field].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let mut lost: BTreeSet<String> = BTreeSet::new();
    let mut doubled: BTreeSet<String> = BTreeSet::new();
    let mut wrong: BTreeSet<String> = BTreeSet::new();
    once(
        &mut v,
        "log",
        &all,
        seen(&log_entries, "sn"),
        &mut lost,
        &mut doubled,
    );
    for e in log_entries.iter().flatten() {
        let sn = e["sn"].as_str().unwrap_or_default();
        if let Some(&pass) = mes.get(sn)
            && (e["result"] == "1") != pass
        {
            wrong.insert(sn.to_owned());
        }
    }
    // The notification: every device once, Success exactly when MES
    // says pass, no error.
    let notify = bodies.get("notify");
    let notify_entries = notify.map(|n| n["scanInfo"].as_array().cloned().unwrap_or_default());
    once(
        &mut v,
        "notify",
        &all,
        seen(&notify_entries, "serialNo"),
        &mut lost,
        &mut doubled,
    );
    for e in notify_entries.iter().flatten() {
        let sn = e["serialNo"].as_str().unwrap_or_default();
        if let Some(&pass) = mes.get(sn)
            && (e["result"] == "Success") != pass
        {
            wrong.insert(sn.to_owned());
        }
    }
    if let Some(err) = notify.and_then(|n| n.get("error")) {
        v.problems
            .push(format!("the notification carries an error: {err}"));
    }
    // Pair (or directBurn): exactly the passing devices, once each.
    let pair = bodies.get("pair").or(bodies.get("directBurn"));
    if bodies.contains_key("pair") && bodies.contains_key("directBurn") {
        v.problems
            .push("both Pair and directBurn were sent: one target per operation".into());
    }
    match pair {
        Some(pair) => {
            let sns: Vec<String> = pair["snArray"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|s| s.as_str().unwrap_or_default().to_owned())
                .collect();
            for sn in &sns {
                if mes.get(sn.as_str()) == Some(&false) {
                    wrong.insert(sn.clone());
                }
            }
            let listed: Vec<String> = sns
                .into_iter()
                .filter(|sn| mes.get(sn.as_str()) != Some(&false))
                .collect();
            once(&mut v, "pair", &passing, listed, &mut lost, &mut doubled);
        }
        None if !passing.is_empty() => {
            v.problems.push(format!(
                "no Pair or directBurn was delivered, though {} device(s) pass",
                passing.len()
            ));
            lost.extend(passing.iter().map(|s| (*s).to_owned()));
        }
        None => {}
    }
    if !wrong.is_empty() {
        v.problems.push(format!(
            "{} device(s) reported otherwise than MES says, e.g. {:?}",
            wrong.len(),
            wrong.iter().take(5).collect::<Vec<_>>()
        ));
    }
    v.lost = lost.len();
    v.duplicated += doubled.len();
    v.wrong = wrong.len();
    v
}

/// Every one of `expected` exactly once in `seen`, nothing else; adds the
/// lost and doubled serials to the sets.
fn once(
    v: &mut OpVerdict,
    what: &str,
    expected: &[&str],
    seen: Vec<String>,
    lost: &mut BTreeSet<String>,
    doubled: &mut BTreeSet<String>,
) {
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for sn in seen {
        *count.entry(sn).or_default() += 1;
    }
    let missing: Vec<&str> = expected
        .iter()
        .copied()
        .filter(|s| !count.contains_key(*s))
        .collect();
    let twice: Vec<&String> = count
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(s, _)| s)
        .collect();
    let asked: BTreeSet<&str> = expected.iter().copied().collect();
    let unexpected: Vec<&String> = count
        .keys()
        .filter(|s| !asked.contains(s.as_str()))
        .collect();
    if !missing.is_empty() {
        v.problems.push(format!(
            "{what}: {} device(s) missing, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        ));
        lost.extend(missing.iter().map(|s| (*s).to_owned()));
    }
    if !twice.is_empty() {
        v.problems.push(format!(
            "{what}: {} device(s) listed more than once, e.g. {:?}",
            twice.len(),
            &twice[..twice.len().min(5)]
        ));
        doubled.extend(twice.into_iter().cloned());
    }
    if !unexpected.is_empty() {
        v.problems.push(format!(
            "{what}: {} serial(s) nobody asked for, e.g. {:?}",
            unexpected.len(),
            &unexpected[..unexpected.len().min(5)]
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    /// Two operations of three devices; the third device of each fails
    /// on MES. Operation 1's log was retried after a 503.
    fn good() -> History {
        let mut posts = Vec::new();
        let mut ops = Vec::new();
        for op in ["1", "2"] {
            let devices: Vec<(String, bool)> =
                (0..3).map(|i| (format!("SN{op}{i}"), i != 2)).collect();
            let log = serde_json::json!({
                "operationid": op.parse::<u64>().unwrap(),
                "pairInfo": [],
                "scaninfo": devices.iter().map(|(sn, pass)| serde_json::json!({
                    "macinfo": [{"interface": "enp1s0", "macaddr": "02:00:00:00:00:01", "scanstatus": if *pass {"1"} else {"0"}}],
                    "sn": sn, "result": if *pass {"1"} else {"0"}
                })).collect::<Vec<_>>()
            });
            let pair = serde_json::json!({
                "snArray": devices.iter().filter(|d| d.1).map(|d| d.0.clone()).collect::<Vec<_>>(),
                "operationId": 1
            });
            let notify = serde_json::json!({
                "operationId": 1,
                "scanInfo": devices.iter().map(|(sn, pass)| serde_json::json!({
                    "serialNo": sn, "result": if *pass {"Success"} else {"Fail"}
                })).collect::<Vec<_>>()
            });
            let post = |path: &str, kind: &str, body: &serde_json::Value, status| Post {
                path: path.into(),
                key: Some(format!("{op}:1:{kind}")),
                body: body.to_string().into_bytes(),
                status,
            };
            if op == "1" {
                posts.push(post("/log", "log", &log, 503));
            }
            posts.push(post("/log", "log", &log, 200));
            posts.push(post("/pair", "pair", &pair, 200));
            posts.push(post("/notify", "notify", &notify, 200));
            let start = if op == "1" { S(0) } else { S(20) };
            ops.push(OpHistory {
                op: op.into(),
                devices,
                window: S(15),
                posted: start,
                accepted: Some(start + Duration::from_millis(30)),
                finished: Some((start + S(8), "done".into())),
            });
        }
        History {
            bound: S(30),
            ops,
            posts,
            at_end: Some(vec![
                ("2".into(), "done".into()),
                ("1".into(), "done".into()),
            ]),
            incidents: vec![],
        }
    }

    fn problems(h: &History) -> Vec<String> {
        let v = check(h);
        let mut all = v.problems.clone();
        for o in &v.ops {
            all.extend(o.problems.iter().map(|p| format!("op {}: {p}", o.op)));
        }
        all
    }

    fn edit(h: &mut History, op: &str, kind: &str, f: impl Fn(&mut serde_json::Value)) {
        for p in &mut h.posts {
            if p.key.as_deref() == Some(&format!("{op}:1:{kind}")) {
                let mut json: serde_json::Value = serde_json::from_slice(&p.body).unwrap();
                f(&mut json);
                p.body = json.to_string().into_bytes();
            }
        }
    }

    fn rejected_for(h: &History, what: &str) -> Verdict {
        let v = check(h);
        assert!(!v.passed(), "accepted a history with {what}");
        v
    }

    #[test]
    fn a_good_history_is_accepted() {
        let v = check(&good());
        assert!(v.passed(), "{:?}", problems(&good()));
        assert_eq!(
            (v.lost(), v.duplicated(), v.wrong(), v.stuck()),
            (0, 0, 0, 0)
        );
        assert_eq!(v.ops[0].posts, 4, "the retried log counts");
        assert_eq!(v.ops[1].took, Some(S(8)));
    }

    #[test]
    fn a_device_lost_from_the_log_is_rejected() {
        let mut h = good();
        edit(&mut h, "2", "log", |j| {
            j["scaninfo"].as_array_mut().unwrap().remove(0);
        });
        let v = rejected_for(&h, "a device missing from the log");
        assert_eq!(v.lost(), 1);
        assert!(
            problems(&h)
                .iter()
                .any(|p| p.contains("op 2: log: 1 device(s) missing"))
        );
    }

    #[test]
    fn a_device_twice_in_the_notification_is_rejected() {
        let mut h = good();
        edit(&mut h, "1", "notify", |j| {
            let first = j["scanInfo"][0].clone();
            j["scanInfo"].as_array_mut().unwrap().push(first);
        });
        let v = rejected_for(&h, "a device listed twice");
        assert_eq!(v.duplicated(), 1);
    }

    #[test]
    fn a_second_run_of_the_same_operation_is_rejected_as_doubling() {
        let mut h = good();
        let again: Vec<Post> = h
            .posts
            .iter()
            .filter(|p| p.key.as_deref().is_some_and(|k| k.starts_with("2:")))
            .map(|p| Post {
                key: p.key.as_ref().map(|k| k.replacen(":1:", ":2:", 1)),
                ..p.clone()
            })
            .collect();
        h.posts.extend(again);
        let v = rejected_for(&h, "a second run");
        assert_eq!(v.duplicated(), 3, "log, pair and notify each twice");
        assert!(
            problems(&h)
                .iter()
                .any(|p| p.contains("log sent under 2 keys"))
        );
    }

    #[test]
    fn two_bodies_under_one_key_are_rejected() {
        let mut h = good();
        let mut other = h.posts.iter().find(|p| p.path == "/pair").unwrap().clone();
        other.body = br#"{"snArray":["SN10"],"operationId":1}"#.to_vec();
        h.posts.push(other);
        let v = rejected_for(&h, "two Pair bodies under one key");
        assert!(v.duplicated() >= 1);
    }

    #[test]
    fn a_payload_never_answered_2xx_is_rejected_as_lost() {
        let mut h = good();
        for p in h.posts.iter_mut().filter(|p| p.path == "/notify") {
            p.status = 503;
        }
        let v = rejected_for(&h, "a notification that was never delivered");
        assert_eq!(v.lost(), 6, "every device of both notifications");
        assert!(
            problems(&h)
                .iter()
                .any(|p| p.contains("never answered 2xx"))
        );
    }

    #[test]
    fn a_result_other_than_what_mes_says_is_rejected() {
        let mut h = good();
        // The failing device passed in the log and was paired.
        edit(&mut h, "1", "log", |j| {
            j["scaninfo"][2]["result"] = "1".into()
        });
        edit(&mut h, "1", "pair", |j| {
            j["snArray"].as_array_mut().unwrap().push("SN12".into());
        });
        let v = rejected_for(&h, "a failing device reported passed");
        assert_eq!(v.wrong(), 1);
        // A passing device reported Fail in the notification.
        let mut h = good();
        edit(&mut h, "2", "notify", |j| {
            j["scanInfo"][0]["result"] = "Fail".into();
        });
        assert_eq!(rejected_for(&h, "a passing device failed").wrong(), 1);
    }

    #[test]
    fn a_missing_pair_or_an_error_in_the_notification_is_rejected() {
        let mut h = good();
        h.posts
            .retain(|p| !(p.path == "/pair" && p.key.as_deref() == Some("1:1:pair")));
        let v = rejected_for(&h, "no Pair");
        assert_eq!(v.lost(), 2, "the two passing devices were not paired");
        let mut h = good();
        edit(&mut h, "2", "notify", |j| {
            j["error"] = "MES could not be asked".into()
        });
        rejected_for(&h, "an error in the notification");
    }

    #[test]
    fn a_late_unfinished_or_failed_operation_is_rejected_as_stuck() {
        let mut h = good();
        h.ops[0].finished = Some((S(46), "done".into()));
        assert_eq!(rejected_for(&h, "a finish after window + bound").stuck(), 1);
        let mut h = good();
        h.ops[1].finished = None;
        assert_eq!(
            rejected_for(&h, "an operation never seen finished").stuck(),
            1
        );
        let mut h = good();
        h.ops[1].accepted = None;
        assert_eq!(rejected_for(&h, "an operation never accepted").stuck(), 1);
        let mut h = good();
        h.ops[1].finished = Some((S(25), "failed".into()));
        rejected_for(&h, "an operation ended failed");
    }

    #[test]
    fn something_still_running_at_the_end_is_rejected() {
        let mut h = good();
        h.at_end = Some(vec![
            ("1".into(), "done".into()),
            ("2".into(), "reporting".into()),
        ]);
        assert_eq!(rejected_for(&h, "an operation still reporting").stuck(), 1);
        let mut h = good();
        h.at_end = Some(vec![("77".into(), "collecting".into())]);
        rejected_for(&h, "an unknown operation still collecting");
        let mut h = good();
        h.at_end = None;
        rejected_for(&h, "an end state nobody could read");
    }

    #[test]
    fn an_incident_around_a_fault_is_rejected() {
        let mut h = good();
        h.incidents
            .push("op 2: both edges said they were active".into());
        let v = rejected_for(&h, "two active edges");
        assert_eq!(v.problems, h.incidents);
    }

    #[test]
    fn a_post_for_no_operation_of_the_campaign_is_rejected() {
        let mut h = good();
        let mut stray = h.posts[0].clone();
        stray.key = Some("99:1:log".into());
        h.posts.push(stray);
        rejected_for(&h, "a stray POST");
    }
}
