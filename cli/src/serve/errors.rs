//! Terse error replies: every failure of `atomik serve` answers
//! `{"error":"<code>","message":"<one short sentence>"}` with a stable code,
//! and logs one line with the full detail (and the principal) to stderr.
//! The detail never reaches the client.

use std::fmt;
use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// The stable error codes of `atomik serve`'s replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// 401: no bearer token, or one that is malformed, wrongly signed,
    /// expired, lacks a valid `atomik_site` claim, has an `atomik_write` or
    /// `atomik_read` pattern that is not one, or is a relay's with a scope.
    Unauthenticated,
    /// 403: the request's site is not the token's `atomik_site`.
    ForbiddenSite,
    /// 403: an upload of another origin than the token's site, from a
    /// principal that is not a relay.
    ForgedOrigin,
    /// 403: a relay request (per-origin entries) from a principal that is
    /// not a relay.
    NotARelay,
    /// 403: an upload writes a column outside the token's `atomik_write`
    /// scope.
    ForbiddenColumn,
    /// 403: the hub's database refused the principal's rights (its role
    /// lacks a privilege, or a row-level security policy said no).
    Forbidden,
    /// 400: an empty or unreadable request.
    BadRequest,
    /// 404: no such endpoint.
    NotFound,
    /// 408: the request took longer than `--request-timeout`.
    Timeout,
    /// 413: a body over `--max-body`.
    TooLarge,
    /// 422: the hub refused the message (decode, group or tracking
    /// errors); it applied nothing of it.
    Refused,
    /// 429: the principal is over `--rate-per-sec`.
    RateLimited,
    /// 503: more requests in flight than `--concurrency`.
    Overloaded,
    /// 503: the hub's database cannot be reached.
    Unavailable,
    /// 500: a bug.
    Internal,
}

impl Code {
    /// The code as it appears in the reply's `error` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Unauthenticated => "unauthenticated",
            Code::ForbiddenSite => "forbidden_site",
            Code::ForgedOrigin => "forged_origin",
            Code::NotARelay => "not_a_relay",
            Code::ForbiddenColumn => "forbidden_column",
            Code::Forbidden => "forbidden",
            Code::BadRequest => "bad_request",
            Code::NotFound => "not_found",
            Code::Timeout => "timeout",
            Code::TooLarge => "too_large",
            Code::Refused => "refused",
            Code::RateLimited => "rate_limited",
            Code::Overloaded => "overloaded",
            Code::Unavailable => "unavailable",
            Code::Internal => "internal",
        }
    }

    /// The HTTP status of the reply.
    pub fn status(self) -> StatusCode {
        match self {
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::ForbiddenSite
            | Code::ForgedOrigin
            | Code::NotARelay
            | Code::ForbiddenColumn
            | Code::Forbidden => StatusCode::FORBIDDEN,
            Code::BadRequest => StatusCode::BAD_REQUEST,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::Timeout => StatusCode::REQUEST_TIMEOUT,
            Code::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Code::Refused => StatusCode::UNPROCESSABLE_ENTITY,
            Code::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Code::Overloaded | Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One failed request: what the client is told and what the log keeps.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The stable code.
    pub code: Code,
    /// One short sentence for the client: nothing internal.
    pub message: String,
    /// The full detail, for the server's log only.
    pub detail: String,
    /// For 429 and 503: when to try again.
    pub retry_after: Option<Duration>,
}

/// The longest message a client is shown (a hub's refusal is cut there).
const MAX_MESSAGE_CHARS: usize = 200;

impl Failure {
    /// A failure whose log detail is its message.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        let message = message.into();
        Failure {
            code,
            detail: message.clone(),
            message,
            retry_after: None,
        }
    }

    /// The same failure with a fuller detail for the log.
    #[must_use]
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }

    /// The same failure with a Retry-After.
    #[must_use]
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// The hub refused the message: the client sees the hub's reason (the
    /// SQLite function's error message, else the innermost cause), first
    /// line only, cut to 200 characters (no error chain, no query text);
    /// the log keeps the whole chain.
    pub fn refused(error: &anyhow::Error) -> Self {
        let reason = error
            .chain()
            .find_map(|e| match e.downcast_ref::<rusqlite::Error>() {
                Some(rusqlite::Error::SqliteFailure(_, Some(m))) => Some(m.clone()),
                _ => None,
            })
            .unwrap_or_else(|| error.root_cause().to_string());
        let reason = reason.strip_prefix("atomik_sync: ").unwrap_or(&reason);
        Failure::new(Code::Refused, safe_message(reason)).detail(format!("{error:#}"))
    }

    /// Log this failure (one line) and turn it into the reply.
    pub fn reply(self, who: &str) -> Response {
        log!(
            "atomik serve: {} {} {who}: {}",
            self.code.status().as_u16(),
            self.code,
            one_line(&self.detail)
        );
        self.into_response()
    }
}

/// The first line of `text`, cut to [`MAX_MESSAGE_CHARS`] characters.
pub fn safe_message(text: &str) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    if line.chars().count() <= MAX_MESSAGE_CHARS {
        line.to_string()
    } else {
        let cut: String = line.chars().take(MAX_MESSAGE_CHARS).collect();
        format!("{cut}…")
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": self.code.as_str(),
            "message": self.message,
        });
        let mut response = (self.code.status(), axum::Json(body)).into_response();
        if let Some(after) = self.retry_after {
            // Whole seconds, rounded up, at least 1.
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_short_line() {
        assert_eq!(safe_message("a\nb"), "a");
        let long = "x".repeat(500);
        assert_eq!(safe_message(&long).chars().count(), MAX_MESSAGE_CHARS + 1);
    }

    #[test]
    fn retry_after_rounds_up() {
        let r = Failure::new(Code::RateLimited, "slow down")
            .retry_after(Duration::from_millis(1200))
            .into_response();
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
    }
}
