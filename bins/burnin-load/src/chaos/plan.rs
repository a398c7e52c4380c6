//! The campaign's schedule of faults: drawn from the seed alone, before
//! anything runs, so the same seed replays the same schedule (the times
//! are offsets from each operation's `POST /scans`; what the system does
//! in between is not part of the draw).

use std::fmt;
use std::time::Duration;

/// The kinds of fault, as the summary counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Kind {
    NodeStop,
    KillActive,
    TermEdge,
    PgRestart,
    CloseAgents,
    Mes5xx,
    Mes429,
    MesStall,
    FactoryDown,
}

impl Kind {
    /// Every kind, in the summary's order.
    pub(crate) const ALL: [Kind; 9] = [
        Kind::NodeStop,
        Kind::KillActive,
        Kind::TermEdge,
        Kind::PgRestart,
        Kind::CloseAgents,
        Kind::Mes5xx,
        Kind::Mes429,
        Kind::MesStall,
        Kind::FactoryDown,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::NodeStop => "broker node stopped, started later",
            Kind::KillActive => "active edge SIGKILLed, restarted as standby",
            Kind::TermEdge => "edge SIGTERMed, restarted",
            Kind::PgRestart => "PostgreSQL restarted",
            Kind::CloseAgents => "10 % of agent connections closed",
            Kind::Mes5xx => "MES 5xx burst",
            Kind::Mes429 => "MES 429 + Retry-After burst",
            Kind::MesStall => "MES stalling 2 s, burst",
            Kind::FactoryDown => "factory endpoint down 5 s",
        }
    }
}

/// One fault, with what the draw decided about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fault {
    /// `scripts/cluster stop-node <node>`, `start-node` after `down_for`.
    NodeStop { node: usize, down_for: Duration },
    /// SIGKILL the active edge; once another is active, start it again.
    KillActive,
    /// SIGTERM the active edge (`active`) or the standby; start it again.
    TermEdge { active: bool },
    /// `pg_ctl restart -m fast` of the private server.
    PgRestart,
    /// Close 10 % of the agents' connections broker-side, by name; which
    /// ones is drawn from `pick`.
    CloseAgents { pick: u64 },
    /// Every MES lookup answers `status` for `burst`.
    Mes5xx { status: u16, burst: Duration },
    /// Every MES lookup answers 429 with `Retry-After: 1` for `burst`.
    Mes429 { burst: Duration },
    /// Every MES lookup waits 2 s before answering, for `burst`.
    MesStall { burst: Duration },
    /// `path` (`/log`, `/pair` or `/notify`) answers 503 for 5 s.
    FactoryDown { path: &'static str },
}

/// How long MES lookups stall in [`Fault::MesStall`].
pub(crate) const MES_STALL: Duration = Duration::from_secs(2);
/// How long a factory endpoint is down in [`Fault::FactoryDown`].
pub(crate) const FACTORY_DOWN: Duration = Duration::from_secs(5);
/// `Retry-After` of [`Fault::Mes429`], seconds.
pub(crate) const RETRY_AFTER: u32 = 1;

impl Fault {
    pub(crate) fn kind(&self) -> Kind {
        match self {
            Fault::NodeStop { .. } => Kind::NodeStop,
            Fault::KillActive => Kind::KillActive,
            Fault::TermEdge { .. } => Kind::TermEdge,
            Fault::PgRestart => Kind::PgRestart,
            Fault::CloseAgents { .. } => Kind::CloseAgents,
            Fault::Mes5xx { .. } => Kind::Mes5xx,
            Fault::Mes429 { .. } => Kind::Mes429,
            Fault::MesStall { .. } => Kind::MesStall,
            Fault::FactoryDown { .. } => Kind::FactoryDown,
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = |d: &Duration| d.as_secs_f64();
        match self {
            Fault::NodeStop { node, down_for } => {
                write!(f, "stop node mq{node}, start it {:.1} s later", s(down_for))
            }
            Fault::KillActive => write!(f, "SIGKILL the active edge"),
            Fault::TermEdge { active: true } => write!(f, "SIGTERM the active edge"),
            Fault::TermEdge { active: false } => write!(f, "SIGTERM the standby edge"),
            Fault::PgRestart => write!(f, "restart PostgreSQL"),
            Fault::CloseAgents { .. } => write!(f, "close 10 % of agent connections"),
            Fault::Mes5xx { status, burst } => {
                write!(f, "MES answers {status} for {:.1} s", s(burst))
            }
            Fault::Mes429 { burst } => write!(
                f,
                "MES answers 429 Retry-After: {RETRY_AFTER} for {:.1} s",
                s(burst)
            ),
            Fault::MesStall { burst } => write!(
                f,
                "MES stalls {:.0} s per lookup for {:.1} s",
                s(&MES_STALL),
                s(burst)
            ),
            Fault::FactoryDown { path } => {
                write!(f, "{path} answers 503 for {:.0} s", s(&FACTORY_DOWN))
            }
        }
    }
}

/// A fault and when it strikes, after the operation's `POST /scans`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Planned {
    pub(crate) at: Duration,
    pub(crate) fault: Fault,
}

