//! A table of text cells with two renderings: aligned columns for the terminal and Markdown
//! for `--markdown` (the benchmark report), so the two never disagree.

use std::fmt::Write as _;

/// A titled table; notes are lines printed below it. The leading label columns are
/// left-aligned, the others (numbers) right-aligned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    title: String,
    labels: usize,
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
    notes: Vec<String>,
}

impl Table {
    pub fn new(title: impl Into<String>, headers: &[&str]) -> Self {
        Table {
            title: title.into(),
            labels: 1,
            headers: headers.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Makes the first `columns` columns labels (one by default).
    pub fn label_columns(mut self, columns: usize) -> Self {
        self.labels = columns;
        self
    }

    /// Adds a row; it must have one cell per header.
    pub fn row(&mut self, cells: Vec<String>) {
        assert_eq!(cells.len(), self.headers.len(), "one cell per column");
        self.rows.push(cells);
    }

    pub fn note(&mut self, line: impl Into<String>) {
        self.notes.push(line.into());
    }

    /// Title, header and rows in aligned columns, then the notes.
    pub fn text(&self) -> String {
        let widths: Vec<usize> = (0..self.headers.len())
            .map(|i| {
                let cells = self.rows.iter().map(|r| r[i].chars().count());
                cells
                    .chain([self.headers[i].chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: &[String]| {
            let mut out = String::new();
            for (i, (cell, &width)) in cells.iter().zip(&widths).enumerate() {
                let gap = if i == 0 { "" } else { "  " };
                let _ = if i < self.labels {
                    write!(out, "{gap}{cell:<width$}")
                } else {
                    write!(out, "{gap}{cell:>width$}")
                };
            }
            out.trim_end().to_owned() + "\n"
        };
        let mut out = format!("{}\n", self.title);
        out += &line(&self.headers);
        for row in &self.rows {
            out += &line(row);
        }
        for note in &self.notes {
            out += note;
            out.push('\n');
        }
        out
    }

    /// The same as a Markdown paragraph (the title), a table and one paragraph per note.
    pub fn markdown(&self) -> String {
        let line = |cells: &[String]| {
            let cells: Vec<String> = cells.iter().map(|c| c.replace('|', "\\|")).collect();
            format!("| {} |\n", cells.join(" | "))
        };
        let mut out = format!("{}\n\n", self.title);
        out += &line(&self.headers);
        let rule: Vec<String> = (0..self.headers.len())
            .map(|i| if i < self.labels { ":--" } else { "--:" }.to_owned())
            .collect();
        out += &format!("|{}|\n", rule.join("|"));
        for row in &self.rows {
            out += &line(row);
        }
        for note in &self.notes {
            let _ = write!(out, "\n{note}\n");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        let mut t = Table::new("speeds", &["mode", "speedup"]);
        t.row(vec!["off".to_owned(), "1.00x".to_owned()]);
        t.row(vec!["adaptive".to_owned(), "12.50x".to_owned()]);
        t.note("ideal 2.00x");
        t
    }

    #[test]
    fn text_aligns_columns() {
        assert_eq!(
            table().text(),
            "speeds\n\
             mode      speedup\n\
             off         1.00x\n\
             adaptive   12.50x\n\
             ideal 2.00x\n"
        );
    }

    #[test]
    fn markdown_is_a_table_with_notes() {
        assert_eq!(
            table().markdown(),
            "speeds\n\n\
             | mode | speedup |\n\
             |:--|--:|\n\
             | off | 1.00x |\n\
             | adaptive | 12.50x |\n\
             \n\
             ideal 2.00x\n"
        );
        let mut t = Table::new("t", &["a"]);
        t.row(vec!["x|y".to_owned()]);
        assert!(t.markdown().contains("| x\\|y |"));
    }

    #[test]
    fn label_columns_are_left_aligned() {
        let mut t = Table::new("t", &["k", "mode", "x"]).label_columns(2);
        t.row(vec!["16".to_owned(), "kvm".to_owned(), "1".to_owned()]);
        assert_eq!(t.text(), "t\nk   mode  x\n16  kvm   1\n");
        assert!(t.markdown().contains("|:--|:--|--:|"));
    }

    #[test]
    #[should_panic(expected = "one cell per column")]
    fn rows_must_be_complete() {
        Table::new("t", &["a", "b"]).row(vec!["x".to_owned()]);
    }
}
