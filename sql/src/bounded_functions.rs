//! String functions whose result can be far larger than their arguments (`repeat`,
//! `lpad`, `rpad`) build it outside the memory pool: `length(repeat('x', 500000000))`
//! took 2 GiB under a 1 GiB limit. Each session gets them wrapped: before the real
//! function runs, the size of what it would build is worked out from its arguments and
//! refused past [`MAX_VALUE_BYTES`] for one value, or past the query's memory share for
//! one call (a whole batch), with the memory-limit error.

use crate::session::QueryLimits;
use datafusion::arrow::array::{Array, ArrayRef, Int64Array};
use datafusion::arrow::compute::kernels::length::length;
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
};
use datafusion::prelude::SessionContext;

/// The largest string one call of these functions may build for one row.
pub const MAX_VALUE_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Growth {
    /// `repeat(s, n)`: `n` times the bytes of `s`.
    Repeat,
    /// `lpad(s, n [, fill])` / `rpad`: `n` characters (counted as bytes; a character
    /// takes at most 4, so the bound holds within that factor).
    Pad,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Bounded {
    inner: ScalarUDF,
    growth: Growth,
    /// Bytes one call (one batch) may build in all.
    call_bytes: u64,
}

/// Replaces the session's growing string functions by bounded ones.
pub fn register(ctx: &SessionContext, limits: &QueryLimits) {
    let call_bytes = (limits.memory_bytes as u64).max(MAX_VALUE_BYTES);
    for (inner, growth) in [
        (datafusion::functions::string::repeat(), Growth::Repeat),
        (datafusion::functions::unicode::lpad(), Growth::Pad),
        (datafusion::functions::unicode::rpad(), Growth::Pad),
    ] {
        let inner = inner.as_ref().clone();
        ctx.register_udf(ScalarUDF::new_from_impl(Bounded { inner, growth, call_bytes }));
    }
}

/// An argument as an array of `rows` values (a scalar repeated).
fn as_array(value: &ColumnarValue, rows: usize) -> Result<ArrayRef> {
    value.to_array(rows.max(1))
}

/// An integer argument as Int64 (NULL or unparsable: no growth).
fn counts(value: &ColumnarValue, rows: usize) -> Result<Int64Array> {
    let array = cast_with_options(&as_array(value, rows)?, &DataType::Int64, &CastOptions::default())?;
    Ok(array.as_any().downcast_ref::<Int64Array>().expect("cast to Int64").clone())
}

/// Byte lengths of a string argument.
fn byte_lengths(value: &ColumnarValue, rows: usize) -> Result<Int64Array> {
    let array = as_array(value, rows)?;
    let lengths = match array.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Binary | DataType::LargeBinary => length(&array)?,
        // Other string types: as Utf8 (only their lengths are looked at).
        _ => length(&cast_with_options(&array, &DataType::Utf8, &CastOptions::default())?)?,
    };
    let lengths = cast_with_options(&lengths, &DataType::Int64, &CastOptions::default())?;
    Ok(lengths.as_any().downcast_ref::<Int64Array>().expect("cast to Int64").clone())
}

impl Bounded {
    fn check(&self, args: &ScalarFunctionArgs) -> Result<()> {
        let rows = args.number_rows.max(1);
        let name = self.inner.name();
        let sizes: Vec<u64> = match (self.growth, args.args.as_slice()) {
            (Growth::Repeat, [text, n]) => {
                let (lengths, n) = (byte_lengths(text, rows)?, counts(n, rows)?);
                (0..lengths.len().min(n.len()))
                    .map(|i| {
                        if lengths.is_null(i) || n.is_null(i) {
                            return 0;
                        }
                        (lengths.value(i).max(0) as u64).saturating_mul(n.value(i).max(0) as u64)
                    })
                    .collect()
            }
            (Growth::Pad, [_, n, ..]) => {
                let n = counts(n, rows)?;
                (0..n.len()).map(|i| if n.is_null(i) { 0 } else { n.value(i).max(0) as u64 }).collect()
            }
            // Another arity: the function's own checks answer it.
            _ => return Ok(()),
        };
        if let Some(largest) = sizes.iter().copied().max().filter(|&s| s > MAX_VALUE_BYTES) {
            return Err(DataFusionError::ResourcesExhausted(format!(
                "{name} would build a value of {largest} bytes; one value may have at most {MAX_VALUE_BYTES}"
            )));
        }
        let total = sizes.iter().fold(0u64, |sum, &s| sum.saturating_add(s));
        if total > self.call_bytes {
            return Err(DataFusionError::ResourcesExhausted(format!(
                "{name} would build {total} bytes for one batch of rows, more than the query's memory limit of {} bytes",
                self.call_bytes
            )));
        }
        Ok(())
    }
}

impl ScalarUDFImpl for Bounded {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        self.check(&args)?;
        self.inner.invoke_with_args(args)
    }
}
