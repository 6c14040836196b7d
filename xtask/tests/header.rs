//! The committed header, `include/lwolf_auth.h`, is exactly what cbindgen makes of
//! `lwolf-auth-ffi/src`.

#[test]
fn committed_header_matches_generated() {
    let generated = xtask::header::generate().expect("cbindgen");
    let committed = std::fs::read_to_string(xtask::header::committed_path()).unwrap_or_else(|e| {
        panic!("include/lwolf_auth.h is missing ({e}); run cargo xtask header")
    });
    if let Some(at) = xtask::header::first_difference(&generated, &committed) {
        panic!(
            "include/lwolf_auth.h is out of date with lwolf-auth-ffi/src; refresh it with \
             `cargo xtask header` and commit it.\nFirst difference at {at}"
        );
    }
}
