//! `GET /openapi.json`: the API described as OpenAPI 3.1, generated with
//! utoipa from the handlers' `#[utoipa::path]` declarations and the body
//! types they return ([`super::body`]).
//!
//! [`Guard`] adds what every route shares because of how
//! [`super::api::router`] layers them: every operation can be refused by
//! [`crate::guard`] (403, 421) and, if it needs the token (its
//! `security` names `bearerAuth`), answered 401. The test suite keeps the
//! document honest (`bins/burnin-edge/tests/openapi.rs`): it validates it
//! with openapi-spec-validator, lints it with Redocly's recommended rules,
//! runs schemathesis against a live `serve` from it, and drives a scan
//! through a Python client generated from it.

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};

use super::body::{
    Delivery, Device, DeviceSighting, DeviceState, Error, Finding, Health, Location, MacInfo,
    Operation, OperationState, ReplyCounts, Role, Run, ScanRequest, ScanStarted, ScanStatus,
    Target, Unavailable, Verdict,
};

/// The name of the bearer-token security scheme.
const BEARER: &str = "bearerAuth";

/// This document.
#[utoipa::path(get, path = "/openapi.json", operation_id = "getOpenApi", tag = "service",
    security(()),
    responses((status = 200, description = "this document (OpenAPI 3.1)", content_type = "application/json", body = Object)))]
pub(crate) async fn serve_document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], document())
}

/// The whole API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "burnin-edge",
        description = "The edge of a burn-in line: start scans, watch devices live, read results. With `serve --api-token`, every route but /healthz, /openapi.json and the page needs `Authorization: Bearer TOKEN` (the `bearerAuth` scheme). The read-only `serve --viewer-token` is taken for every GET and refused (403) for anything else.",
        license(name = "MIT OR Apache-2.0", identifier = "MIT OR Apache-2.0")
    ),
    servers((url = "/", description = "the edge that serves this document")),
    tags(
        (name = "scans", description = "Start scan operations and read them"),
        (name = "live", description = "Server-Sent Events and finding a serial"),
        (name = "service", description = "Health, metrics and this document"),
        (name = "page", description = "The live page and its assets"),
    ),
    paths(
        super::api::create_scan,
        super::api::list_scans,
        super::api::get_scan,
        super::events::operation_events,
        super::events::all_events,
        super::events::find_device,
        super::api::healthz,
        super::api::metrics,
        serve_document,
        super::page::index,
        super::page::script,
        super::page::style,
    ),
    components(schemas(
        ScanRequest,
        ScanStarted,
        Error,
        Unavailable,
        Health,
        Role,
        Operation,
        OperationState,
        Target,
        Run,
        Delivery,
        ReplyCounts,
        Device,
        DeviceState,
        Verdict,
        MacInfo,
        ScanStatus,
        Finding,
        Location,
        DeviceSighting,
    )),
    modifiers(&Guard)
)]
pub struct ApiDoc;

/// Adds the bearer scheme, and to every operation the answers of the
/// layers in front of the handlers (see the [module docs](self)).
pub struct Guard;

impl Modify for Guard {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                BEARER,
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some(
                            "the value of `serve --api-token` (needed only when it is set); \
                             for a GET also the read-only `serve --viewer-token` (it reads \
                             and streams; any other method with it is 403)",
                        ))
                        .build(),
                ),
            );
        let error = |description: &str| -> RefOr<Response> {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name(Error::name())))
                        .build(),
                )
                .into()
        };
        for item in doc.paths.paths.values_mut() {
            for (reads, op) in [
                (true, &mut item.get),
                (false, &mut item.post),
                (false, &mut item.put),
                (false, &mut item.delete),
            ]
            .into_iter()
            .filter_map(|(reads, op)| Some((reads, op.as_mut()?)))
            {
                let guarded = op
                    .security
                    .iter()
                    .flatten()
                    .any(|s| *s != SecurityRequirement::default());
                let responses = &mut op.responses.responses;
                if guarded {
                    responses.insert(
                        "401".into(),
                        error("missing or wrong API token (`WWW-Authenticate: Bearer`)"),
                    );
                } else {
                    // Open: an empty list, not `[{}]`, says no scheme applies.
                    op.security = Some(Vec::new());
                }
                responses.insert(
                    "403".into(),
                    error(if guarded && !reads {
                        "a request from a web page of another origin (`Origin` not the \
                         edge's own nor given with `--allow-origin`), or the read-only \
                         viewer token (`--viewer-token`), which may not start a scan"
                    } else {
                        "a request from a web page of another origin (`Origin` not the \
                         edge's own nor given with `--allow-origin`)"
                    }),
                );
                responses.insert(
                    "421".into(),
                    error(
                        "without an API token: a `Host` that does not name this edge (DNS \
                         rebinding)",
                    ),
                );
            }
        }
    }
}

/// The document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as JSON.
pub fn document() -> String {
    openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}
