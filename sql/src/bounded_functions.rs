//! Functions whose result can be far larger than their arguments build it outside the
//! memory pool: `length(repeat('x', 500000000))` took 2 GiB under a 1 GiB limit, and
//! `range(0, 100000000)` 900 MB. Each session gets them wrapped: before the real function
//! runs, the size of what it would build is worked out from its arguments and refused
//! past [`MAX_VALUE_BYTES`] for one value, or past the query's memory share for one call
//! (a whole batch), with the memory-limit error. The bounds are upper bounds: a call
//! they let through cannot build more.

use crate::session::QueryLimits;
use datafusion::arrow::array::{Array, ArrayRef, Int64Array, IntervalMonthDayNanoArray};
use datafusion::arrow::compute::kernels::length::length;
use datafusion::arrow::compute::{CastOptions, cast_with_options};
use datafusion::arrow::datatypes::{DataType, FieldRef, IntervalUnit, TimeUnit};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
};
use datafusion::prelude::SessionContext;

/// The largest value (a string or a list) one call of these functions may build for one row.
pub const MAX_VALUE_BYTES: u64 = 16 * 1024 * 1024;

/// What one list element is counted as when its own size is not known better.
const LIST_ELEMENT_BYTES: u64 = 8;

const NANOS_PER_HOUR: i128 = 3_600_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Growth {
    /// `repeat(s, n)`: `n` times the bytes of `s`.
    Repeat,
    /// `lpad(s, n [, fill])` / `rpad`: `n` characters (counted as bytes; a character
    /// takes at most 4, so the bound holds within that factor).
    Pad,
    /// `replace(s, from, to)`: every `from` in `s` may become `to` (an empty `from`
    /// changes nothing).
    Replace,
    /// `array_repeat(element, n)`: `n` elements.
    ArrayRepeat,
    /// `array_resize(list, n [, value])`: `n` elements.
    ArrayResize,
    /// `range(…)` / `generate_series(…)` over integers, dates or timestamps.
    Range,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Bounded {
    inner: ScalarUDF,
    growth: Growth,
    /// Bytes one call (one batch) may build in all.
    call_bytes: u64,
}

/// Replaces the session's growing functions by bounded ones.
pub fn register(ctx: &SessionContext, limits: &QueryLimits) {
    use datafusion::functions_nested::{range, repeat, resize};
    let call_bytes = (limits.memory_bytes as u64).max(MAX_VALUE_BYTES);
    for (inner, growth) in [
        (datafusion::functions::string::repeat(), Growth::Repeat),
        (datafusion::functions::unicode::lpad(), Growth::Pad),
        (datafusion::functions::unicode::rpad(), Growth::Pad),
        (datafusion::functions::string::replace(), Growth::Replace),
        (repeat::array_repeat_udf(), Growth::ArrayRepeat),
        (resize::array_resize_udf(), Growth::ArrayResize),
        (range::range_udf(), Growth::Range),
        (range::gen_series_udf(), Growth::Range),
    ] {
        let inner = inner.as_ref().clone();
        ctx.register_udf(ScalarUDF::new_from_impl(Bounded { inner, growth, call_bytes }));
    }
}

/// An argument as an array of `rows` values (a scalar repeated).
fn as_array(value: &ColumnarValue, rows: usize) -> Result<ArrayRef> {
    value.to_array(rows.max(1))
}

fn cast_to(array: &ArrayRef, to: &DataType) -> Result<ArrayRef> {
    Ok(cast_with_options(array, to, &CastOptions::default())?)
}

fn as_int64(array: &ArrayRef) -> Result<Int64Array> {
    let array = cast_to(array, &DataType::Int64)?;
    Ok(array.as_any().downcast_ref::<Int64Array>().expect("cast to Int64").clone())
}

/// An integer argument as Int64 (NULL or unparsable: no growth).
fn counts(value: &ColumnarValue, rows: usize) -> Result<Int64Array> {
    as_int64(&as_array(value, rows)?)
}

/// The value of row `i` (NULL: `when_null`).
fn value_or(array: &Int64Array, i: usize, when_null: i64) -> i64 {
    if array.is_null(i) { when_null } else { array.value(i) }
}

fn is_string_like(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
    )
}

/// Byte lengths of a string argument.
fn byte_lengths(value: &ColumnarValue, rows: usize) -> Result<Int64Array> {
    let array = as_array(value, rows)?;
    let lengths = match array.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Binary | DataType::LargeBinary => length(&array)?,
        // Other string types: as Utf8 (only their lengths are looked at).
        _ => length(&cast_to(&array, &DataType::Utf8)?)?,
    };
    as_int64(&lengths)
}

