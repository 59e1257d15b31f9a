//! Plain-text tables the way Kuma's kumactl prints them: columns separated by
//! at least three spaces, the last column unpadded, an optional footer after
//! a blank line.

use chrono::{DateTime, Utc};

/// Gap between columns.
const PADDING: usize = 3;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub footer: Option<String>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Self {
        Self {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
            footer: None,
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let lines: Vec<&Vec<String>> = std::iter::once(&self.headers)
            .chain(self.rows.iter())
            .collect();
        let columns = lines.iter().map(|l| l.len()).max().unwrap_or(0);
        // Every column but a line's last cell is padded to the widest cell.
        let mut widths = vec![0usize; columns];
        for line in &lines {
            for (i, cell) in line.iter().enumerate().take(line.len().saturating_sub(1)) {
                widths[i] = widths[i].max(cell.chars().count() + PADDING);
            }
        }
        let mut out = String::new();
        for line in &lines {
            let last = line.len().saturating_sub(1);
            for (i, cell) in line.iter().enumerate() {
                out.push_str(cell);
                if i < last {
                    let pad = widths[i].saturating_sub(cell.chars().count());
                    out.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push('\n');
        }
        if let Some(footer) = &self.footer {
            out.push('\n');
            out.push_str(footer);
            out.push('\n');
        }
        out
    }
}

/// Age of a resource, humanized like Kuma: `5s`, `3m`, `2h`, `4d`, `1y`.
pub fn age(since: DateTime<Utc>, now: DateTime<Utc>) -> String {
    duration(now.signed_duration_since(since))
}

/// Kuma's humanized duration; negative ages beyond a second are `never`
/// (clock skew of under a second shows as `0s`).
pub fn duration(d: chrono::TimeDelta) -> String {
    let seconds = d.num_seconds();
    if seconds < -1 {
        return "never".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 60 {
        return format!("{seconds}s");
    }
    let minutes = d.num_minutes();
    if minutes < 60 {
        return format!("{minutes}m");
    }
    let hours = d.num_hours();
    if hours < 24 {
        return format!("{hours}h");
    }
    if hours < 24 * 365 {
        return format!("{}d", hours / 24);
    }
    format!("{}y", hours / 24 / 365)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    #[test]
    fn columns_align_with_three_spaces_and_last_is_unpadded() {
        let mut t = Table::new(&["ACTIVE", "NAME", "ADDRESS"]);
        t.row(vec![
            "*".into(),
            "test1".into(),
            "https://test1.internal:5681".into(),
        ]);
        t.row(vec![
            "".into(),
            "test2".into(),
            "https://test2.internal:5681".into(),
        ]);
        assert_eq!(
            t.render(),
            "ACTIVE   NAME    ADDRESS\n\
             *        test1   https://test1.internal:5681\n\
             \x20        test2   https://test2.internal:5681\n"
        );
    }

    #[test]
    fn empty_table_prints_headers_and_footer_follows_blank_line() {
        let mut t = Table::new(&["MESH", "NAME", "AGE"]);
        assert_eq!(t.render(), "MESH   NAME   AGE\n");
        t.footer = Some("Rerun command with --offset=2 argument to retrieve more resources".into());
        assert!(t.render().ends_with(
            "AGE\n\nRerun command with --offset=2 argument to retrieve more resources\n"
        ));
    }

    #[test]
    fn widths_count_characters_not_bytes() {
        let mut t = Table::new(&["A", "B"]);
        t.row(vec!["é".into(), "x".into()]);
        assert_eq!(t.render(), "A   B\né   x\n");
    }

    #[test]
    fn durations_are_humanized_like_kuma() {
        assert_eq!(duration(TimeDelta::seconds(5)), "5s");
        assert_eq!(duration(TimeDelta::seconds(59)), "59s");
        assert_eq!(duration(TimeDelta::seconds(60)), "1m");
        assert_eq!(
            duration(TimeDelta::minutes(3) + TimeDelta::seconds(59)),
            "3m"
        );
        assert_eq!(duration(TimeDelta::hours(2)), "2h");
        assert_eq!(duration(TimeDelta::hours(23)), "23h");
        assert_eq!(duration(TimeDelta::days(4)), "4d");
        assert_eq!(duration(TimeDelta::days(400)), "1y");
        assert_eq!(duration(TimeDelta::milliseconds(-500)), "0s");
        assert_eq!(duration(TimeDelta::seconds(-5)), "never");
    }

    #[test]
    fn age_is_measured_from_now() {
        let now = Utc::now();
        assert_eq!(age(now - TimeDelta::minutes(90), now), "1h");
    }
}
