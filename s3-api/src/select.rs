//! SelectObjectContent (S3 Select): the request mapped onto `quarry_sql::select`, its
//! events onto the S3 event stream (s3s frames it). Errors found before the first
//! record are HTTP errors with the S3 Select codes; later ones are error events.

use crate::QuarryS3;
use crate::error::engine_error;
use quarry_sql::select::{Compression, CsvOutput, InputFormat, OutputFormat, ScanRange};
use quarry_sql::{CsvInput, HeaderInfo, SelectError, SelectEvent, SelectRequest, SelectStats};
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

pub async fn select_object_content(
    s3: &QuarryS3,
    req: S3Request<SelectObjectContentInput>,
) -> S3Result<S3Response<SelectObjectContentOutput>> {
    let input = req.input;
    s3.require_bucket(&input.bucket)?;
    let entry = s3
        .engine
        .object(&input.bucket, &input.key)
        .map_err(engine_error)?
        .ok_or_else(|| s3_error!(NoSuchKey, "The specified key does not exist."))?;
    // SSE-S3/KMS objects read as plaintext through the engine; an SSE-C object with the
    // data keys its request's key opens (the key is checked here: wrong or missing, no read).
    let customer_key = crate::sse::customer_key_of!(input)?;
    let keys = crate::sse::data_keys(s3.keys.server_key(), entry.meta.encryption.as_ref(), customer_key)?;
    let customer_encrypted =
        entry.meta.encryption.as_ref().is_some_and(|e| e.scheme == storage_core::SseScheme::Customer);
    let mut request = select_request(input.request)?;
    if customer_encrypted {
        let keys = keys.expect("data_keys opens the keys of an SSE-C object or fails");
        request.object_keys = Some(quarry_sql::store::ObjectKeys { lsn: entry.lsn, keys });
    }
    let permit = s3.query_gate.admit().await?;
    let events = quarry_sql::select(&s3.engine, &input.bucket, &input.key, &entry, request, &s3.config.query_limits)
        .await
        .map_err(select_error)?;
    // The slot is held until the last event was taken (or the stream is dropped).
    let stream = futures::stream::unfold((events, permit), |(mut events, permit)| async move {
        let event = events.recv().await?;
        Some((event.map(wire_event).map_err(select_error), (events, permit)))
    });
    let payload = SelectObjectContentEventStream::new(stream);
    Ok(S3Response::new(SelectObjectContentOutput { payload: Some(payload) }))
}

fn wire_event(event: SelectEvent) -> SelectObjectContentEvent {
    match event {
        SelectEvent::Records(bytes) => SelectObjectContentEvent::Records(RecordsEvent { payload: Some(bytes) }),
        SelectEvent::Progress(stats) => {
            let (scanned, processed, returned) = wire_stats(stats);
            SelectObjectContentEvent::Progress(ProgressEvent {
                details: Some(Progress {
                    bytes_scanned: Some(scanned),
                    bytes_processed: Some(processed),
                    bytes_returned: Some(returned),
                }),
            })
        }
        SelectEvent::Stats(stats) => {
            let (scanned, processed, returned) = wire_stats(stats);
            SelectObjectContentEvent::Stats(StatsEvent {
                details: Some(Stats {
                    bytes_scanned: Some(scanned),
                    bytes_processed: Some(processed),
                    bytes_returned: Some(returned),
                }),
            })
        }
        SelectEvent::End => SelectObjectContentEvent::End(EndEvent {}),
    }
}

fn wire_stats(stats: SelectStats) -> (i64, i64, i64) {
    let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    (clamp(stats.bytes_scanned), clamp(stats.bytes_processed), clamp(stats.bytes_returned))
}

/// The S3 Select error as an S3 error (the codes are S3's own: ParseUnexpectedToken...,
/// plus QueryTimeout, QueryMemoryLimitExceeded and OverMaxDecompressedSize for our limits).
fn select_error(e: SelectError) -> S3Error {
    let code = S3ErrorCode::from_bytes(e.code.as_bytes()).unwrap_or(S3ErrorCode::InternalError);
    let status = match code.status_code() {
        Some(status) => status,
        None if e.is_client_error() => http::StatusCode::BAD_REQUEST,
        None => http::StatusCode::INTERNAL_SERVER_ERROR,
    };
    let mut error = S3Error::with_message(code, e.message);
    error.set_status_code(status);
    error
}

fn invalid(code: S3ErrorCode, message: impl Into<String>) -> S3Error {
    S3Error::with_message(code, message.into())
}

/// One byte from a one-character setting (S3 Select's delimiters and quotes are single
/// characters; `\r\n` is the one two-character record delimiter allowed).
fn single_byte(value: Option<&String>, default: u8, what: &str) -> S3Result<u8> {
    match value.map(String::as_str) {
        None | Some("") => Ok(default),
        Some("\r\n") => Ok(b'\n'),
        Some(s) if s.len() == 1 => Ok(s.as_bytes()[0]),
        Some(s) => Err(invalid(S3ErrorCode::InvalidArgument, format!("{what} must be one character, got {s:?}"))),
    }
}

