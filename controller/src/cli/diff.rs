//! A unified diff of two small texts (an affinity as YAML, before and
//! after), as `diff -u` prints it.

use super::term::{paint, CYAN, GREEN, RED};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Keep,
    Del,
    Add,
}

/// `--- old_name` / `+++ new_name` and hunks with `context` lines around
/// each change; empty when the texts are equal.
pub fn unified(old: &str, new: &str, old_name: &str, new_name: &str, context: usize, color: bool) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let ops = edit_script(&a, &b);
    if ops.iter().all(|(op, _)| *op == Op::Keep) {
        return String::new();
    }
    let mut out = String::new();
    out.push_str(&paint(color, RED, &format!("--- {old_name}")));
    out.push('\n');
    out.push_str(&paint(color, GREEN, &format!("+++ {new_name}")));
    out.push('\n');
    // Hunks: runs of ops around changes, `context` Keeps either side.
    let changed: Vec<usize> =
        ops.iter().enumerate().filter(|(_, (op, _))| *op != Op::Keep).map(|(i, _)| i).collect();
    let mut i = 0;
    while i < changed.len() {
        let start = changed[i].saturating_sub(context);
        let mut end = changed[i] + 1;
        while i < changed.len() && changed[i] <= end + 2 * context {
            end = changed[i] + 1;
            i += 1;
        }
        let end = (end + context).min(ops.len());
        // Line numbers (1-based) of the hunk's first line in each text.
        let before = |op: Op| ops[..start].iter().filter(|(o, _)| *o == Op::Keep || *o == op).count();
        let (a_start, b_start) = (before(Op::Del), before(Op::Add));
        let hunk = &ops[start..end];
        let a_len = hunk.iter().filter(|(o, _)| *o != Op::Add).count();
        let b_len = hunk.iter().filter(|(o, _)| *o != Op::Del).count();
        let range = |s: usize, l: usize| if l == 0 { format!("{s},0") } else { format!("{},{l}", s + 1) };
        let header = format!("@@ -{} +{} @@", range(a_start, a_len), range(b_start, b_len));
        out.push_str(&paint(color, CYAN, &header));
        out.push('\n');
        for (op, line) in hunk {
            let text = match op {
                Op::Keep => format!(" {line}"),
                Op::Del => paint(color, RED, &format!("-{line}")),
                Op::Add => paint(color, GREEN, &format!("+{line}")),
            };
            out.push_str(&text);
            out.push('\n');
        }
    }
    out
}

/// A shortest edit script by longest common subsequence (the texts are a
/// few dozen lines).
fn edit_script<'a>(a: &[&'a str], b: &[&'a str]) -> Vec<(Op, &'a str)> {
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut ops = Vec::with_capacity(n + m);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            ops.push((Op::Keep, a[i]));
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            ops.push((Op::Add, b[j]));
            j += 1;
        } else {
            ops.push((Op::Del, a[i]));
            i += 1;
        }
    }
    // Deletions before additions within a change, as diff prints them.
    let mut k = 0;
    while k < ops.len() {
        if ops[k].0 == Op::Keep {
            k += 1;
            continue;
        }
        let run_end = ops[k..].iter().position(|(o, _)| *o == Op::Keep).map_or(ops.len(), |p| k + p);
        ops[k..run_end].sort_by_key(|(o, _)| *o == Op::Add);
        k = run_end;
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_texts_give_no_diff() {
        assert_eq!(unified("a\nb\n", "a\nb\n", "x", "y", 3, false), "");
    }

    #[test]
    fn an_added_line() {
        let d = unified("a\nb\nc\n", "a\nb\nX\nc\n", "old", "new", 3, false);
        assert_eq!(d, "--- old\n+++ new\n@@ -1,3 +1,4 @@\n a\n b\n+X\n c\n");
    }

    #[test]
    fn from_nothing() {
        let d = unified("", "a\nb\n", "old", "new", 3, false);
        assert_eq!(d, "--- old\n+++ new\n@@ -0,0 +1,2 @@\n+a\n+b\n");
    }

    #[test]
    fn a_changed_line_far_from_another() {
        let old: String = (0..20).map(|i| format!("{i}\n")).collect();
        let new: String = (0..20)
            .map(|i| match i {
                2 => "two\n".to_owned(),
                17 => "seventeen\n".to_owned(),
                i => format!("{i}\n"),
            })
            .collect();
        let d = unified(&old, &new, "o", "n", 1, false);
        assert_eq!(
            d,
            "--- o\n+++ n\n@@ -2,3 +2,3 @@\n 1\n-2\n+two\n 3\n@@ -17,3 +17,3 @@\n 16\n-17\n+seventeen\n 18\n"
        );
    }
}
