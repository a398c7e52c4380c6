//! The agent use case: answer each scan command with this device's report.
//!
//! [`Agent::handle_command`] takes one raw command body and decides:
//! a malformed or oversize command, one whose `replyTo` is not this agent's
//! reply queue, a run of an operation already answered, or one whose window
//! had closed is skipped (with a [`CommandOutcome`] saying why, for the
//! log); otherwise the hardware is probed and the report sent through the
//! [`ReplySink`], which retries until the command's deadline.
//!
//! ## Runs
//!
//! An operation id may be run again (a rescan, SPEC §11.3): the command
//! then carries a higher `run`. The agent answers each (operation id, run)
//! once; a command without `run` (an older edge) is run 0.
//!
//! ## Whose clock
//!
//! Burn-in images often keep the hardware clock in local time, so a
//! device's clock may be hours off the edge's. The agent therefore does not
//! compare the command's `deadline` with its own clock when the command
//! says how much of the window was left (`remainingMs`, sent by every edge
//! of this release): it answers until *its own receipt time* plus that
//! remaining window, and hands that local deadline to the [`ReplySink`].
//! The broker's per-message expiration already drops commands that waited
//! too long in the agent's queue. Only a command of an older edge, without
//! `remainingMs`, is judged by `deadline` against this device's clock.
//!
//! Nothing in a command can make the agent do anything but read its own
//! hardware facts and reply to its own queue.
//!
//! [`serve`] loops over a [`CommandSource`] until it ends or the shutdown
//! future completes; a command in flight is finished before returning.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::future::Future;

use futures::FutureExt;

use crate::{
    Clock, CommandSource, DeviceReport, HardwareProbe, OperationId, OutgoingReply, ParseError,
    ProbeError, ReplySink, ScanCommand, Timestamp, TransportError,
};

/// How many operation ids an agent remembers to answer each once.
pub const REMEMBERED_OPERATIONS: usize = 1024;

/// What the agent did with a command.
#[derive(Debug)]
#[non_exhaustive]
pub enum CommandOutcome {
    /// The report was delivered.
    Replied(OperationId),
    /// The command was not valid (bad JSON, a bad field, too large).
    Malformed(ParseError),
    /// The command asked for replies on a queue that is not ours.
    ForeignReplyTo {
        /// The operation.
        operation_id: OperationId,
        /// The queue it named.
        reply_to: String,
    },
    /// This run of the operation was already answered.
    AlreadyAnswered(OperationId, u64),
    /// The command's window had closed when it arrived.
    Expired {
        /// The operation.
        operation_id: OperationId,
        /// Its deadline, by the edge's clock.
        deadline: Timestamp,
        /// Whether this was judged by this device's clock against
        /// `deadline` (a command of an older edge, without `remainingMs`).
        by_own_clock: bool,
    },
    /// The hardware could not be read.
    ProbeFailed(OperationId, ProbeError),
    /// The reply could not be delivered before the deadline.
    SendFailed(OperationId, TransportError),
}

impl CommandOutcome {
    /// Whether this outcome is an error an operator should see (as opposed
    /// to a reply or a deliberate skip).
    pub fn is_error(&self) -> bool {
        matches!(
            self,
            CommandOutcome::ProbeFailed(..) | CommandOutcome::SendFailed(..)
        )
    }
}

impl fmt::Display for CommandOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandOutcome::Replied(op) => write!(f, "replied to operation {op}"),
            CommandOutcome::Malformed(e) => write!(f, "skipped a malformed command: {e}"),
            CommandOutcome::ForeignReplyTo {
                operation_id,
                reply_to,
            } => write!(
                f,
                "skipped operation {operation_id}: it asks for replies on {reply_to:?}, \
                 not this agent's reply queue (set --reply-queue if that is intended)"
            ),
            CommandOutcome::AlreadyAnswered(op, 0) => {
                write!(f, "skipped operation {op}: already answered")
            }
            CommandOutcome::AlreadyAnswered(op, run) => {
                write!(f, "skipped operation {op} run {run}: already answered")
            }
            CommandOutcome::Expired {
                operation_id,
                deadline,
                by_own_clock: true,
            } => write!(
                f,
                "skipped operation {operation_id}: its deadline {deadline} has passed by this \
                 device's clock (the edge is older and sends no remaining window; check this \
                 device's clock if this repeats)"
            ),
            CommandOutcome::Expired { operation_id, .. } => write!(
                f,
                "skipped operation {operation_id}: no time was left of its window when it arrived"
            ),
            CommandOutcome::ProbeFailed(op, e) => {
                write!(f, "could not answer operation {op}: {e}")
            }
            CommandOutcome::SendFailed(op, e) => {
                write!(f, "could not deliver the reply to operation {op}: {e}")
            }
        }
    }
}

