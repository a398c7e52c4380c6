//! The HTTP layer: the API's routes ([`api`]), the live routes
//! ([`events`]), the JSON bodies they answer with ([`body`]), their one
//! error type ([`error`]), the OpenAPI document generated from both
//! ([`openapi`]) and the page (`page`). It reads the service
//! ([`crate::App`]) and the live board; nothing below it reads HTTP.

pub mod api;
pub mod body;
pub mod error;
pub mod events;
pub mod openapi;
mod page;
