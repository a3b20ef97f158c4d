//! Turning `atomik-core` errors into PostgreSQL errors with a SQLSTATE.
//!
//! Every error leaves through [`raise`], which reports `ERROR`: PostgreSQL
//! then aborts the statement (and the caller's transaction, or the
//! subtransaction it runs in), so nothing of a failed call is applied.

use atomik_core::{DecodeError, ProtocolError, ValueError};
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::PgLogLevel;
use pgrx::PgSqlErrorCode;

/// Report `message` as an `ERROR` with `code`. Never returns.
pub fn raise(code: PgSqlErrorCode, message: String) -> ! {
    ErrorReport::new(code, message, "pg_atomik").report(PgLogLevel::ERROR);
    unreachable!("an ERROR report does not return")
}

/// Report `message` as an `ERROR` with `code` and a hint. Never returns.
pub fn raise_with_hint(code: PgSqlErrorCode, message: String, hint: &str) -> ! {
    ErrorReport::new(code, message, "pg_atomik")
        .set_hint(hint)
        .report(PgLogLevel::ERROR);
    unreachable!("an ERROR report does not return")
}

/// The SQLSTATE of a value error.
pub fn value_code(e: &ValueError) -> PgSqlErrorCode {
    match e {
        ValueError::WrongLength(_)
        | ValueError::UnsupportedVersion { .. }
        | ValueError::UnknownGroup { .. } => PgSqlErrorCode::ERRCODE_INVALID_BINARY_REPRESENTATION,
        ValueError::UnknownGroupName(_) => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        ValueError::GroupMismatch { .. } => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        ValueError::BadText { .. } => PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
    }
}

/// Raise a value error.
pub fn value_error(e: ValueError) -> ! {
    raise(value_code(&e), e.to_string())
}

/// The SQLSTATE of a protocol error.
pub fn protocol_code(e: &ProtocolError) -> PgSqlErrorCode {
    match e {
        ProtocolError::Decode(DecodeError::WrongKind { .. }) => {
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE
        }
        ProtocolError::Decode(_) => PgSqlErrorCode::ERRCODE_DATA_EXCEPTION,
        ProtocolError::Value(v) => value_code(v),
        ProtocolError::Gap { .. } => PgSqlErrorCode::ERRCODE_DATA_EXCEPTION,
        ProtocolError::Untracked { .. } => PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
        ProtocolError::GroupMismatch { .. } | ProtocolError::ColumnGroup { .. } => {
            PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH
        }
        ProtocolError::KeyShape { .. } => PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
        ProtocolError::NotAddressedHere { .. }
        | ProtocolError::AckBeyondSent { .. }
        | ProtocolError::OwnRequest(_)
        | ProtocolError::RelayUpstream { .. } => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        ProtocolError::StaleSnapshot { .. }
        | ProtocolError::RootHub(_)
        | ProtocolError::UpstreamCycle(_)
        | ProtocolError::NotAHub(_)
        | ProtocolError::NotServing(_)
        | ProtocolError::RelayBootstrapping(_) => {
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE
        }
        ProtocolError::FeedTrimmed { .. } => {
            PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE
        }
        ProtocolError::FeedAhead { .. } => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        ProtocolError::WriteRefused { .. } => PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        ProtocolError::ParkedFull { .. } => PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
        ProtocolError::Unauthenticated { .. } | ProtocolError::UnauthenticatedResponse { .. } => {
            PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION
        }
        ProtocolError::BadSiteId(_)
        | ProtocolError::DeviceKeyLength(_)
        | ProtocolError::BadSetting(_) => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        ProtocolError::Store(_) => PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
    }
}

/// Raise a protocol error.
pub fn protocol_error(e: ProtocolError) -> ! {
    raise(protocol_code(&e), e.to_string())
}

/// Unwrap a protocol result or raise its error.
pub fn or_raise<T>(r: Result<T, ProtocolError>) -> T {
    r.unwrap_or_else(|e| protocol_error(e))
}
