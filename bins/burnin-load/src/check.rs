//! The fault run's checker: given what the factory stand-in received and
//! what the edge says it saw, is every device reported exactly once, and
//! is every retried POST identical? Pure, so it is tested on doctored
//! records (see the tests below): a check that cannot fail is no check.

use std::collections::BTreeMap;

/// One factory POST as the stand-in recorded it.
#[derive(Debug, Clone)]
pub(crate) struct Post {
    /// `/log`, `/pair`, `/notify`, …
    pub(crate) path: String,
    /// Its `Idempotency-Key` header.
    pub(crate) key: Option<String>,
    /// Its body.
    pub(crate) body: Vec<u8>,
}

/// Replies as the edge counted them (`scan --json`'s `"replies"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Replies {
    pub(crate) accepted: u64,
    pub(crate) duplicate: u64,
    pub(crate) rejected: u64,
    pub(crate) redelivered: u64,
}

impl Replies {
    /// Reads `{"replies": {"accepted", "duplicate", "rejected",
    /// "redelivered"}}` from the edge's JSON document; `None` when the
    /// edge does not report them.
    pub(crate) fn from_scan_json(doc: &serde_json::Value) -> Option<Replies> {
        let r = doc.get("replies")?;
        let n = |k: &str| r.get(k).and_then(serde_json::Value::as_u64);
        Some(Replies {
            accepted: n("accepted")?,
            duplicate: n("duplicate").unwrap_or(0),
            rejected: n("rejected").unwrap_or(0),
            redelivered: n("redelivered").unwrap_or(0),
        })
    }
}

/// What one operation left behind.
#[derive(Debug, Clone)]
pub(crate) struct Record {
    /// The operation id as it appears in keys and bodies.
    pub(crate) op: String,
    /// Every serial that was asked and must pass.
    pub(crate) expected: Vec<String>,
    /// The factory POSTs for the operation, in arrival order.
    pub(crate) posts: Vec<Post>,
    /// The edge's own counts, when it reports them.
    pub(crate) replies: Option<Replies>,
}

/// The checker's findings: lines to print, and problems (empty: passed).
#[derive(Debug, Default)]
pub(crate) struct Findings {
    pub(crate) lines: Vec<String>,
    pub(crate) problems: Vec<String>,
    /// The run every Idempotency-Key named so far.
    run: Option<String>,
}