/// What each row's value takes as one list element: a string its bytes plus an
/// offset, anything else its share of the argument's memory (at least 8 bytes).
fn element_sizes(value: &ColumnarValue, rows: usize) -> Result<Vec<u64>> {
    if is_string_like(&value.data_type()) {
        let lengths = byte_lengths(value, rows)?;
        return Ok((0..lengths.len()).map(|i| value_or(&lengths, i, 0).max(0) as u64 + LIST_ELEMENT_BYTES).collect());
    }
    let array = as_array(value, rows)?;
    let share = (array.get_array_memory_size() / array.len().max(1)) as u64;
    Ok(vec![share.max(LIST_ELEMENT_BYTES); array.len()])
}

/// `count` elements of `element_bytes` each, for every row.
fn times(count: &Int64Array, element_bytes: &[u64]) -> Vec<u64> {
    (0..count.len().min(element_bytes.len()))
        .map(|i| (value_or(count, i, 0).max(0) as u64).saturating_mul(element_bytes[i]))
        .collect()
}

/// Elements of `range(start, stop, step)` / `generate_series`: at most |span| / |step| + 1
/// when the step goes from start towards stop, none otherwise.
fn range_elements(span: i128, step: i128) -> u64 {
    if step == 0 || (span != 0 && span.signum() != step.signum()) {
        return 0; // the function refuses a zero step itself
    }
    u64::try_from(span.abs() / step.abs() + 1).unwrap_or(u64::MAX)
}

/// The smallest distance one interval step can move, in `unit`s (nanoseconds for
/// timestamps, days for dates): a month is at least 28 days, a day at least 23 hours (a
/// daylight-saving change). A step mixing signs (`1 month -30 days`) may move nowhere for
/// many steps, so it cannot be bounded and is refused.
fn interval_step(name: &str, months: i32, days: i32, nanos: i64, dates: bool) -> Result<i128> {
    let parts = [months as i128, days as i128, if dates { 0 } else { nanos as i128 }];
    if parts.iter().any(|p| *p > 0) && parts.iter().any(|p| *p < 0) {
        return Err(DataFusionError::ResourcesExhausted(format!(
            "{name} with a step that mixes signs cannot be bounded; give a step in one direction"
        )));
    }
    let [months, days, nanos] = parts;
    Ok(if dates { months * 28 + days } else { (months * 28 * 24 + days * 23) * NANOS_PER_HOUR + nanos })
}

fn range_sizes(name: &str, args: &[ColumnarValue], rows: usize) -> Result<Option<Vec<u64>>> {
    let (start, stop, step) = match args {
        [stop] => (None, stop, None),
        [start, stop] => (Some(start), stop, None),
        [start, stop, step] => (Some(start), stop, Some(step)),
        _ => return Ok(None),
    };
    let dates = matches!(stop.data_type(), DataType::Date32 | DataType::Date64);
    let timestamps = matches!(stop.data_type(), DataType::Timestamp(..));
    // Positions as Int64: days for dates, nanoseconds for timestamps.
    let position = |value: &ColumnarValue| -> Result<Int64Array> {
        let array = as_array(value, rows)?;
        if dates {
            as_int64(&cast_to(&array, &DataType::Date32)?)
        } else if timestamps {
            as_int64(&cast_to(&array, &DataType::Timestamp(TimeUnit::Nanosecond, None))?)
        } else {
            as_int64(&array)
        }
    };
    let stop = position(stop)?;
    let start = start.map(position).transpose()?;
    let mut steps = vec![1i128; stop.len()];
    if let Some(step) = step {
        let array = as_array(step, rows)?;
        if dates || timestamps {
            let array = cast_to(&array, &DataType::Interval(IntervalUnit::MonthDayNano))?;
            let array = array.as_any().downcast_ref::<IntervalMonthDayNanoArray>().expect("cast to MonthDayNano");
            for (i, slot) in steps.iter_mut().enumerate().take(array.len()) {
                if !array.is_null(i) {
                    let step = array.value(i);
                    *slot = interval_step(name, step.months, step.days, step.nanoseconds, dates)?;
                }
            }
        } else {
            let array = as_int64(&array)?;
            for (i, slot) in steps.iter_mut().enumerate().take(array.len()) {
                *slot = value_or(&array, i, 1) as i128;
            }
        }
    }
    Ok(Some(
        (0..stop.len())
            .map(|i| {
                let from = start.as_ref().map_or(0, |start| value_or(start, i, 0)) as i128;
                let span = value_or(&stop, i, 0) as i128 - from;
                range_elements(span, steps[i]).saturating_mul(LIST_ELEMENT_BYTES)
            })
            .collect(),
    ))
}