fn select_request(request: SelectObjectContentRequest) -> S3Result<SelectRequest> {
    if request.expression_type.as_str() != ExpressionType::SQL {
        return Err(invalid(S3ErrorCode::InvalidExpressionType, "ExpressionType must be SQL"));
    }
    let serialization = &request.input_serialization;
    let compression = match serialization.compression_type.as_ref().map(|c| c.as_str()) {
        None | Some(CompressionType::NONE) => Compression::None,
        Some(CompressionType::GZIP) => Compression::Gzip,
        Some(CompressionType::BZIP2) => Compression::Bzip2,
        Some(other) => {
            return Err(invalid(S3ErrorCode::InvalidCompressionFormat, format!("unknown CompressionType {other}")));
        }
    };
    let input = match (&serialization.csv, &serialization.json, &serialization.parquet) {
        (Some(csv), None, None) => InputFormat::Csv(csv_input(csv)?),
        (None, Some(json), None) => match json.type_.as_ref().map(|t| t.as_str()) {
            Some(JSONType::LINES) => InputFormat::Json { lines: true },
            Some(JSONType::DOCUMENT) | None => InputFormat::Json { lines: false },
            Some(other) => return Err(invalid(S3ErrorCode::InvalidJsonType, format!("unknown JSON Type {other}"))),
        },
        (None, None, Some(_)) if compression != Compression::None => {
            return Err(invalid(
                S3ErrorCode::InvalidCompressionFormat,
                "Parquet input cannot be compressed as a whole",
            ));
        }
        (None, None, Some(_)) => InputFormat::Parquet,
        _ => {
            return Err(invalid(
                S3ErrorCode::ObjectSerializationConflict,
                "InputSerialization must give exactly one of CSV, JSON or Parquet",
            ));
        }
    };
    let output = match (&request.output_serialization.csv, &request.output_serialization.json) {
        (Some(csv), None) => OutputFormat::Csv(CsvOutput {
            field_delimiter: single_byte(csv.field_delimiter.as_ref(), b',', "FieldDelimiter")?,
            record_delimiter: csv.record_delimiter.clone().filter(|d| !d.is_empty()).unwrap_or_else(|| "\n".into()),
            quote: single_byte(csv.quote_character.as_ref(), b'"', "QuoteCharacter")?,
            escape: single_byte(csv.quote_escape_character.as_ref(), b'"', "QuoteEscapeCharacter")?,
            always_quote: csv.quote_fields.as_ref().is_some_and(|q| q.as_str() == QuoteFields::ALWAYS),
        }),
        (None, Some(json)) => OutputFormat::Json {
            record_delimiter: json.record_delimiter.clone().filter(|d| !d.is_empty()).unwrap_or_else(|| "\n".into()),
        },
        _ => {
            return Err(invalid(
                S3ErrorCode::ObjectSerializationConflict,
                "OutputSerialization must give exactly one of CSV or JSON",
            ));
        }
    };
    let scan_range = request.scan_range.as_ref().map(|r| ScanRange {
        start: r.start.and_then(|s| u64::try_from(s).ok()),
        end: r.end.and_then(|e| u64::try_from(e).ok()),
    });
    if let Some(range) = &request.scan_range
        && (range.start.is_some_and(|s| s < 0) || range.end.is_some_and(|e| e < 0))
    {
        return Err(invalid(S3ErrorCode::InvalidScanRange, "ScanRange Start and End must not be negative"));
    }
    Ok(SelectRequest {
        sql: request.expression,
        input,
        compression,
        output,
        scan_range,
        progress: request.request_progress.as_ref().and_then(|p| p.enabled).unwrap_or(false),
        object_keys: None,
    })
}

fn csv_input(csv: &CSVInput) -> S3Result<CsvInput> {
    let header = match csv.file_header_info.as_ref().map(|h| h.as_str()) {
        None | Some(FileHeaderInfo::NONE) => HeaderInfo::None,
        Some(FileHeaderInfo::USE) => HeaderInfo::Use,
        Some(FileHeaderInfo::IGNORE) => HeaderInfo::Ignore,
        Some(other) => {
            return Err(invalid(S3ErrorCode::InvalidFileHeaderInfo, format!("unknown FileHeaderInfo {other}")));
        }
    };
    let escape = match csv.quote_escape_character.as_deref() {
        None | Some("") => None,
        Some(_) => Some(single_byte(csv.quote_escape_character.as_ref(), b'"', "QuoteEscapeCharacter")?),
    };
    let comment = match csv.comments.as_deref() {
        None | Some("") => None,
        Some(_) => Some(single_byte(csv.comments.as_ref(), b'#', "Comments")?),
    };
    Ok(CsvInput {
        header,
        field_delimiter: single_byte(csv.field_delimiter.as_ref(), b',', "FieldDelimiter")?,
        record_delimiter: single_byte(csv.record_delimiter.as_ref(), b'\n', "RecordDelimiter")?,
        quote: single_byte(csv.quote_character.as_ref(), b'"', "QuoteCharacter")?,
        escape: escape.filter(|&e| e != b'"'),
        comment,
    })
}
