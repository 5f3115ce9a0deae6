//! `quarry sql "SELECT ..."`: sends SQL to a running server's SQL endpoint (`POST /?sql`,
//! SigV4-signed) and prints the answer: a readable table by default, or the raw CSV,
//! JSON lines, Arrow IPC stream or Parquet bytes.

use clap::{Args, ValueEnum};
use http_body_util::BodyExt;
use quarry_sql::datafusion::arrow::array::RecordBatch;
use quarry_sql::datafusion::arrow::ipc::reader::StreamReader;
use std::io::{Read, Write};

/// Rows a table shows; the rest are counted (use another format for everything).
const MAX_TABLE_ROWS: usize = 10_000;

#[derive(Args)]
pub struct SqlArgs {
    /// The server
    #[arg(long, env = "QUARRY_ENDPOINT", default_value = "http://127.0.0.1:9000")]
    endpoint: String,
    /// How to print the result
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// The query (`-` reads it from standard input). Tables: inventory, journal, and
    /// read_parquet / read_csv / read_json('s3://bucket/prefix/').
    sql: String,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Csv,
    Json,
    Arrow,
    Parquet,
}

pub fn run(args: SqlArgs) -> Result<bool, String> {
    let sql = if args.sql == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map_err(|e| format!("cannot read the SQL from stdin: {e}"))?;
        text
    } else {
        args.sql
    };
    let endpoint = crate::client::Endpoint::from_env(args.endpoint)?;
    let wire_format = match args.format {
        Format::Table | Format::Arrow => "arrow",
        Format::Csv => "csv",
        Format::Json => "json",
        Format::Parquet => "parquet",
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let path = format!("/?sql&format={wire_format}");
        let response = endpoint.send("POST", &path, bytes::Bytes::from(sql), None).await?;
        let status = response.status();
        let mut body = response.into_body();
        if !status.is_success() {
            let text = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
            return Err(describe_error(status.as_u16(), &String::from_utf8_lossy(&text)));
        }
        let cut_short = |e: hyper::Error| format!("the result was cut short: {e} (see the server log)");
        match args.format {
            Format::Table => {
                let bytes = body.collect().await.map_err(cut_short)?.to_bytes();
                print_table(&bytes)
            }
            _ => {
                let mut stdout = std::io::stdout().lock();
                while let Some(frame) = body.frame().await {
                    let frame = frame.map_err(cut_short)?;
                    if let Some(data) = frame.data_ref() {
                        stdout.write_all(data).map_err(|e| format!("cannot write the result: {e}"))?;
                    }
                }
                stdout.flush().map_err(|e| e.to_string())
            }
        }
    })?;
    Ok(true)
}

fn print_table(arrow_stream: &[u8]) -> Result<(), String> {
    let reader = StreamReader::try_new(arrow_stream, None).map_err(|e| format!("the result is not Arrow IPC: {e}"))?;
    // An empty batch first, so an empty result still shows its columns.
    let mut shown: Vec<RecordBatch> = vec![RecordBatch::new_empty(reader.schema())];
    let (mut rows, mut shown_rows) = (0usize, 0usize);
    for batch in reader {
        let batch = batch.map_err(|e| format!("the result is not Arrow IPC: {e}"))?;
        rows += batch.num_rows();
        if shown_rows < MAX_TABLE_ROWS {
            let take = batch.num_rows().min(MAX_TABLE_ROWS - shown_rows);
            shown_rows += take;
            shown.push(batch.slice(0, take));
        }
    }
    let table =
        quarry_sql::datafusion::arrow::util::pretty::pretty_format_batches(&shown).map_err(|e| e.to_string())?;
    println!("{table}");
    if rows > shown_rows {
        println!("{rows} rows; the first {shown_rows} shown (--format csv prints them all)");
    } else {
        println!("{rows} row{}", if rows == 1 { "" } else { "s" });
    }
    Ok(())
}

/// "Code: message" out of an S3 error document.
fn describe_error(status: u16, body: &str) -> String {
    let field = |name: &str| {
        let open = format!("<{name}>");
        let start = body.find(&open)? + open.len();
        let end = body[start..].find(&format!("</{name}>"))? + start;
        Some(
            body[start..end]
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&"),
        )
    };
    match (field("Code"), field("Message")) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => format!("{code} (HTTP {status})"),
        _ => format!("HTTP {status}: {body}"),
    }
}