/// An operation id and its run.
type RunKey = (OperationId, u64);

/// Remembers the most recent (operation, run) pairs, so each is answered
/// once.
#[derive(Debug, Default)]
struct RecentIds {
    order: VecDeque<RunKey>,
    set: HashSet<RunKey>,
}

impl RecentIds {
    fn contains(&self, id: &RunKey) -> bool {
        self.set.contains(id)
    }
    fn insert(&mut self, id: RunKey) {
        if self.set.insert(id.clone()) {
            self.order.push_back(id);
            if self.order.len() > REMEMBERED_OPERATIONS
                && let Some(old) = self.order.pop_front()
            {
                self.set.remove(&old);
            }
        }
    }
}

/// An agent: answers scan commands with this device's report.
pub struct Agent<P, S, C> {
    probe: P,
    sink: S,
    clock: C,
    reply_queue: String,
    version: String,
    answered: RecentIds,
}

impl<P: HardwareProbe, S: ReplySink, C: Clock> Agent<P, S, C> {
    /// An agent replying only to `reply_queue`, reporting `version` as its
    /// `agentVersion`.
    pub fn new(
        probe: P,
        sink: S,
        clock: C,
        reply_queue: impl Into<String>,
        version: impl Into<String>,
    ) -> Self {
        Agent {
            probe,
            sink,
            clock,
            reply_queue: reply_queue.into(),
            version: version.into(),
            answered: RecentIds::default(),
        }
    }

    /// Handles one raw command body.
    pub async fn handle_command(&mut self, body: &[u8]) -> CommandOutcome {
        let command = match ScanCommand::from_slice(body) {
            Ok(c) => c,
            Err(e) => return CommandOutcome::Malformed(e),
        };
        let op = command.operation_id.clone();
        if command.reply_to != self.reply_queue {
            return CommandOutcome::ForeignReplyTo {
                operation_id: op,
                reply_to: command.reply_to,
            };
        }
        let key = (op.clone(), command.run.unwrap_or(0));
        if self.answered.contains(&key) {
            return CommandOutcome::AlreadyAnswered(op, key.1);
        }
        let received = self.clock.now();
        // See "Whose clock" in the module docs.
        let deadline = match command.remaining_ms {
            Some(ms) => received.saturating_add(std::time::Duration::from_millis(ms)),
            None => command.deadline,
        };
        if received >= deadline {
            return CommandOutcome::Expired {
                operation_id: op,
                deadline: command.deadline,
                by_own_clock: command.remaining_ms.is_none(),
            };
        }
        let hardware = match self.probe.probe().await {
            Ok(h) => h,
            Err(e) => return CommandOutcome::ProbeFailed(op, e),
        };
        let report =
            DeviceReport::new(Some(op.clone()), hardware, &*self.version, self.clock.now());
        let reply = OutgoingReply {
            reply_to: command.reply_to,
            operation_id: op.clone(),
            body: report.to_json(),
            deadline,
        };
        match self.sink.send(&reply).await {
            Ok(()) => {
                self.answered.insert(key);
                CommandOutcome::Replied(op)
            }
            Err(e) => CommandOutcome::SendFailed(op, e),
        }
    }
}

