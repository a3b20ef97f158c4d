//! Running a step in a subtransaction, as a PL/pgSQL `EXCEPTION` block
//! does: on an SQL error the step's effects are rolled back and the error
//! is handed to the caller, which decides whether to go on.

use pgrx::pg_sys;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::PgTryBuilder;

/// Run `f` in an internal subtransaction. `Ok` releases (keeps) its
/// effects; an SQL error rolls them back and is returned as `Err`.
pub fn run<T>(f: impl FnOnce() -> T + std::panic::UnwindSafe) -> Result<T, Box<CaughtError>> {
    // SAFETY: the standard BeginInternalSubTransaction / Release /
    // RollbackAndRelease sequence, restoring the memory context and
    // resource owner afterwards exactly as pl_exec.c does.
    unsafe {
        let ctx = pg_sys::CurrentMemoryContext;
        let owner = pg_sys::CurrentResourceOwner;
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(ctx);
        let result = PgTryBuilder::new(move || Ok(f()))
            .catch_others(|e| Err(Box::new(e)))
            .execute();
        match &result {
            Ok(_) => pg_sys::ReleaseCurrentSubTransaction(),
            Err(_) => pg_sys::RollbackAndReleaseCurrentSubTransaction(),
        }
        pg_sys::MemoryContextSwitchTo(ctx);
        pg_sys::CurrentResourceOwner = owner;
        result
    }
}

/// The SQLSTATE of a caught error, if it came from PostgreSQL or `ereport`.
pub fn error_code(e: &CaughtError) -> Option<pgrx::PgSqlErrorCode> {
    match e {
        CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) => Some(r.sql_error_code()),
        CaughtError::RustPanic { .. } => None,
    }
}

/// Whether `code` says a row broke one of its table's constraints (NOT
/// NULL, foreign key, check, unique, exclusion, restrict): the errors a
/// store expects when it creates a row for a delta and the application's
/// schema does not allow it.
pub fn is_constraint_violation(code: pgrx::PgSqlErrorCode) -> bool {
    use pgrx::PgSqlErrorCode as C;
    matches!(
        code,
        C::ERRCODE_NOT_NULL_VIOLATION
            | C::ERRCODE_FOREIGN_KEY_VIOLATION
            | C::ERRCODE_CHECK_VIOLATION
            | C::ERRCODE_UNIQUE_VIOLATION
            | C::ERRCODE_EXCLUSION_VIOLATION
            | C::ERRCODE_RESTRICT_VIOLATION
            | C::ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION
    )
}
