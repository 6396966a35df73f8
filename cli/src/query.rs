//! `observe query`: runs one read-only SQL statement against a store and renders the answer as
//! a table, JSON lines or CSV. Rendering is pure; the store does the I/O.

use vigil_storage::{Dialect, EXAMPLES, QueryResult};

/// How to print query results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum QueryFormat {
    /// Aligned columns with a header.
    Table,
    /// One JSON object per row.
    Json,
    /// RFC 4180 CSV with a header line.
    Csv,
}

fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "NULL".into(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// The lines to print for `result`.
pub fn render(result: &QueryResult, format: QueryFormat) -> Vec<String> {
    match format {
        QueryFormat::Json => result
            .rows
            .iter()
            .map(|row| {
                // By hand, to keep the columns in the query's order.
                let fields: Vec<String> = result
                    .columns
                    .iter()
                    .zip(row)
                    .map(|(c, v)| format!("{}:{v}", serde_json::Value::from(c.as_str())))
                    .collect();
                format!("{{{}}}", fields.join(","))
            })
            .collect(),
        QueryFormat::Csv => std::iter::once(
            result
                .columns
                .iter()
                .map(|c| csv_field(c))
                .collect::<Vec<_>>()
                .join(","),
        )
        .chain(result.rows.iter().map(|row| {
            row.iter()
                .map(|v| match v {
                    serde_json::Value::Null => String::new(),
                    v => csv_field(&text(v)),
                })
                .collect::<Vec<_>>()
                .join(",")
        }))
        .collect(),
        QueryFormat::Table => {
            let cells: Vec<Vec<String>> = result
                .rows
                .iter()
                .map(|row| row.iter().map(text).collect())
                .collect();
            let mut widths: Vec<usize> = result.columns.iter().map(|c| c.chars().count()).collect();
            for row in &cells {
                for (w, c) in widths.iter_mut().zip(row) {
                    *w = (*w).max(c.chars().count());
                }
            }
            let line = |row: &[String]| {
                row.iter()
                    .zip(&widths)
                    .map(|(c, w)| format!("{c:<w$}"))
                    .collect::<Vec<_>>()
                    .join("  ")
                    .trim_end()
                    .to_owned()
            };
            let mut out = vec![line(&result.columns)];
            out.extend(cells.iter().map(|r| line(r)));
            out.push(format!(
                "({} row{})",
                result.rows.len(),
                if result.rows.len() == 1 { "" } else { "s" }
            ));
            out
        }
    }
}

/// The `--examples` listing for a dialect: a comment line per query, then its text.
pub fn examples(dialect: Dialect) -> Vec<String> {
    let mut out = Vec::new();
    for e in EXAMPLES {
        out.push(format!("-- {}: {}", e.name, e.description));
        out.push(format!("{};", e.sql(dialect)));
        out.push(String::new());
    }
    out
}

#[cfg(test)]
mod tests;
