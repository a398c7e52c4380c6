//! The subcommands: flags, adapters and output. Everything long-running
//! lives in the `burnin-service` crate.

pub(crate) mod broker_args;
pub(crate) mod check;
pub(crate) mod demo;
pub(crate) mod factory;
pub(crate) mod output;
pub(crate) mod remote;
pub(crate) mod rule_args;
pub(crate) mod scan;
pub(crate) mod serve;
