//! Acknowledging the edge's replies in batches.
//!
//! The edge acknowledges a reply once it is recorded (SPEC §4), and the
//! store records replies in group commits: one commit settles tens to
//! hundreds of replies at the same moment. Sending one `basic.ack` each
//! costs the edge a round through lapin's I/O loop per reply and the
//! broker a frame per reply. Instead, the replies settled in one turn of
//! the runtime go out together:
//!
//! * the settled replies that, with those acknowledged before, make an
//!   unbroken run of delivery tags from the channel's first are
//!   acknowledged by **one** `basic.ack` with `multiple` set, on the
//!   highest of them;
//! * a settled reply above a gap (a delivery before it still being
//!   recorded, or held) is acknowledged **on its own** at once, as before:
//!   `multiple` would also acknowledge the unsettled one below it, and
//!   holding it back would keep the broker's prefetch window full.
//!
//! Nothing is acknowledged earlier than before, so what a failure costs is
//! unchanged: a reply not yet recorded is never covered by an ack, and one
//! recorded but not yet acknowledged when the edge dies is delivered again
//! and found in the store as a duplicate. [`AckBatch`] is the pure rule;
//! [`Acks`] runs it on a channel, sending each batch's frames in order
//! (a later batch's `multiple` must not overtake an earlier one's frame:
//! the broker closes a channel acknowledged twice for one tag).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use lapin::options::BasicAckOptions;
use tokio::sync::oneshot;

/// Which `basic.ack` frames settle a set of delivery tags on one channel,
/// given those acknowledged before.
#[derive(Debug, Default)]
pub(crate) struct AckBatch {
    /// Every tag up to this one is acknowledged (tags start at 1).
    upto: u64,
    /// Tags above `upto` acknowledged on their own.
    above: BTreeSet<u64>,
}

/// The frames for one batch.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    /// One `basic.ack` with `multiple` on this tag (or without, if it
    /// settles only itself), covering every settled tag up to it.
    pub(crate) run: Option<(u64, bool)>,
    /// Tags acknowledged one frame each.
    pub(crate) single: Vec<u64>,
}

impl AckBatch {
    /// The frames that settle `tags` (each settled once, none acknowledged
    /// before), and the state after them.
    pub(crate) fn plan(&mut self, tags: &[u64]) -> Plan {
        let mut tags = tags.to_vec();
        tags.sort_unstable();
        tags.dedup();
        let mut end = self.upto;
        let mut covered = 0;
        let mut highest = None;
        loop {
            let next = end + 1;
            if tags.get(covered) == Some(&next) {
                covered += 1;
                highest = Some(next);
            } else if !self.above.contains(&next) {
                break;
            }
            end = next;
        }
        self.upto = end;
        self.above = self.above.split_off(&(end + 1));
        let single = tags[covered..].to_vec();
        self.above.extend(single.iter().copied());
        Plan {
            run: highest.map(|tag| (tag, covered > 1)),
            single,
        }
    }
}

/// How one frame ended, for every reply it settled.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    Acked,
    /// The channel was gone (lapin refused the acker).
    Lost,
    /// No answer from the connection within the limit.
    TimedOut,
    Failed(lapin::Error),
}

struct Waiting {
    tag: u64,
    acker: lapin::Acker,
    done: oneshot::Sender<Outcome>,
}

#[derive(Default)]
struct State {
    batch: AckBatch,
    waiting: Vec<Waiting>,
    flushing: bool,
}

/// The batching acknowledger of one consumer channel.
pub(crate) struct Acks {
    state: Mutex<State>,
    /// Held while a batch's frames are planned and sent.
    sending: tokio::sync::Mutex<()>,
    limit: Duration,
    /// `basic.ack` frames sent, and the replies their broker took.
    frames: AtomicU64,
    replies: AtomicU64,
}

impl Acks {
    pub(crate) fn new(limit: Duration) -> Self {
        Acks {
            state: Mutex::new(State::default()),
            sending: tokio::sync::Mutex::new(()),
            limit,
            frames: 0.into(),
            replies: 0.into(),
        }
    }