impl Growth {
    /// The bytes each row's result may take, or None for an arity the function itself refuses.
    fn sizes(self, name: &str, args: &[ColumnarValue], rows: usize) -> Result<Option<Vec<u64>>> {
        Ok(Some(match (self, args) {
            (Growth::Repeat, [text, n]) => times(&counts(n, rows)?, &to_u64(&byte_lengths(text, rows)?)),
            (Growth::Pad, [_, n, ..]) => times(&counts(n, rows)?, &vec![1; rows]),
            (Growth::Replace, [text, from, to]) => {
                let (text, from, to) = (byte_lengths(text, rows)?, byte_lengths(from, rows)?, byte_lengths(to, rows)?);
                (0..text.len().min(from.len()).min(to.len()))
                    .map(|i| {
                        let text = value_or(&text, i, 0).max(0) as u64;
                        let from = value_or(&from, i, 0).max(0) as u64;
                        let to = value_or(&to, i, 0).max(0) as u64;
                        // An empty `from` changes nothing.
                        text.checked_div(from).map_or(text, |matches| text.saturating_add(matches.saturating_mul(to)))
                    })
                    .collect()
            }
            (Growth::ArrayRepeat, [element, n]) => times(&counts(n, rows)?, &element_sizes(element, rows)?),
            (Growth::ArrayResize, [_, n]) => times(&counts(n, rows)?, &vec![LIST_ELEMENT_BYTES; rows]),
            (Growth::ArrayResize, [_, n, value]) => times(&counts(n, rows)?, &element_sizes(value, rows)?),
            (Growth::Range, args) => return range_sizes(name, args, rows),
            // Another arity: the function's own checks answer it.
            _ => return Ok(None),
        }))
    }
}

fn to_u64(array: &Int64Array) -> Vec<u64> {
    (0..array.len()).map(|i| value_or(array, i, 0).max(0) as u64).collect()
}

impl Bounded {
    fn check(&self, args: &ScalarFunctionArgs) -> Result<()> {
        let rows = args.number_rows.max(1);
        let name = self.inner.name();
        let Some(sizes) = self.growth.sizes(name, &args.args, rows)? else {
            return Ok(());
        };
        if let Some(largest) = sizes.iter().copied().max().filter(|&s| s > MAX_VALUE_BYTES) {
            return Err(DataFusionError::ResourcesExhausted(format!(
                "{name} would build a value of {largest} bytes; one value may have at most {MAX_VALUE_BYTES} \
                 (for a long series, the table function generate_series(start, stop) streams its rows)"
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_counts_its_elements_from_start_towards_stop() {
        assert_eq!(range_elements(10, 1), 11);
        assert_eq!(range_elements(10, 3), 4);
        assert_eq!(range_elements(-10, -3), 4);
        assert_eq!(range_elements(0, 5), 1);
        // Going away from stop, or a zero step (refused by the function): nothing.
        assert_eq!(range_elements(10, -1), 0);
        assert_eq!(range_elements(-10, 1), 0);
        assert_eq!(range_elements(10, 0), 0);
        assert_eq!(range_elements(i64::MAX as i128 - i64::MIN as i128, 1), u64::MAX);
    }

    #[test]
    fn an_interval_step_is_counted_at_its_shortest() {
        // Dates: a month is at least 28 days.
        assert_eq!(interval_step("range", 1, 0, 0, true).unwrap(), 28);
        assert_eq!(interval_step("range", -1, -2, 0, true).unwrap(), -30);
        // Timestamps: a day is at least 23 hours.
        assert_eq!(interval_step("range", 0, 1, 0, false).unwrap(), 23 * NANOS_PER_HOUR);
        assert_eq!(interval_step("range", 0, 0, 1_000, false).unwrap(), 1_000);
        // Mixed signs may not move at all for a while: refused.
        assert!(interval_step("range", 1, -30, 0, true).is_err());
        assert!(interval_step("range", 0, 1, -1, false).is_err());
        // Nanoseconds do not move a date.
        assert_eq!(interval_step("range", 0, 1, -1, true).unwrap(), 1);
    }
}
