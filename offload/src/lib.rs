//! Batched accumulation engines (work in progress; see issue 6).
