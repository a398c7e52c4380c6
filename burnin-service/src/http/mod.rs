//! The HTTP layer: the API's routes and their JSON ([`api`]), the live
//! routes ([`events`]), the OpenAPI document ([`openapi`]) and the page
//! (`page`). It reads the service ([`crate::App`]) and the live board; nothing
//! below it reads HTTP.

pub mod api;
pub mod events;
pub mod openapi;
mod page;