/// Serves commands from `source` until it ends or `shutdown` completes.
///
/// `on_outcome` sees every command's outcome (the binary logs them). A
/// command being answered when `shutdown` completes is finished first.
/// Returns the source's final error, if it ended with one.
pub async fn serve<P, S, C>(
    agent: &mut Agent<P, S, C>,
    source: &mut dyn CommandSource,
    shutdown: impl Future<Output = ()>,
    mut on_outcome: impl FnMut(&CommandOutcome),
    mut on_transport_error: impl FnMut(&TransportError),
) -> Result<(), TransportError>
where
    P: HardwareProbe,
    S: ReplySink,
    C: Clock,
{
    let shutdown = shutdown.fuse();
    futures::pin_mut!(shutdown);
    loop {
        let next = futures::select_biased! {
            () = shutdown => return Ok(()),
            next = source.next_command().fuse() => next,
        };
        match next {
            None => return Ok(()),
            Some(Err(e)) if e.is_retryable() => on_transport_error(&e),
            Some(Err(e)) => return Err(e),
            Some(Ok(body)) => {
                let outcome = agent.handle_command(&body).await;
                on_outcome(&outcome);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{ManualClock, MemoryBroker, StaticProbe};
    use crate::{Hardware, InterfaceReport, Mac, PciDevice, SerialNumber};
    use futures::executor::block_on;
    use std::time::Duration;

    fn hardware() -> Hardware {
        Hardware {
            sn: SerialNumber::new("SN1").unwrap(),
            hostname: "dut-1".into(),
            interfaces: vec![InterfaceReport {
                lldp: None,
                interface: "eth0".into(),
                macaddr: Mac::new([2, 0, 0, 0, 0, 1]),
                permaddr: None,
                addr_assign_type: None,
                link: None,
                pci: PciDevice {
                    pcie_link: None,
                    slot: "0000:01:00.0".into(),
                    vendor: "0x8086".into(),
                    device: "0x1533".into(),
                    class: "0x020000".into(),
                    driver: Some("igb".into()),
                },
            }],
            pci_devices: vec![],
        }
    }

    fn command(op: &str, reply_to: &str, deadline: Timestamp) -> Vec<u8> {
        ScanCommand {
            operation_id: OperationId::from_cli(op).unwrap(),
            operator_id: None,
            scan_mode: None,
            reply_to: reply_to.into(),
            deadline,
            run: None,
            remaining_ms: None,
        }
        .to_json()
    }

    fn agent(
        broker: &MemoryBroker,
        clock: &ManualClock,
    ) -> Agent<StaticProbe, crate::memory::MemoryReplySink, ManualClock> {
        let (_source, sink) = broker.agent();
        Agent::new(
            StaticProbe::new(hardware()),
            sink,
            clock.clone(),
            "hwinfo_queue",
            "9.9",
        )
    }

    fn with_run(body: Vec<u8>, run: Option<u64>, remaining_ms: Option<u64>) -> Vec<u8> {
        let mut c = ScanCommand::from_slice(&body).unwrap();
        c.run = run;
        c.remaining_ms = remaining_ms;
        c.to_json()
    }

    #[test]
    fn each_run_is_answered_once() {
        block_on(async {
            let broker = MemoryBroker::new();
            let (_publisher, mut replies) = broker.edge("hwinfo_queue");
            let clock = ManualClock::new(Timestamp::from_unix_seconds(1000));
            let mut agent = agent(&broker, &clock);
            let later = Timestamp::from_unix_seconds(1030);
            let base = command("7001", "hwinfo_queue", later);
            for (run, answered) in [
                (Some(1), true),
                (Some(1), false),
                (Some(2), true),
                (Some(2), false),
                // An older edge's command (no run) is run 0.
                (None, true),
                (None, false),
            ] {
                let out = agent
                    .handle_command(&with_run(base.clone(), run, Some(30_000)))
                    .await;
                assert_eq!(
                    matches!(out, CommandOutcome::Replied(_)),
                    answered,
                    "run {run:?}: {out}"
                );
                if !answered {
                    assert!(out.to_string().contains("already answered"), "{out}");
                }
                assert_eq!(replies.try_next_now().is_some(), answered);
            }
        });
    }

    #[test]
    fn a_clock_hours_off_still_answers_within_the_remaining_window() {
        block_on(async {
            let broker = MemoryBroker::new();
            let (_publisher, mut replies) = broker.edge("hwinfo_queue");
            // The edge's deadline is 1030; this device's clock is 8 h ahead.
            let clock = ManualClock::new(Timestamp::from_unix_seconds(1000 + 8 * 3600));
            let mut agent = agent(&broker, &clock);
            let deadline = Timestamp::from_unix_seconds(1030);
            let base = command("601", "hwinfo_queue", deadline);
            let out = agent
                .handle_command(&with_run(base.clone(), Some(1), Some(30_000)))
                .await;
            assert!(matches!(out, CommandOutcome::Replied(_)), "{out}");
            assert!(replies.try_next_now().is_some());
            // An older edge's command (no remainingMs) is still judged by
            // this device's clock, and says so.
            let out = agent
                .handle_command(&with_run(base.clone(), Some(2), None))
                .await;
            assert!(
                matches!(
                    out,
                    CommandOutcome::Expired {
                        by_own_clock: true,
                        ..
                    }
                ),
                "{out}"
            );
            assert!(
                out.to_string().contains("check this device's clock"),
                "{out}"
            );
            // No time left at all: skipped whatever the clock.
            let out = agent
                .handle_command(&with_run(base, Some(3), Some(0)))
                .await;
            assert!(
                matches!(
                    out,
                    CommandOutcome::Expired {
                        by_own_clock: false,
                        ..
                    }
                ),
                "{out}"
            );
            assert!(replies.try_next_now().is_none());
        });
    }

    #[test]
    fn answers_once_and_only_to_its_queue() {
        block_on(async {
            let broker = MemoryBroker::new();
            let (_publisher, mut replies) = broker.edge("hwinfo_queue");
            let (_source, sink) = broker.agent();
            let clock = ManualClock::new(Timestamp::from_unix_seconds(1000));
            let mut agent = Agent::new(
                StaticProbe::new(hardware()),
                sink,
                clock.clone(),
                "hwinfo_queue",
                "9.9",
            );
            let later = Timestamp::from_unix_seconds(1030);

            let out = agent
                .handle_command(&command("7", "hwinfo_queue", later))
                .await;
            assert!(
                matches!(out, CommandOutcome::Replied(OperationId::Number(7))),
                "{out}"
            );
            let d = replies.try_next_now().unwrap();
            let r = DeviceReport::from_slice(&d.body).unwrap();
            assert_eq!(r.operation_id, Some(OperationId::Number(7)));
            assert_eq!(r.agent_version, "9.9");
            assert_eq!(r.collected_at, Timestamp::from_unix_seconds(1000));

            let out = agent
                .handle_command(&command("7", "hwinfo_queue", later))
                .await;
            assert!(matches!(out, CommandOutcome::AlreadyAnswered(..)), "{out}");
            let out = agent
                .handle_command(&command("8", "other_queue", later))
                .await;
            assert!(
                matches!(out, CommandOutcome::ForeignReplyTo { .. }),
                "{out}"
            );
            assert!(out.to_string().contains("\"other_queue\""));
            let out = agent.handle_command(b"{\"operationId\": 9}").await;
            assert!(matches!(out, CommandOutcome::Malformed(_)), "{out}");
            let out = agent
                .handle_command(&vec![b' '; crate::MAX_COMMAND_BYTES + 1])
                .await;
            assert!(matches!(
                out,
                CommandOutcome::Malformed(ParseError::TooLarge { .. })
            ));
            clock.advance(Duration::from_secs(60));
            let out = agent
                .handle_command(&command("10", "hwinfo_queue", later))
                .await;
            assert!(matches!(out, CommandOutcome::Expired { .. }), "{out}");
            assert!(replies.try_next_now().is_none(), "nothing else was sent");
        });
    }

    #[test]
    fn remembers_a_bounded_number_of_ids() {
        let mut r = RecentIds::default();
        for i in 0..(REMEMBERED_OPERATIONS as u64 + 10) {
            r.insert((OperationId::Number(i), 1));
        }
        assert!(!r.contains(&(OperationId::Number(0), 1)));
        assert!(r.contains(&(OperationId::Number(REMEMBERED_OPERATIONS as u64 + 9), 1)));
        assert_eq!(r.set.len(), REMEMBERED_OPERATIONS);
    }
}