impl Findings {
    pub(crate) fn passed(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Runs every check on `record`.
pub(crate) fn check(record: &Record) -> Findings {
    let mut f = Findings::default();
    let mut bodies = BTreeMap::new();
    for (path, kind) in [("/log", "log"), ("/pair", "pair"), ("/notify", "notify")] {
        let posts: Vec<&Post> = record.posts.iter().filter(|p| p.path == path).collect();
        f.lines.push(format!("{path}: {} POST(s)", posts.len()));
        let Some(first) = posts.first() else {
            f.problems.push(format!("no {path} POST was received"));
            continue;
        };
        if let Some(other) = posts.iter().find(|p| p.body != first.body) {
            f.problems.push(format!(
                "the {path} POSTs differ: {} bytes vs {} bytes (a retry must resend the same body)",
                first.body.len(),
                other.body.len()
            ));
        }
        // `<op>:<run>:<kind>` (the run is the scan's own; every POST of
        // the record names the same one).
        let prefix = format!("{}:", record.op);
        let suffix = format!(":{kind}");
        let want = format!("{prefix}<run>{suffix}");
        for p in &posts {
            let run = p
                .key
                .as_deref()
                .and_then(|k| k.strip_prefix(&prefix))
                .and_then(|k| k.strip_suffix(&suffix))
                .filter(|run| run.parse::<u64>().is_ok_and(|n| n > 0));
            match (run, &f.run) {
                (None, _) => f.problems.push(format!(
                    "a {path} POST carries Idempotency-Key {:?}, expected {want:?}",
                    p.key
                )),
                (Some(run), Some(seen)) if run != seen => f.problems.push(format!(
                    "a {path} POST names run {run}, another POST run {seen}: one operation, one run"
                )),
                (Some(run), _) => f.run = Some(run.to_owned()),
            }
        }
        match serde_json::from_slice::<serde_json::Value>(&first.body) {
            Ok(v) => {
                bodies.insert(kind, v);
            }
            Err(e) => f.problems.push(format!("the {path} body is not JSON: {e}")),
        }
    }
    if let Some(log) = bodies.get("log") {
        let entries = log["scaninfo"].as_array().cloned().unwrap_or_default();
        let sns = entries
            .iter()
            .map(|e| e["sn"].as_str().unwrap_or_default().to_owned());
        once(&mut f, "/log", &record.expected, sns);
        let failed: Vec<&str> = entries
            .iter()
            .filter(|e| e["result"] != "1" || e["macinfo"].as_array().is_none_or(|m| m.is_empty()))
            .filter_map(|e| e["sn"].as_str())
            .collect();
        if !failed.is_empty() {
            f.problems.push(format!(
                "{} device(s) did not pass in /log, e.g. {:?}",
                failed.len(),
                &failed[..failed.len().min(5)]
            ));
        }
    }
    if let Some(pair) = bodies.get("pair") {
        let sns = pair["snArray"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.as_str().unwrap_or_default().to_owned());
        once(&mut f, "/pair", &record.expected, sns);
    }
    if let Some(notify) = bodies.get("notify") {
        let entries = notify["scanInfo"].as_array().cloned().unwrap_or_default();
        let sns = entries
            .iter()
            .map(|e| e["serialNo"].as_str().unwrap_or_default().to_owned());
        once(&mut f, "/notify", &record.expected, sns);
        if let Some(e) = notify.get("error") {
            f.problems
                .push(format!("the notification carries an error: {e}"));
        }
    }
    match record.replies {
        Some(r) => {
            f.lines.push(format!(
                "replies as the edge saw them: accepted {}, duplicate {}, rejected {}, redelivered {}",
                r.accepted, r.duplicate, r.rejected, r.redelivered
            ));
            if r.accepted != record.expected.len() as u64 {
                f.problems.push(format!(
                    "the edge accepted {} replies for {} devices",
                    r.accepted,
                    record.expected.len()
                ));
            }
        }
        None => f.lines.push(
            "replies as the edge saw them: not reported (this burnin-edge's scan --json has no \"replies\")"
                .into(),
        ),
    }
    f
}

/// Every expected serial exactly once in `seen`, nothing else.
fn once(f: &mut Findings, what: &str, expected: &[String], seen: impl Iterator<Item = String>) {
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    for sn in seen {
        *count.entry(sn).or_default() += 1;
    }
    let lost: Vec<&String> = expected
        .iter()
        .filter(|s| !count.contains_key(*s))
        .collect();
    let duplicated: Vec<&String> = count
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(s, _)| s)
        .collect();
    let unexpected = count.keys().filter(|s| !expected.contains(s)).count();
    f.lines.push(format!(
        "{what}: lost = {}, duplicated = {}, unexpected = {unexpected} (of {} devices)",
        lost.len(),
        duplicated.len(),
        expected.len()
    ));
    if !lost.is_empty() {
        f.problems.push(format!(
            "{what}: {} device(s) missing, e.g. {:?}",
            lost.len(),
            &lost[..lost.len().min(5)]
        ));
    }
    if !duplicated.is_empty() {
        f.problems.push(format!(
            "{what}: {} device(s) listed more than once, e.g. {:?}",
            duplicated.len(),
            &duplicated[..duplicated.len().min(5)]
        ));
    }
    if unexpected > 0 {
        f.problems
            .push(format!("{what}: {unexpected} serial(s) nobody asked for"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> Record {
        let expected: Vec<String> = (0..3).map(|i| format!("SN{i}")).collect();
        let log = format!(
            r#"{{"operationid":9,"pairInfo":[],"scaninfo":[{}]}}"#,
            expected
                .iter()
                .map(|s| format!(
                    r#"{{"macinfo":[{{"interface":"enp1s0","macaddr":"02:00:00:00:00:01","scanstatus":"1"}}],"sn":"{s}","result":"1"}}"#
                ))
                .collect::<Vec<_>>()
                .join(",")
        );
        let pair = format!(
            r#"{{"snArray":[{}],"operationId":9}}"#,
            expected
                .iter()
                .map(|s| format!("\"{s}\""))
                .collect::<Vec<_>>()
                .join(",")
        );
        let notify = format!(
            r#"{{"operationId":9,"scanInfo":[{}]}}"#,
            expected
                .iter()
                .map(|s| format!(r#"{{"serialNo":"{s}","result":"Success"}}"#))
                .collect::<Vec<_>>()
                .join(",")
        );
        let post = |path: &str, kind: &str, body: &str| Post {
            path: path.into(),
            key: Some(format!("9:1764748800123:{kind}")),
            body: body.as_bytes().to_vec(),
        };
        Record {
            op: "9".into(),
            expected,
            posts: vec![
                post("/log", "log", &log),
                // A retry after a lost answer: same body, same key.
                post("/log", "log", &log),
                post("/pair", "pair", &pair),
                post("/notify", "notify", &notify),
            ],
            replies: Some(Replies {
                accepted: 3,
                duplicate: 1,
                rejected: 0,
                redelivered: 2,
            }),
        }
    }

    #[test]
    fn a_good_record_passes() {
        let f = check(&good());
        assert!(f.passed(), "{:?}", f.problems);
        assert!(
            f.lines.iter().any(|l| l.contains("redelivered 2")),
            "{:?}",
            f.lines
        );
    }

    #[test]
    fn a_device_missing_from_the_log_fails() {
        let mut r = good();
        for p in r.posts.iter_mut().filter(|p| p.path == "/log") {
            let text = String::from_utf8(p.body.clone()).unwrap();
            let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
            v["scaninfo"].as_array_mut().unwrap().remove(1);
            p.body = v.to_string().into_bytes();
        }
        let f = check(&r);
        assert!(!f.passed());
        assert!(
            f.problems
                .iter()
                .any(|p| p.contains("/log: 1 device(s) missing") && p.contains("SN1")),
            "{:?}",
            f.problems
        );
    }

    #[test]
    fn two_different_log_bodies_fail() {
        let mut r = good();
        let second = r
            .posts
            .iter_mut()
            .filter(|p| p.path == "/log")
            .nth(1)
            .unwrap();
        second.body = second
            .body
            .iter()
            .map(|b| if *b == b'1' { b'0' } else { *b })
            .collect();
        let f = check(&r);
        assert!(!f.passed());
        assert!(
            f.problems
                .iter()
                .any(|p| p.contains("the /log POSTs differ")),
            "{:?}",
            f.problems
        );
    }

    #[test]
    fn a_device_listed_twice_fails() {
        let mut r = good();
        let notify = r.posts.iter_mut().find(|p| p.path == "/notify").unwrap();
        notify.body = br#"{"operationId":9,"scanInfo":[{"serialNo":"SN0","result":"Success"},{"serialNo":"SN1","result":"Success"},{"serialNo":"SN1","result":"Success"},{"serialNo":"SN2","result":"Success"}]}"#.to_vec();
        let f = check(&r);
        assert!(
            f.problems
                .iter()
                .any(|p| p.contains("/notify: 1 device(s) listed more than once")),
            "{:?}",
            f.problems
        );
    }

    #[test]
    fn a_wrong_idempotency_key_or_a_missing_post_fails() {
        let mut r = good();
        // The form before run numbers: no longer what burnin sends.
        r.posts[2].key = Some("9:log".into());
        r.posts.retain(|p| p.path != "/notify");
        let f = check(&r);
        assert!(
            f.problems.iter().any(|p| p.contains("Idempotency-Key")),
            "{:?}",
            f.problems
        );
        assert!(
            f.problems.iter().any(|p| p.contains("no /notify POST")),
            "{:?}",
            f.problems
        );
    }

    #[test]
    fn the_edge_accepting_fewer_replies_than_devices_fails() {
        let mut r = good();
        r.replies = Some(Replies {
            accepted: 2,
            ..Replies::default()
        });
        assert!(!check(&r).passed());
    }

    #[test]
    fn replies_are_read_from_scan_json() {
        let doc: serde_json::Value = serde_json::from_str(
            r#"{"operationId":1,"state":"done","devices":[],"replies":{"accepted":5,"duplicate":1,"rejected":0,"redelivered":3}}"#,
        )
        .unwrap();
        assert_eq!(
            Replies::from_scan_json(&doc),
            Some(Replies {
                accepted: 5,
                duplicate: 1,
                rejected: 0,
                redelivered: 3
            })
        );
        assert_eq!(
            Replies::from_scan_json(&serde_json::json!({"devices": []})),
            None
        );
    }
}
