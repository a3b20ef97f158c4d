//! The `atomik` PostgreSQL type: a fixed-length, pass-by-reference datum
//! whose 17 bytes are exactly the canonical binary form of DESIGN.md §1
//! (`INTERNALLENGTH = 17, ALIGNMENT = char, STORAGE = plain`), so what is
//! on disk, what `atomik_send` emits and what travels on the wire are the
//! same bytes. `pg_column_size` of an `atomik` is 17.
//!
//! pgrx has no derive for fixed-length types, so the datum conversions are
//! written by hand here.

use atomik_core::value::CANONICAL_LEN;
use atomik_core::AtomikValue;
use pgrx::callconv::{Arg, ArgAbi, BoxRet, FcInfo};
use pgrx::datum::Datum;
use pgrx::pg_sys;
use pgrx::pgrx_sql_entity_graph::metadata::{
    ArgumentError, ReturnsError, ReturnsRef, SqlMappingRef, SqlTranslatable, TypeOrigin,
};
use pgrx::{FromDatum, IntoDatum, PgMemoryContexts};

use crate::errors;

/// An `atomik` value as it crosses the PostgreSQL function boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Atomik(pub AtomikValue);

impl From<AtomikValue> for Atomik {
    fn from(v: AtomikValue) -> Self {
        Atomik(v)
    }
}

/// The OID of the `atomik` type in the current database.
///
/// Looked up by name in the extension's schema through the type cache of
/// `to_regtype`; used only where a datum must state its type (SPI
/// arguments), never on the per-row path.
pub fn atomik_type_oid() -> pg_sys::Oid {
    // SAFETY: TypenameGetTypid only reads the catalog caches.
    let oid = unsafe { pg_sys::TypenameGetTypid(c"atomik".as_ptr()) };
    if oid == pg_sys::InvalidOid {
        errors::raise(
            pgrx::PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            "type atomik is not visible on the search_path".to_string(),
        );
    }
    oid
}

impl IntoDatum for Atomik {
    fn into_datum(self) -> Option<pg_sys::Datum> {
        // SAFETY: palloc in the current memory context, as PostgreSQL
        // expects of a pass-by-reference result.
        let out =
            unsafe { PgMemoryContexts::CurrentMemoryContext.palloc_slice::<u8>(CANONICAL_LEN) };
        out.copy_from_slice(&self.0.to_bytes());
        Some(out.as_ptr().into())
    }

    fn type_oid() -> pg_sys::Oid {
        atomik_type_oid()
    }
}

impl FromDatum for Atomik {
    unsafe fn from_polymorphic_datum(
        datum: pg_sys::Datum,
        is_null: bool,
        _typoid: pg_sys::Oid,
    ) -> Option<Self> {
        if is_null {
            return None;
        }
        // SAFETY: an atomik datum points at INTERNALLENGTH = 17 bytes.
        let bytes =
            unsafe { std::slice::from_raw_parts(datum.cast_mut_ptr::<u8>(), CANONICAL_LEN) };
        match AtomikValue::from_bytes(bytes) {
            Ok(v) => Some(Atomik(v)),
            // Only a corrupted page (or a foreign datum) gets here.
            Err(e) => errors::raise(
                pgrx::PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
                format!("stored atomik value is corrupted: {e}"),
            ),
        }
    }
}

unsafe impl<'fcx> ArgAbi<'fcx> for Atomik {
    unsafe fn unbox_arg_unchecked(arg: Arg<'_, 'fcx>) -> Self {
        let index = arg.index();
        // SAFETY: the SQL signature says this argument is an atomik.
        unsafe { arg.unbox_arg_using_from_datum() }
            .unwrap_or_else(|| panic!("argument {index} must not be null"))
    }

    unsafe fn unbox_nullable_arg(arg: Arg<'_, 'fcx>) -> pgrx::nullable::Nullable<Self> {
        // SAFETY: as above.
        unsafe { arg.unbox_arg_using_from_datum() }.into()
    }
}

unsafe impl BoxRet for Atomik {
    unsafe fn box_into<'fcx>(self, fcinfo: &mut FcInfo<'fcx>) -> Datum<'fcx> {
        match self.into_datum() {
            // SAFETY: a freshly palloc'd datum of the declared return type.
            Some(datum) => unsafe { fcinfo.return_raw_datum(datum) },
            None => fcinfo.return_null(),
        }
    }
}

// SAFETY: the SQL name matches the type created below.
unsafe impl SqlTranslatable for Atomik {
    const TYPE_IDENT: &'static str = pgrx::pgrx_resolved_type!(Atomik);
    const TYPE_ORIGIN: TypeOrigin = TypeOrigin::External;
    const ARGUMENT_SQL: Result<SqlMappingRef, ArgumentError> = Ok(SqlMappingRef::literal("atomik"));
    const RETURN_SQL: Result<ReturnsRef, ReturnsError> =
        Ok(ReturnsRef::One(SqlMappingRef::literal("atomik")));
}

pgrx::extension_sql!(
    r#"
-- The shell of the atomik type; its I/O functions follow, then the type.
CREATE TYPE atomik;
"#,
    name = "atomik_shell",
    bootstrap
);
