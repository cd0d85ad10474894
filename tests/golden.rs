//! Golden outputs for every sample: the `dump` view, the conversion summary and the
//! five CSV tables, under tests/golden/. Run with ZCTRACE_UPDATE_GOLDEN=1 to rewrite them after a deliberate
//! change, then review the diff.

use std::path::Path;

use zctrace::convert;
use zctrace::output::csv::{self, Tables};
use zctrace::output::dump;
use zctrace::trace::DiscardTable;

fn check(path: &Path, actual: &str) {
    if std::env::var("ZCTRACE_UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
        std::fs::write(path, actual).unwrap();
        return;
    }
    let want = std::fs::read_to_string(path).unwrap_or_else(|_| {
        panic!(
            "{} missing: run with ZCTRACE_UPDATE_GOLDEN=1",
            path.display()
        )
    });
    if want != actual {
        let line = want
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(want.lines().count().min(actual.lines().count()));
        panic!(
            "{} differs at line {}:\n want: {:?}\n have: {:?}\n(ZCTRACE_UPDATE_GOLDEN=1 rewrites it)",
            path.display(),
            line + 1,
            want.lines().nth(line),
            actual.lines().nth(line)
        );
    }
}

#[test]
fn samples_match_their_golden_dump_summary_and_tables() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let golden = root.join("tests/golden");
    std::fs::create_dir_all(&golden).unwrap();
    let mut n = 0;
    let mut names: Vec<_> = std::fs::read_dir(root.join("samples"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "trace"))
        .collect();
    names.sort();
    let d = DiscardTable::default();
    for p in names {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&p).unwrap();
        let mut text = Vec::new();
        dump::dump(&bytes[..], &mut text, &dump::Options::default(), &d).unwrap();
        check(
            &golden.join(format!("{name}.dump.txt")),
            &String::from_utf8(text).unwrap(),
        );
        let mut tables = Tables::new(Default::default()).unwrap();
        let (s, _) = convert::convert_analyzed(
            &bytes[..],
            std::io::sink(),
            Some((&mut tables, &Default::default())),
            &name,
            &Default::default(),
            &d,
            |_| {},
        )
        .unwrap();
        check(
            &golden.join(format!("{name}.summary.txt")),
            &s.render(&name, &d),
        );
        for (table, text) in csv::NAMES.iter().zip(tables.finish().unwrap()) {
            check(
                &golden.join(format!("{name}.{table}.csv")),
                &String::from_utf8(text).unwrap(),
            );
        }
        n += 1;
    }
    assert!(n >= 5);
}

#[test]
fn merged_pair_matches_its_golden_summary_tables_and_path() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let golden = root.join("tests/golden");
    let d = DiscardTable::default();
    let stack = std::fs::read(root.join("samples/pair_stack.trace")).unwrap();
    let osa = std::fs::read(root.join("samples/pair_osa.trace")).unwrap();
    let mut tables = Tables::new(Default::default()).unwrap();
    let mut path = csv::PathTable::new(Vec::new()).unwrap();
    let mut rows = |r: &zctrace::analyze::path::PathRow| path.row(r);
    let (m, _) = convert::merge(
        vec![
            ("pair_stack.trace".to_string(), &stack[..]),
            ("pair_osa.trace".to_string(), &osa[..]),
        ],
        std::io::sink(),
        Some((&mut tables, &Default::default())),
        Some(convert::PathOutput {
            rows: &mut rows,
            window_ns: 1_000_000_000,
            utc_offset: None,
        }),
        &Default::default(),
        &d,
        |_| {},
    )
    .unwrap();
    let name = "merged_pair";
    check(
        &golden.join(format!("{name}.summary.txt")),
        &m.render(name, &d),
    );
    for (table, text) in csv::NAMES.iter().zip(tables.finish().unwrap()) {
        check(
            &golden.join(format!("{name}.{table}.csv")),
            &String::from_utf8(text).unwrap(),
        );
    }
    check(
        &golden.join(format!("{name}.path.csv")),
        &String::from_utf8(path.finish().unwrap()).unwrap(),
    );
}