/// The seven families the draw picks from (the list); the MES
/// family then picks one of its three forms. Drawn without replacement
/// within one operation, so an operation never has two node stops (two
/// of three nodes down would take the quorum away: not a fault the
/// cluster claims to survive) nor two kills.
const FAMILIES: usize = 7;

/// The schedule: for each of `ops` operations, 1–3 faults at times drawn
/// uniformly in `[0, span)`, sorted by time.
pub(crate) fn plan(seed: u64, ops: usize, span: Duration) -> Vec<Vec<Planned>> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let ms = |rng: &mut fastrand::Rng, lo: u64, hi: u64| Duration::from_millis(rng.u64(lo..hi));
    let span_ms = (span.as_millis() as u64).max(1);
    (0..ops)
        .map(|_| {
            let n = rng.usize(1..=3);
            let mut families: Vec<usize> = (0..FAMILIES).collect();
            rng.shuffle(&mut families);
            let mut faults: Vec<Planned> = families[..n]
                .iter()
                .map(|&family| {
                    let at = Duration::from_millis(rng.u64(0..span_ms));
                    let fault = match family {
                        0 => Fault::NodeStop {
                            node: rng.usize(1..=3),
                            down_for: ms(&mut rng, 2000, 6000),
                        },
                        1 => Fault::KillActive,
                        2 => Fault::TermEdge { active: rng.bool() },
                        3 => Fault::PgRestart,
                        4 => Fault::CloseAgents { pick: rng.u64(..) },
                        5 => {
                            let burst = ms(&mut rng, 1000, 3000);
                            match rng.u8(0..3) {
                                0 => Fault::Mes5xx {
                                    status: [500, 502, 503][rng.usize(0..3)],
                                    burst,
                                },
                                1 => Fault::Mes429 { burst },
                                _ => Fault::MesStall { burst },
                            }
                        }
                        _ => Fault::FactoryDown {
                            path: ["/log", "/pair", "/notify"][rng.usize(0..3)],
                        },
                    };
                    Planned { at, fault }
                })
                .collect();
            faults.sort_by_key(|p| p.at);
            faults
        })
        .collect()
}

/// Which `k` of `n` items `pick` names (distinct, sorted): the connections
/// [`Fault::CloseAgents`] closes.
pub(crate) fn choose(pick: u64, n: usize, k: usize) -> Vec<usize> {
    let mut rng = fastrand::Rng::with_seed(pick);
    let mut all: Vec<usize> = (0..n).collect();
    rng.shuffle(&mut all);
    let mut chosen = all[..k.min(n)].to_vec();
    chosen.sort_unstable();
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPAN: Duration = Duration::from_secs(6);

    #[test]
    fn the_same_seed_draws_the_same_schedule_and_another_seed_another() {
        assert_eq!(plan(42, 50, SPAN), plan(42, 50, SPAN));
        assert_ne!(plan(42, 50, SPAN), plan(43, 50, SPAN));
        // The first operations do not depend on how many follow.
        assert_eq!(plan(42, 50, SPAN)[..5], plan(42, 5, SPAN)[..]);
    }

    #[test]
    fn every_operation_gets_one_to_three_faults_inside_its_span_never_two_of_a_family() {
        let schedule = plan(7, 500, SPAN);
        let mut sizes = [0usize; 4];
        let mut kinds = std::collections::BTreeSet::new();
        for faults in &schedule {
            assert!((1..=3).contains(&faults.len()), "{faults:?}");
            sizes[faults.len()] += 1;
            assert!(faults.windows(2).all(|w| w[0].at <= w[1].at), "{faults:?}");
            assert!(faults.iter().all(|p| p.at < SPAN), "{faults:?}");
            let stops = faults
                .iter()
                .filter(|p| p.fault.kind() == Kind::NodeStop)
                .count();
            assert!(stops <= 1, "{faults:?}");
            let mes = faults
                .iter()
                .filter(|p| matches!(p.fault.kind(), Kind::Mes5xx | Kind::Mes429 | Kind::MesStall))
                .count();
            assert!(mes <= 1, "{faults:?}");
            kinds.extend(faults.iter().map(|p| p.fault.kind()));
        }
        assert!(sizes[1] > 0 && sizes[2] > 0 && sizes[3] > 0, "{sizes:?}");
        assert_eq!(kinds.len(), Kind::ALL.len(), "every kind is drawn");
    }

    #[test]
    fn ten_percent_of_the_connections_are_chosen_reproducibly() {
        let c = choose(99, 31, 3);
        assert_eq!(c.len(), 3);
        assert!(c.windows(2).all(|w| w[0] < w[1]) && c.iter().all(|&i| i < 31));
        assert_eq!(c, choose(99, 31, 3));
        assert_eq!(choose(1, 2, 5), vec![0, 1]);
    }
}
