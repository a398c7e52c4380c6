//! Where a device is, and how it is cabled (SPEC §11.1): the edge's
//! cabling plan, a device's [`Location`], and the cabling findings.
//!
//! This module only decides; it reads no file. The edge reads the plan's
//! text and hands it to [`CablingPlan::parse`].

use serde::{Deserialize, Serialize};

/// Where a device is: `{"place": "B3 shelf 12 left", "switch": "leaf-07",
/// "port": "swp7", "planned": false}`.
///
/// `planned: false` when one of the device's LLDP neighbours matched a plan
/// row (the device *is* there); `planned: true` when no neighbour matched
/// and a plan row naming the device's serial gave the place it *should* be
/// in. A neighbour's self-reported system name is never a location by
/// itself: without the plan there is no location.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Location {
    /// What operators call the place (the plan's `location` column).
    pub place: String,
    /// The switch, as the plan names it.
    pub switch: String,
    /// The switch port, as the plan names it.
    pub port: String,
    /// Whether the place comes only from a plan row naming the serial (no
    /// LLDP neighbour matched).
    pub planned: bool,
}