    /// Acknowledges delivery `tag` with the others settled in this turn of
    /// the runtime; returns how its frame ended.
    pub(crate) async fn ack(self: &Arc<Self>, tag: u64, acker: lapin::Acker) -> Outcome {
        let (done, rx) = oneshot::channel();
        let start = {
            let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            s.waiting.push(Waiting { tag, acker, done });
            !std::mem::replace(&mut s.flushing, true)
        };
        if start {
            let this = self.clone();
            tokio::spawn(async move { this.flush().await });
        }
        match tokio::time::timeout(self.limit, rx).await {
            Ok(Ok(outcome)) => outcome,
            // The flush task ended without an answer: the runtime is
            // shutting down.
            Ok(Err(_)) => Outcome::Lost,
            Err(_) => Outcome::TimedOut,
        }
    }

    async fn flush(&self) {
        // Let the other replies settled by the same commit join the batch.
        tokio::task::yield_now().await;
        let _sending = self.sending.lock().await;
        let (plan, mut waiting) = {
            let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            s.flushing = false;
            let waiting = std::mem::take(&mut s.waiting);
            let tags: Vec<u64> = waiting.iter().map(|w| w.tag).collect();
            (s.batch.plan(&tags), waiting)
        };
        waiting.sort_unstable_by_key(|w| w.tag);
        if let Some((tag, multiple)) = plan.run {
            let split = waiting.partition_point(|w| w.tag <= tag);
            let rest = waiting.split_off(split);
            let outcome = self.send(&waiting[split - 1].acker, multiple).await;
            self.settled(&outcome, waiting.len());
            for w in waiting {
                let _ = w.done.send(outcome.clone());
            }
            waiting = rest;
        }
        for w in waiting {
            let outcome = self.send(&w.acker, false).await;
            self.settled(&outcome, 1);
            let _ = w.done.send(outcome);
        }
    }

    fn settled(&self, outcome: &Outcome, replies: usize) {
        self.frames.fetch_add(1, Ordering::Relaxed);
        if matches!(outcome, Outcome::Acked) {
            self.replies.fetch_add(replies as u64, Ordering::Relaxed);
        }
    }

    async fn send(&self, acker: &lapin::Acker, multiple: bool) -> Outcome {
        match tokio::time::timeout(self.limit, acker.ack(BasicAckOptions { multiple })).await {
            Err(_) => Outcome::TimedOut,
            Ok(Ok(true)) => Outcome::Acked,
            Ok(Ok(false)) => Outcome::Lost,
            Ok(Err(e)) => Outcome::Failed(e),
        }
    }

    /// Replies the broker took acks for, and the frames sent, so far.
    pub(crate) fn counts(&self) -> (u64, u64) {
        (
            self.replies.load(Ordering::Relaxed),
            self.frames.load(Ordering::Relaxed),
        )
    }
}

impl Drop for Acks {
    fn drop(&mut self) {
        let (replies, frames) = self.counts();
        if replies > 0 {
            tracing::debug!(
                replies,
                frames,
                "replies acknowledged on the consumer's channel"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{AckBatch, Plan};

    #[test]
    fn an_unbroken_run_is_one_multiple_ack_on_its_highest_tag() {
        let mut b = AckBatch::default();
        assert_eq!(
            b.plan(&[3, 1, 2]),
            Plan {
                run: Some((3, true)),
                single: vec![]
            }
        );
        assert_eq!(
            b.plan(&[4]),
            Plan {
                run: Some((4, false)),
                single: vec![]
            }
        );
    }

    #[test]
    fn a_tag_above_a_gap_is_acked_alone_and_later_runs_pass_over_it() {
        let mut b = AckBatch::default();
        // 2 is still being recorded: 1 goes in the run, 3 and 5 alone.
        assert_eq!(
            b.plan(&[1, 3, 5]),
            Plan {
                run: Some((1, false)),
                single: vec![3, 5]
            }
        );
        // 2 and 4 settle: the run reaches 5, but its frame is on 4, the
        // highest tag not yet acknowledged (3 and 5 were, alone).
        assert_eq!(
            b.plan(&[4, 2]),
            Plan {
                run: Some((4, true)),
                single: vec![]
            }
        );
        assert_eq!(
            b.plan(&[6, 7]),
            Plan {
                run: Some((7, true)),
                single: vec![]
            }
        );
    }

    #[test]
    fn a_tag_never_settled_stops_every_run_and_nothing_above_it_waits() {
        let mut b = AckBatch::default();
        // Delivery 1 was dropped (held by nobody): never settled.
        assert_eq!(
            b.plan(&[2, 3]),
            Plan {
                run: None,
                single: vec![2, 3]
            }
        );
        assert_eq!(
            b.plan(&[4]),
            Plan {
                run: None,
                single: vec![4]
            }
        );
    }
}
