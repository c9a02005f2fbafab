//! Symbol names as the source language writes them: Rust (legacy and v0
//! mangling) and C++ (Itanium) linkage names demangled, for stack frames
//! and function breakpoints. Rust hashes (`::h0123…`) are dropped, as
//! rust-gdb and CodeLLDB show them.

/// The demangled form of a linkage name, or the name itself when it is
/// not mangled (a C function).
pub fn demangle(name: &str) -> String {
    if let Ok(rust) = rustc_demangle::try_demangle(name) {
        return format!("{rust:#}");
    }
    if name.starts_with("_Z") {
        if let Ok(symbol) = cpp_demangle::Symbol::new(name) {
            let options = cpp_demangle::DemangleOptions::new()
                .no_params()
                .no_return_type();
            if let Ok(text) = symbol.demangle(&options) {
                return text;
            }
        }
    }
    name.to_string()
}

/// Whether `wanted` (what a user typed for a function breakpoint) names
/// the function `qualified`: exactly, or as its trailing path components
/// (`total` and `main::total` both name `main::total`, as gdb resolves
/// `break total` in a Rust program).
pub fn names_function(qualified: &str, wanted: &str) -> bool {
    qualified == wanted
        || qualified
            .strip_suffix(wanted)
            .is_some_and(|head| head.ends_with("::"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_legacy_and_v0() {
        assert_eq!(
            demangle("_ZN4main5total17h92838a553de544f3E"),
            "main::total"
        );
        assert_eq!(demangle("_RNvCs1234_7mycrate3foo"), "mycrate::foo");
    }

    #[test]
    fn cpp_without_parameters() {
        assert_eq!(demangle("_ZN2ns5Class6methodEi"), "ns::Class::method");
        assert_eq!(demangle("main"), "main");
    }

    #[test]
    fn trailing_path_components() {
        assert!(names_function("main::total", "total"));
        assert!(names_function("main::total", "main::total"));
        assert!(!names_function("main::subtotal", "total"));
    }
}
