//! The single table of admin endpoints. The router (`api`) and the OpenAPI
//! document (`openapi`) are both built from it, so the two cannot disagree
//! about which paths and methods exist.

use axum::routing::MethodFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    Put,
    Patch,
    Post,
    Delete,
}

impl Verb {
    pub fn filter(self) -> MethodFilter {
        match self {
            Verb::Get => MethodFilter::GET,
            Verb::Put => MethodFilter::PUT,
            Verb::Patch => MethodFilter::PATCH,
            Verb::Post => MethodFilter::POST,
            Verb::Delete => MethodFilter::DELETE,
        }
    }

    /// The OpenAPI operation key.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::Put => "put",
            Verb::Patch => "patch",
            Verb::Post => "post",
            Verb::Delete => "delete",
        }
    }
}

/// What an endpoint does; `api` maps each to its handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    ListRoutes,
    GetRoute,
    PutRoute,
    DeleteRoute,
    GetJwt,
    PutJwt,
    PatchJwt,
    DeleteJwt,
    ListConsumers,
    GetConsumer,
    PutConsumer,
    DeleteConsumer,
    ListProviders,
    GetProvider,
    PutProvider,
    DeleteProvider,
    Revoke,
    CutOffSubject,
    ListSubjects,
    LiftSubject,
    Explain,
    OpenApi,
    Status,
    Metrics,
}

pub struct Endpoint {
    pub verb: Verb,
    /// axum 0.8 and OpenAPI share the `{param}` syntax.
    pub path: &'static str,
    pub op: Op,
    pub summary: &'static str,
}

impl Endpoint {
    /// Everything under `/admin/` needs `X-API-KEY` (SPEC §4).
    pub fn keyed(&self) -> bool {
        self.path.starts_with("/admin/")
    }
}

const fn ep(verb: Verb, path: &'static str, op: Op, summary: &'static str) -> Endpoint {
    Endpoint {
        verb,
        path,
        op,
        summary,
    }
}

pub const ROUTES: &str = "/admin/v1/routes";
pub const ROUTE: &str = "/admin/v1/routes/{name}";
pub const ROUTE_JWT: &str = "/admin/v1/routes/{name}/jwt";
pub const CONSUMERS: &str = "/admin/v1/consumers";
pub const CONSUMER: &str = "/admin/v1/consumers/{username}";
pub const PROVIDERS: &str = "/admin/v1/providers";
pub const SUBJECTS: &str = "/admin/v1/revocations/subjects";
pub const PROVIDER: &str = "/admin/v1/providers/{name}";

pub const ENDPOINTS: &[Endpoint] = &[
    ep(
        Verb::Get,
        ROUTES,
        Op::ListRoutes,
        "List routes, with their jwt policies",
    ),
    ep(Verb::Get, ROUTE, Op::GetRoute, "Get one route"),
    ep(Verb::Put, ROUTE, Op::PutRoute, "Create or replace a route"),
    ep(Verb::Delete, ROUTE, Op::DeleteRoute, "Delete a route"),
    ep(Verb::Get, ROUTE_JWT, Op::GetJwt, "Get a route's jwt policy"),
    ep(
        Verb::Put,
        ROUTE_JWT,
        Op::PutJwt,
        "Set (create or replace) a route's jwt policy",
    ),
    ep(
        Verb::Patch,
        ROUTE_JWT,
        Op::PatchJwt,
        "Change some fields of a route's jwt policy (JSON merge patch)",
    ),
    ep(
        Verb::Delete,
        ROUTE_JWT,
        Op::DeleteJwt,
        "Remove a route's jwt policy",
    ),
    ep(
        Verb::Get,
        CONSUMERS,
        Op::ListConsumers,
        "List consumers (secrets masked)",
    ),
    ep(
        Verb::Get,
        CONSUMER,
        Op::GetConsumer,
        "Get one consumer (secret masked)",
    ),
    ep(
        Verb::Put,
        CONSUMER,
        Op::PutConsumer,
        "Create or replace a consumer",
    ),
    ep(
        Verb::Delete,
        CONSUMER,
        Op::DeleteConsumer,
        "Delete a consumer",
    ),
    ep(
        Verb::Get,
        PROVIDERS,
        Op::ListProviders,
        "List identity providers",
    ),
    ep(
        Verb::Get,
        PROVIDER,
        Op::GetProvider,
        "Get one identity provider",
    ),
    ep(
        Verb::Put,
        PROVIDER,
        Op::PutProvider,
        "Create or replace an identity provider",
    ),
    ep(
        Verb::Delete,
        PROVIDER,
        Op::DeleteProvider,
        "Delete an identity provider (refused while a route lists it)",
    ),
    ep(
        Verb::Post,
        "/admin/v1/revocations",
        Op::Revoke,
        "Blacklist a token until it expires",
    ),
    ep(
        Verb::Post,
        SUBJECTS,
        Op::CutOffSubject,
        "Log a subject out everywhere: refuse its tokens issued until now",
    ),
    ep(
        Verb::Get,
        SUBJECTS,
        Op::ListSubjects,
        "List subject cut-offs",
    ),
    ep(
        Verb::Delete,
        SUBJECTS,
        Op::LiftSubject,
        "Delete a subject cut-off (same body as POST)",
    ),
    ep(
        Verb::Post,
        "/admin/v1/explain",
        Op::Explain,
        "What the gateway would do with a token on a request, step by step (token explain)",
    ),
    ep(
        Verb::Get,
        "/admin/v1/openapi.json",
        Op::OpenApi,
        "This document",
    ),
    ep(
        Verb::Get,
        "/status",
        Op::Status,
        "Readiness: 200 when serving (no key needed)",
    ),
    ep(
        Verb::Get,
        "/metrics",
        Op::Metrics,
        "Prometheus metrics (no key needed)",
    ),
];
