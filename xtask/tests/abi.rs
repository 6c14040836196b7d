//! The ABI check (`xtask::abi`, docs/abi.md), on copies of the header: what it lets through
//! and what it refuses. The real tree's check is `the_header_keeps_the_committed_abi`.
//! They need libabigail's `abidw` and `abidiff` (Debian's abigail-tools, which
//! `cargo xtask deps` installs): without them they fail and say so.

use std::path::PathBuf;

use xtask::abi::{self, Verdict};

fn header() -> String {
    std::fs::read_to_string(xtask::header::committed_path()).expect("include/lwolf_auth.h")
}

fn scratch(name: &str) -> PathBuf {
    let dir = xtask::root().join("target/tmp/abi-tests").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn committed(name: &str) -> String {
    abi::describe(
        &header(),
        abi::SONAME,
        &scratch(&format!("{name}-committed")),
    )
    .expect("describe the header")
}

/// `edit` applied to a copy of the header, described under `soname`, compared with the
/// header as it is.
fn verdict_of(name: &str, soname: &str, edit: impl Fn(&str) -> String) -> Verdict {
    let before = committed(name);
    let changed = edit(&header());
    assert_ne!(changed, header(), "{name}: the edit changed nothing");
    let after = abi::describe(&changed, soname, &scratch(name)).expect("describe the copy");
    abi::compare(&before, &after, &scratch(&format!("{name}-diff"))).expect("abidiff")
}

const NEW_CONFIG: &str = "lwolf_status lwolf_config_new(lwolf_config **out);";

#[test]
fn the_header_keeps_the_committed_abi() {
    abi::check(None).expect("include/lwolf_auth.h against abi/");
}

#[test]
fn an_added_function_is_compatible() {
    let verdict = verdict_of("added", abi::SONAME, |h| {
        h.replace(
            NEW_CONFIG,
            &format!("{NEW_CONFIG}\nint32_t lwolf_added_later(const lwolf_client *client);"),
        )
    });
    assert_eq!(verdict, Verdict::Compatible);
}

#[test]
fn a_changed_signature_is_a_break() {
    let verdict = verdict_of("changed", abi::SONAME, |h| {
        h.replace(
            NEW_CONFIG,
            "lwolf_status lwolf_config_new(lwolf_config **out, uint32_t flags);",
        )
    });
    match verdict {
        Verdict::Incompatible(report) => assert!(
            report.contains("lwolf_config_new"),
            "the report names the function: {report}"
        ),
        other => panic!("a changed signature passed: {other:?}"),
    }
}

#[test]
fn a_removed_function_is_a_break() {
    let verdict = verdict_of("removed", abi::SONAME, |h| h.replace(NEW_CONFIG, ""));
    assert!(matches!(verdict, Verdict::Incompatible(_)), "{verdict:?}");
}

#[test]
fn a_size_prefixed_struct_may_grow_at_its_end_only() {
    let at_end = verdict_of("grown", abi::SONAME, |h| {
        h.replace(
            "} lwolf_stats;",
            "    uint64_t added_later;\n} lwolf_stats;",
        )
    });
    assert_eq!(at_end, Verdict::Compatible);
    let inside = verdict_of("inserted", abi::SONAME, |h| {
        h.replacen(
            "    uint64_t token_requests;",
            "    uint64_t inserted;\n    uint64_t token_requests;",
            1,
        )
    });
    assert!(matches!(inside, Verdict::Incompatible(_)), "{inside:?}");
}

#[test]
fn a_break_passes_when_the_soname_major_moves() {
    let verdict = verdict_of("new-soname", "liblwolf_auth.so.1", |h| {
        h.replace(
            NEW_CONFIG,
            "lwolf_status lwolf_config_new(lwolf_config **out, uint32_t flags);",
        )
    });
    assert_eq!(verdict, Verdict::BreakWithNewSoname);
}

#[test]
fn status_values_may_be_added_but_never_renumbered() {
    let committed = abi::status_file(&header()).unwrap();
    let added = header().replace(
        "    LWOLF_ERR_DEADLINE = 13,",
        "    LWOLF_ERR_DEADLINE = 13,\n    LWOLF_ERR_LATER = 14,",
    );
    assert_eq!(
        abi::status_changes(&committed, &added).unwrap(),
        Vec::<String>::new()
    );
    let renumbered = header().replace("LWOLF_ERR_DEADLINE = 13", "LWOLF_ERR_DEADLINE = 14");
    assert_eq!(
        abi::status_changes(&committed, &renumbered).unwrap(),
        vec!["LWOLF_ERR_DEADLINE was 13, is 14".to_owned()]
    );
}

#[test]
fn every_declared_function_is_seen() {
    let declared = abi::declared_functions(&header()).unwrap();
    let mentioned = header()
        .lines()
        .filter(|l| !l.trim_start().starts_with("//") && !l.contains("typedef"))
        .filter_map(|l| {
            let name = l.split('(').next()?.rsplit([' ', '*']).next()?;
            (name.starts_with("lwolf_") && l.contains('(')).then(|| name.to_owned())
        })
        .collect::<std::collections::BTreeSet<_>>();
    assert_eq!(declared, mentioned);
    assert!(declared.len() > 40, "{declared:?}");
}
