//! Misuse of `#[derive(Stateify)]` is a compile error with a precise span.
//! The expected diagnostics are `tests/ui/*.stderr`.

#[test]
fn derive_misuse_is_a_compile_error() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
