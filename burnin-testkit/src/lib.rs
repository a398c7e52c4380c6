//! # burnin-testkit
//!
//! The scaffolding every crate's tests (and the load harness) share, kept
//! out of the production crates. Everything is real: a RabbitMQ vhost of
//! its own ([`vhost::TestVhost`]) or on the 3-node test cluster
//! ([`cluster::ClusterVhost`]), PostgreSQL databases and servers
//! ([`pg`]), sysfs-like fixture trees ([`fixture::Fixture`]), an HTTP
//! server on 127.0.0.1 that
//! stands in for MES and the factory APIs ([`FactoryStandIn`]), and real
//! `burnin-agent run` processes on fixture sysfs trees ([`AgentFleet`]).
//!
//! ```no_run
//! use burnin_testkit::{AgentFleet, Device, FactoryStandIn};
//! let Some(vhost) = burnin_testkit::vhost::TestVhost::new("example") else { return };
//! let factory = FactoryStandIn::start();
//! let dev = Device::new("SN1", &["02:00:00:00:00:01"]);
//! factory.set_mes("SN1", &["02:00:00:00:00:01"]);
//! let fleet = AgentFleet::start(&vhost, &[dev], &[]);
//! // … run `burnin-edge scan` with factory.url("/mes/{sn}") etc., then
//! let requests = factory.requests();
//! ```
#![allow(clippy::print_stderr)]

mod agents;
pub mod cluster;
mod factory;
pub mod fixture;
mod node;
pub mod pg;
pub mod vhost;

pub use agents::{AgentFleet, Device, binary, wait_for_agents};
pub use factory::{FactoryStandIn, Recorded};
pub use node::{NodeTls, PrivateNode};
