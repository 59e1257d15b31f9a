//! Who is calling the API and what they may do, as Kuma decides it.
//!
//! Authentication ([`authenticate`], every request): a direct request from
//! loopback is the admin user (unless `apiServer.authn.localhostIsAdmin` is
//! off); otherwise a `Bearer` user token names the user; without one the
//! caller is anonymous. A token that does not validate is refused with 401.
//!
//! Authorization ([`authorize`], matched routes): Kuma's static access
//! defaults. Secrets and GlobalSecrets, and issuing dataplane and user
//! tokens, are for `mesh-system:admin` only. Kuma lets anonymous callers
//! write other resources; here they may only read, so that nothing changes
//! without a credential.

use std::net::SocketAddr;

use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{ConnectInfo, MatchedPath, RawPathParams, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use kuma_api::Kind;

use super::{ApiState, Problem};
use crate::tokens::TokenError;

pub mod user_token;

pub use user_token::UserTokens;

pub const ADMIN_USER: &str = "mesh-system:admin";
pub const ADMIN_GROUP: &str = "mesh-system:admin";
pub const ANONYMOUS_USER: &str = "mesh-system:anonymous";
pub const AUTHENTICATED_GROUP: &str = "mesh-system:authenticated";
pub const UNAUTHENTICATED_GROUP: &str = "mesh-system:unauthenticated";

/// The caller of one request, kept in its extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
}

impl User {
    /// Kuma's admin user (what localhost and the admin token are).
    pub fn admin() -> User {
        User {
            name: ADMIN_USER.into(),
            groups: vec![ADMIN_GROUP.into()],
        }
    }

    pub fn anonymous() -> User {
        User {
            name: ANONYMOUS_USER.into(),
            groups: vec![UNAUTHENTICATED_GROUP.into()],
        }
    }

    /// The user as authenticated callers are seen: with Kuma's implicit
    /// group added.
    pub fn authenticated(mut self) -> User {
        self.groups.push(AUTHENTICATED_GROUP.into());
        self
    }

    /// Allowed by Kuma's default static access for admin operations.
    pub fn is_admin(&self) -> bool {
        self.name == ADMIN_USER || self.groups.iter().any(|g| g == ADMIN_GROUP)
    }

    pub fn is_anonymous(&self) -> bool {
        self.name == ANONYMOUS_USER
    }
}

impl std::fmt::Display for User {
    /// Kuma's `name/group1,group2`, used in access denied messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.name, self.groups.join(","))
    }
}

/// 403 with Kuma's wording.
pub fn access_denied(reason: impl Into<String>) -> Problem {
    Problem::new(StatusCode::FORBIDDEN, "Access Denied", reason)
}

/// 403 for `user` on `action`, in Kuma's `user "..." cannot access ...` form.
pub fn cannot_access(user: &User, action: &str) -> Problem {
    access_denied(format!(
        "user {:?} cannot access {action}",
        user.to_string()
    ))
}

/// Middleware: finds the caller and stores it as a [`User`] extension.
pub async fn authenticate(State(state): State<ApiState>, mut req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let local_admin = state.config.api_server.authn.localhost_is_admin
        && is_direct_loopback(
            peer,
            req.headers(),
            req.uri().authority().map(|a| a.as_str()),
        );
    let user = if local_admin {
        User::admin().authenticated()
    } else {
        match bearer_token(req.headers()) {
            None => User::anonymous(),
            Some(token) => match state.user_tokens.validate(token).await {
                Ok(user) => user.authenticated(),
                Err(TokenError::Invalid(reason)) => {
                    tracing::info!(%reason, "authentication rejected");
                    return unauthenticated().into_response();
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not check a user token");
                    return Problem::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "Invalid authentication data",
                        "Internal Server Error",
                    )
                    .into_response();
                }
            },
        }
    };
    req.extensions_mut().insert(user);
    next.run(req).await
}

/// Kuma's answer to a token that does not validate.
fn unauthenticated() -> Problem {
    Problem::new(
        StatusCode::UNAUTHORIZED,
        "Invalid authentication data",
        "Unauthenticated",
    )
}

fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// A request made on this machine straight to the API, as Kuma judges it:
/// from a loopback address, through no proxy, naming a loopback host, and
/// not sent by a browser on behalf of another site (a page elsewhere must
/// not borrow the local admin's rights). HTTP/2 names the host in the URI's
/// authority instead of a `Host` header.
pub fn is_direct_loopback(
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
    uri_authority: Option<&str>,
) -> bool {
    if !peer.is_some_and(|p| p.ip().is_loopback() || is_mapped_loopback(p)) {
        return false;
    }
    let has = |name: &str| headers.contains_key(name);
    if has("forwarded") || has("x-forwarded-for") || has("x-real-ip") {
        return false;
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or(uri_authority);
    let Some(host) = host else {
        // HTTP/1.0 without a Host header: nothing names another host.
        return true;
    };
    if !is_loopback_host(host_of(host)) {
        return false;
    }
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        None | Some("same-origin" | "none") => {}
        Some(_) => return false,
    }
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(origin) => url::Url::parse(origin).is_ok_and(|u| {
            u.host_str().is_some_and(is_loopback_host)
                && u.port_or_known_default()
                    == url::Url::parse(&format!("{}://{host}", u.scheme()))
                        .ok()
                        .and_then(|h| h.port_or_known_default())
        }),
    }
}

fn is_mapped_loopback(peer: SocketAddr) -> bool {
    match peer.ip() {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        std::net::IpAddr::V4(_) => false,
    }
}

/// `host` of `host[:port]` or `[v6][:port]`.
fn host_of(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    authority.split(':').next().unwrap_or_default()
}

fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_end_matches('.');
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Middleware on matched routes: Kuma's static access rules.
pub async fn authorize(
    matched: Option<MatchedPath>,
    params: Result<RawPathParams, RawPathParamsRejection>,
    req: Request,
    next: Next,
) -> Response {
    let fallback = User::anonymous();
    let user = req.extensions().get::<User>().unwrap_or(&fallback);
    let route = matched
        .as_ref()
        .map(MatchedPath::as_str)
        .unwrap_or_default();
    // A parameter that does not decode fails the handler's own extractor.
    let plural = params
        .as_ref()
        .ok()
        .and_then(|p| p.iter().find(|(name, _)| *name == "plural").map(|(_, v)| v));
    if let Err(problem) = check(user, req.method(), route, plural) {
        return problem.into_response();
    }
    next.run(req).await
}

/// The decision itself, apart from axum so it is tested directly.
pub fn check(
    user: &User,
    method: &Method,
    route: &str,
    plural: Option<&str>,
) -> Result<(), Problem> {
    if let Some(kind) = plural.and_then(Kind::from_plural)
        && matches!(kind, Kind::Secret | Kind::GlobalSecret)
        && !user.is_admin()
    {
        return Err(cannot_access(
            user,
            &format!("the resource of type {:?}", kind.name()),
        ));
    }
    match route {
        "/tokens/dataplane" if !user.is_admin() => {
            return Err(cannot_access(user, "generate dataplane token"));
        }
        "/tokens/user" if !user.is_admin() => return Err(access_denied("action not allowed")),
        _ => {}
    }
    if user.is_anonymous() && !matches!(*method, Method::GET | Method::HEAD) {
        return Err(cannot_access(
            user,
            "this operation: it changes state and needs a user token",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
