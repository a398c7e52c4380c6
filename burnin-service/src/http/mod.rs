//! The HTTP layer: the API's routes ([`api`]), the live routes
//! ([`events`]), the JSON bodies they answer with ([`body`]), their one
//! error type ([`error`]), the OpenAPI document generated from both
//! ([`openapi`]) and the page (`page`). It reads the service
//! ([`crate::App`]) and the live board; nothing below it reads HTTP.
//!
//! The router's state is [`HttpState`]. A handler or layer takes the part
//! it uses (axum's `FromRef` sub-states): the token check takes
//! [`ApiToken`], the site check a `guard::Site`, an operation id in the
//! path and the device search the [`Store`], the live routes the live
//! board; what runs operations takes the [`App`].

pub mod api;
pub mod body;
pub mod error;
pub mod events;
pub mod openapi;
mod page;

use std::sync::Arc;

use axum::extract::FromRef;

use crate::{App, Store};

/// The router's state; see the [module docs](self).
#[derive(Clone)]
pub struct HttpState {
    app: Arc<App>,
    store: Store,
    token: ApiToken,
    site: Arc<crate::guard::Site>,
    live: Arc<crate::live::Live>,
}

impl HttpState {
    /// The state of `app`'s routes.
    pub fn new(app: Arc<App>) -> Self {
        HttpState {
            store: app.store().clone(),
            token: ApiToken {
                full: app.http.api_token.as_deref().map(Arc::from),
                viewer: app.http.viewer_token.as_deref().map(Arc::from),
            },
            site: app.site().clone(),
            live: app.live().clone(),
            app,
        }
    }
}

/// The bearer tokens the API asks for, if any: the operator's (`serve
/// --api-token`), which may do everything, and the read-only viewer's
/// (`serve --viewer-token`), which may read and stream but not start a scan.
#[derive(Clone)]
pub struct ApiToken {
    pub(crate) full: Option<Arc<str>>,
    pub(crate) viewer: Option<Arc<str>>,
}

impl FromRef<HttpState> for Arc<App> {
    fn from_ref(s: &HttpState) -> Self {
        s.app.clone()
    }
}

impl FromRef<HttpState> for Store {
    fn from_ref(s: &HttpState) -> Self {
        s.store.clone()
    }
}

impl FromRef<HttpState> for ApiToken {
    fn from_ref(s: &HttpState) -> Self {
        s.token.clone()
    }
}

impl FromRef<HttpState> for Arc<crate::guard::Site> {
    fn from_ref(s: &HttpState) -> Self {
        s.site.clone()
    }
}

impl FromRef<HttpState> for Arc<crate::live::Live> {
    fn from_ref(s: &HttpState) -> Self {
        s.live.clone()
    }
}
